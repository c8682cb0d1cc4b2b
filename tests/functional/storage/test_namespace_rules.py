"""The directory rules over S3 prefixes, with their exact error class, text and operation, on both back ends.

These texts reach the client as ``GridFTP-Error-String`` and ``GridFTP-Reason: System error in <op>``;
gfal2 derives errno from them, so they are part of the interface. Both back ends share one namespace
layer (``s3dsi.storage.namespace``): this table is what that layer promises, whatever store is below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from s3dsi.protocol.errors import (
    DirectoryNotEmpty,
    DsiError,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotSupported,
    ObjectArchived,
    ObjectChanged,
    PathExists,
    PathNotFound,
    PermissionDenied,
)
from tests.support.storage import StoreUnderTest

NO_BUCKET = "/no-such-bucket-s3dsi-rules"
LONG = "k" * 1100
NO_SUCH_BUCKET = f"S3 NoSuchBucket: {NO_BUCKET}: No such file or directory (no such bucket)"
KEY_TOO_LONG = "S3 KeyTooLongError: key of {B}/" + LONG + " is longer than 1023 bytes"


def arrange(store: StoreUnderTest) -> None:
    """B/file, B/d/ (marker) with B/d/x, B/empty/ (marker), B/implicit/y (no marker)."""
    store.put("file")
    store.backend.mkdir(store.path("d"))
    store.put("d", "x")
    store.backend.mkdir(store.path("empty"))
    store.put("implicit", "y")


@dataclass(frozen=True)
class Rule:
    name: str
    call: Callable[[StoreUnderTest], object]
    error: type[DsiError]
    text: str  # {B} is the bucket's path
    operation: str | None


RULES = [
    # stat
    Rule("stat missing", lambda s: s.backend.stat(s.path("missing")), PathNotFound,
         "{B}/missing: No such file or directory", "stat"),
    Rule("stat in missing bucket", lambda s: s.backend.stat(f"{NO_BUCKET}/k"), PathNotFound, NO_SUCH_BUCKET,
         "stat"),
    Rule("stat missing bucket", lambda s: s.backend.stat(NO_BUCKET), PathNotFound, NO_SUCH_BUCKET, "stat"),
    # list
    Rule("list a file", lambda s: s.backend.list_pages(s.path("file")), NotADirectory,
         "{B}/file: Not a directory", "list"),
    Rule("list missing", lambda s: s.backend.list_pages(s.path("missing")), PathNotFound,
         "{B}/missing: No such file or directory", "list"),
    Rule("list missing bucket", lambda s: s.backend.list_pages(NO_BUCKET), PathNotFound, NO_SUCH_BUCKET,
         "list"),
    # mkdir
    Rule("mkdir /", lambda s: s.backend.mkdir("/"), PathExists, "/: File exists", "mkdir"),
    Rule("mkdir over a file", lambda s: s.backend.mkdir(s.path("file")), PathExists,
         "{B}/file: a file of that name exists", "mkdir"),
    Rule("mkdir existing", lambda s: s.backend.mkdir(s.path("d")), PathExists, "{B}/d: File exists", "mkdir"),
    Rule("mkdir implicit", lambda s: s.backend.mkdir(s.path("implicit")), PathExists,
         "{B}/implicit: File exists", "mkdir"),
    Rule("mkdir without parent", lambda s: s.backend.mkdir(s.path("p", "c")), PathNotFound,
         "{B}/p/c: No such file or directory (parent directory does not exist)", "mkdir"),
    Rule("mkdir in missing bucket", lambda s: s.backend.mkdir(f"{NO_BUCKET}/d"), PathNotFound,
         NO_SUCH_BUCKET, "mkdir"),
    Rule("mkdir own bucket", lambda s: s.backend.mkdir(s.path()), PathExists,
         "S3 BucketAlreadyOwnedByYou: {B}: the bucket already exists and is owned by you", "mkdir"),
    Rule("mkdir bad bucket name", lambda s: s.backend.mkdir("/Upper"), InvalidPath,
         "S3 InvalidBucketName: 'Upper': bucket names must be 3-63 characters of lowercase letters, "
         "digits, '.' and '-', starting and ending with a letter or digit", None),
    Rule("mkdir long key", lambda s: s.backend.mkdir(s.path(LONG)), InvalidPath, KEY_TOO_LONG, None),
    # rmdir
    Rule("rmdir /", lambda s: s.backend.rmdir("/"), PermissionDenied, "/: the bucket list cannot be removed",
         "rmdir"),
    Rule("rmdir not empty", lambda s: s.backend.rmdir(s.path("d")), DirectoryNotEmpty,
         "{B}/d: Directory not empty", "rmdir"),
    Rule("rmdir implicit", lambda s: s.backend.rmdir(s.path("implicit")), DirectoryNotEmpty,
         "{B}/implicit: Directory not empty", "rmdir"),
    Rule("rmdir missing", lambda s: s.backend.rmdir(s.path("missing")), PathNotFound,
         "{B}/missing: No such file or directory", "rmdir"),
    Rule("rmdir a file", lambda s: s.backend.rmdir(s.path("file")), NotADirectory,
         "{B}/file: Not a directory", "rmdir"),
    Rule("rmdir non-empty bucket", lambda s: s.backend.rmdir(s.path()), DirectoryNotEmpty,
         "S3 BucketNotEmpty: {B}: the bucket is not empty", "rmdir"),
    Rule("rmdir missing bucket", lambda s: s.backend.rmdir(NO_BUCKET), PathNotFound, NO_SUCH_BUCKET, "rmdir"),
    Rule("rmdir in missing bucket", lambda s: s.backend.rmdir(f"{NO_BUCKET}/d"), PathNotFound, NO_SUCH_BUCKET,
         "rmdir"),
    # delete
    Rule("delete /", lambda s: s.backend.delete("/"), IsADirectory, "/: Is a directory", "unlink"),
    Rule("delete a bucket", lambda s: s.backend.delete(s.path()), IsADirectory, "{B}: Is a directory",
         "unlink"),
    Rule("delete a directory", lambda s: s.backend.delete(s.path("d")), IsADirectory, "{B}/d: Is a directory",
         "unlink"),
    Rule("delete an implicit directory", lambda s: s.backend.delete(s.path("implicit")), IsADirectory,
         "{B}/implicit: Is a directory", "unlink"),
    Rule("delete missing", lambda s: s.backend.delete(s.path("missing")), PathNotFound,
         "{B}/missing: No such file or directory", "unlink"),
    Rule("delete in missing bucket", lambda s: s.backend.delete(f"{NO_BUCKET}/k"), PathNotFound,
         NO_SUCH_BUCKET, "unlink"),
    # rename
    Rule("rename a bucket", lambda s: s.backend.rename(s.path(), "/other"), NotSupported,
         "directory rename is not supported on S3", "rename"),
    Rule("rename a directory", lambda s: s.backend.rename(s.path("d"), s.path("e")), NotSupported,
         "directory rename is not supported on S3", "rename"),
    Rule("rename missing", lambda s: s.backend.rename(s.path("missing"), s.path("g")), PathNotFound,
         "{B}/missing: No such file or directory", "rename"),
    Rule("rename onto a directory", lambda s: s.backend.rename(s.path("file"), s.path("d")), IsADirectory,
         "{B}/d: Is a directory", "rename"),
    Rule("rename into a missing bucket", lambda s: s.backend.rename(s.path("file"), f"{NO_BUCKET}/g"),
         PathNotFound, NO_SUCH_BUCKET, "rename"),
    Rule("rename from a missing bucket", lambda s: s.backend.rename(f"{NO_BUCKET}/f", s.path("g")),
         PathNotFound, NO_SUCH_BUCKET, "rename"),
    Rule("rename onto a long key", lambda s: s.backend.rename(s.path("file"), s.path(LONG)), InvalidPath,
         KEY_TOO_LONG, None),
    # opening for reading
    Rule("open a bucket", lambda s: s.backend.head_object(s.path()), IsADirectory, "{B}: Is a directory",
         "open"),
    Rule("open a directory", lambda s: s.backend.head_object(s.path("implicit")), IsADirectory,
         "{B}/implicit: Is a directory", "open"),
    Rule("open missing", lambda s: s.backend.head_object(s.path("missing")), PathNotFound,
         "{B}/missing: No such file or directory", "open"),
    Rule("open in missing bucket", lambda s: s.backend.head_object(f"{NO_BUCKET}/k"), PathNotFound,
         NO_SUCH_BUCKET, "open"),
    # tags
    Rule("tags of a directory", lambda s: s.backend.get_tags(s.path()), IsADirectory, "{B}: Is a directory",
         "tags"),
    Rule("set tags of a directory", lambda s: s.backend.set_tags(s.path(), {}), IsADirectory,
         "{B}: Is a directory", "tags"),
    Rule("tags of missing", lambda s: s.backend.get_tags(s.path("missing")), PathNotFound,
         "S3 NoSuchKey: {B}/missing: No such file or directory (no such object)", "tags"),
    # opening for writing
    Rule("write a bucket", lambda s: s.backend.check_writable(s.path()), IsADirectory, "{B}: Is a directory",
         "open"),
    Rule("write a directory", lambda s: s.backend.check_writable(s.path("d")), IsADirectory,
         "{B}/d: Is a directory", "open"),
    Rule("write an implicit directory", lambda s: s.backend.check_writable(s.path("implicit")),
         IsADirectory, "{B}/implicit: Is a directory", "open"),
    Rule("write in missing bucket", lambda s: s.backend.check_writable(f"{NO_BUCKET}/k"), PathNotFound,
         NO_SUCH_BUCKET, "open"),
    Rule("write a long key", lambda s: s.backend.check_writable(s.path(LONG)), InvalidPath, KEY_TOO_LONG,
         None),
    Rule("put in missing bucket", lambda s: s.backend.put_object(f"{NO_BUCKET}/k", memoryview(b"x")),
         PathNotFound, NO_SUCH_BUCKET, "write"),
    Rule("upload to missing bucket", lambda s: s.backend.create_upload(f"{NO_BUCKET}/k"), PathNotFound,
         NO_SUCH_BUCKET, "write"),
]


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_rule(store: StoreUnderTest, rule: Rule) -> None:
    arrange(store)
    with pytest.raises(DsiError) as caught:
        rule.call(store)
    err = caught.value
    assert (type(err), err.text, err.operation) == (rule.error, rule.text.format(B=store.path()),
                                                    rule.operation)


def test_nothing_changed_by_the_refused_operations(store: StoreUnderTest) -> None:
    arrange(store)
    before = sorted((e.name, e.is_dir) for page in store.backend.list_pages(store.path()) for e in page)
    for rule in RULES:
        with pytest.raises(DsiError):
            rule.call(store)
    after = sorted((e.name, e.is_dir) for page in store.backend.list_pages(store.path()) for e in page)
    assert after == before == [("d", True), ("empty", True), ("file", False), ("implicit", True)]
    assert [e.name for page in store.backend.list_pages(store.path("d")) for e in page] == ["x"]


def test_archived_object(store: StoreUnderTest) -> None:
    store.put("cold", data=b"frozen")
    store.archive(store.path("cold"))
    with pytest.raises(ObjectArchived) as caught:
        store.backend.head_object(store.path("cold"))
    assert caught.value.text == (f"S3 InvalidObjectState: {store.path('cold')}: object is in GLACIER and it "
                                 "is not restored; restore it (S3 RestoreObject) and retry when the restore "
                                 "has finished")
    assert caught.value.operation == "open"


def test_read_of_a_changed_or_deleted_object(store: StoreUnderTest) -> None:
    store.put("r", data=b"version one")
    info = store.backend.head_object(store.path("r"))
    store.put("r", data=b"version two")
    with pytest.raises(ObjectChanged) as changed:
        store.backend.read_range(info, 0, memoryview(bytearray(4)))
    assert (changed.value.text, changed.value.operation) == (
        f"S3 PreconditionFailed: {store.path('r')}: the object changed since it was opened", "read")
    fresh = store.backend.head_object(store.path("r"))
    store.backend.delete(store.path("r"))
    with pytest.raises(ObjectChanged) as deleted:
        store.backend.read_range(fresh, 0, memoryview(bytearray(4)))
    assert (deleted.value.text, deleted.value.operation) == (
        f"{store.path('r')}: object was deleted during the transfer", "read")


def test_keep_parent_after_delete_rename_and_rmdir(store: StoreUnderTest) -> None:
    """The last key of an implicit directory gone, the directory stays, as an explicit marker."""
    b = store.backend
    store.put("a", "b", "c", "f")
    b.delete(store.path("a", "b", "c", "f"))
    assert b.stat(store.path("a", "b", "c")).modified is not None  # now a marker: it has a time
    b.rmdir(store.path("a", "b", "c"))
    assert b.stat(store.path("a", "b")).is_dir  # rmdir keeps its parent too
    store.put("x", "g")
    b.rename(store.path("x", "g"), store.path("g"))
    assert b.stat(store.path("x")).is_dir
    assert b.stat(store.path("x")).modified is not None
    store.put("top")
    b.delete(store.path("top"))  # at the bucket level there is no parent marker to write
    assert sorted(e.name for page in b.list_pages(store.path()) for e in page) == ["a", "g", "x"]
