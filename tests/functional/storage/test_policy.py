"""The policy layer on both back ends: a virtual root nothing escapes, a bucket allow-list, append-only
and overwrite-if-unchanged with commits conditioned so that a concurrent writer cannot slip past."""

from __future__ import annotations

import pytest

from s3dsi.config.s3policy import Root, S3Policy
from s3dsi.protocol.errors import (
    DsiError,
    InvalidPath,
    IsADirectory,
    ObjectChanged,
    PathExists,
    PathNotFound,
    PermissionDenied,
)
from s3dsi.storage.backend import WriteCondition
from s3dsi.storage.policy import PolicyBackend
from tests.support.storage import MiB, StoreUnderTest


def names(view: PolicyBackend, path: str = "/") -> list[str]:
    return [e.name for page in view.list_pages(path) for e in page]


def rooted(store: StoreUnderTest, prefix: str = "home/alice", **policy: object) -> PolicyBackend:
    return PolicyBackend(store.backend, S3Policy(root=Root(store.bucket, prefix), **policy))  # type: ignore[arg-type]


@pytest.fixture
def layout(store: StoreUnderTest) -> StoreUnderTest:
    store.put("outside.txt", data=b"not yours")
    store.put("home", "alice", "in.txt", data=b"yours")
    store.put("home", "alice", "sub", "deep.txt", data=b"deep")
    store.put("home", "bob", "secret", data=b"bob's")
    store.put("home", "alice-other", "x", data=b"a neighbour with a longer name")
    return store


def test_the_root_is_all_a_user_sees(layout: StoreUnderTest) -> None:
    view = rooted(layout)
    assert names(view) == ["in.txt", "sub"]
    assert names(view, "/sub") == ["deep.txt"]
    assert view.stat("/").is_dir and view.stat("/sub").is_dir
    info = view.head_object("/in.txt")
    assert info.path == "/in.txt"
    buffer = bytearray(info.size)
    assert view.read_range(info, 0, memoryview(buffer)) == 5 and bytes(buffer) == b"yours"


@pytest.mark.parametrize("path", ["/outside.txt", f"/{'home'}/bob/secret", "/alice-other/x"])
def test_absolute_paths_stay_inside(layout: StoreUnderTest, path: str) -> None:
    view = rooted(layout)
    with pytest.raises(PathNotFound) as caught:
        view.head_object(path)
    assert "home/alice" not in caught.value.text and layout.bucket not in caught.value.text
    assert path in caught.value.text


@pytest.mark.parametrize("path", ["/..", "/../bob/secret", "/sub/../../outside.txt", "/./in.txt", "//in.txt"])
def test_unnormalised_paths_never_resolve_outside(layout: StoreUnderTest, path: str) -> None:
    """The protocol layer normalises paths; anything else that reaches the layer is refused, not resolved."""
    view = rooted(layout)
    for call in (view.stat, view.head_object, view.check_writable, view.delete,
                 lambda p: list(view.list_pages(p))):
        with pytest.raises((InvalidPath, PathNotFound)):
            call(path)


def test_renames_and_writes_stay_inside(layout: StoreUnderTest) -> None:
    view = rooted(layout)
    view.rename("/in.txt", "/sub/moved.txt")
    assert layout.read_all(layout.path("home", "alice", "sub", "moved.txt")) == b"yours"
    with pytest.raises(InvalidPath):
        view.rename("/sub/moved.txt", "/../bob/stolen")
    view.put_object("/new.txt", memoryview(b"new"))
    assert layout.read_all(layout.path("home", "alice", "new.txt")) == b"new"
    assert layout.read_all(layout.path("home", "bob", "secret")) == b"bob's"
    assert layout.read_all(layout.path("outside.txt")) == b"not yours"


def test_the_root_itself_cannot_be_removed_or_renamed(layout: StoreUnderTest) -> None:
    view = rooted(layout)
    with pytest.raises(PermissionDenied, match="root directory cannot be removed"):
        view.rmdir("/")
    with pytest.raises(PermissionDenied):
        view.rename("/", "/elsewhere")
    with pytest.raises(IsADirectory, match=r"^/: Is a directory"):
        view.delete("/")
    with pytest.raises(PathExists):
        view.mkdir("/")
    with pytest.raises(IsADirectory):
        view.check_writable("/")


def test_an_empty_root_is_an_empty_directory_that_takes_directories(store: StoreUnderTest) -> None:
    view = rooted(store, "projects/new")
    assert names(view) == [] and view.stat("/").is_dir
    view.mkdir("/data")  # MKD needs its parent: the root is one, even with nothing under it yet
    view.mkdir("/data/run1")
    assert names(view) == ["data"] and names(view, "/data") == ["run1"]
    with pytest.raises(PathNotFound):
        view.mkdir("/missing/child")


def test_errors_name_virtual_paths_only(layout: StoreUnderTest) -> None:
    view = rooted(layout)
    with pytest.raises(DsiError) as caught:
        list(view.list_pages("/nowhere"))
    assert caught.value.text.startswith("/nowhere: ") and "home/alice" not in caught.value.text
    with pytest.raises(DsiError) as caught:
        view.rmdir("/sub")
    assert "home/alice" not in caught.value.text and "/sub" in caught.value.text


def test_a_bucket_root(layout: StoreUnderTest) -> None:
    view = PolicyBackend(layout.backend, S3Policy(root=Root(layout.bucket)))
    assert names(view) == ["home", "outside.txt"]
    view.mkdir("/top")
    assert "top" in names(view)


def test_bucket_allow_list(store: StoreUnderTest) -> None:
    store.put("x.txt")
    view = PolicyBackend(store.backend, S3Policy(buckets=(store.bucket, "someone-elses-bucket")))
    assert names(view) == sorted([store.bucket, "someone-elses-bucket"])  # shown by name, unlisted too
    assert names(view, f"/{store.bucket}") == ["x.txt"]
    other = "not-allowed-bucket"
    for call in (view.stat, view.head_object, view.check_writable, view.mkdir, view.rmdir, view.delete,
                 lambda p: list(view.list_pages(p))):
        with pytest.raises(PermissionDenied, match=f"/{other}: not one of the buckets this account may use"):
            call(f"/{other}/key")
    with pytest.raises(PermissionDenied):
        view.mkdir(f"/{other}")
    with pytest.raises(PermissionDenied):
        view.rename(f"/{store.bucket}/x.txt", f"/{other}/x.txt")


# -- append-only ---------------------------------------------------------------------------------------
def test_append_only_refuses_replacing_and_removing(store: StoreUnderTest) -> None:
    store.put("old.txt", data=b"keep me")
    store.put("dir", "f", data=b"f")
    view = PolicyBackend(store.backend, S3Policy(append_only=True))
    with pytest.raises(PathExists, match=r"old\.txt: exists, and this account is append-only"):
        view.check_writable(store.path("old.txt"))
    for call, what in ((view.delete, "DELE"), (view.rmdir, "RMD"), (view.check_renamable, "RNFR")):
        with pytest.raises(PermissionDenied, match=f"{what}.* is refused: this account is append-only"):
            call(store.path("old.txt") if what != "RMD" else store.path("dir"))
    with pytest.raises(PermissionDenied, match="append-only"):
        view.rename(store.path("old.txt"), store.path("new.txt"))
    assert view.check_writable(store.path("new.txt")) == WriteCondition(must_not_exist=True,
                                                                        reason="append_only")
    view.put_object(store.path("new.txt"), memoryview(b"added"))
    view.mkdir(store.path("newdir"))
    assert store.read_all(store.path("old.txt")) == b"keep me"


def test_append_only_commit_loses_a_race_instead_of_replacing(store: StoreUnderTest) -> None:
    view = PolicyBackend(store.backend, S3Policy(append_only=True))
    path = store.path("raced.txt")
    condition = view.check_writable(path)  # the upload begins: nothing there yet
    store.put("raced.txt", data=b"the other writer")  # someone else commits first
    with pytest.raises(PathExists, match="another upload created this object meanwhile; this account is "
                                         "append-only"):
        view.put_object(path, memoryview(b"mine"), condition=condition)
    with pytest.raises(PathExists):  # a caller that forgets the condition gets it anyway
        view.put_object(path, memoryview(b"mine"))
    assert store.read_all(path) == b"the other writer"


def test_append_only_multipart_commit_is_conditional(store: StoreUnderTest) -> None:
    view = PolicyBackend(store.backend, S3Policy(append_only=True))
    path = store.path("big.bin")
    condition = view.check_writable(path)
    upload_id = view.create_upload(path)
    part = bytes(5 * MiB)
    etags = [(1, view.upload_part(path, upload_id, 1, memoryview(part))),
             (2, view.upload_part(path, upload_id, 2, memoryview(b"tail")))]
    store.put("big.bin", data=b"first")
    with pytest.raises(PathExists, match="append-only"):
        view.complete_upload(path, upload_id, etags, condition=condition)
    view.abort_upload(path, upload_id)
    assert store.read_all(path) == b"first"


# -- overwrite=if-unchanged ------------------------------------------------------------------------------
def test_if_unchanged_replaces_only_what_the_upload_saw(store: StoreUnderTest) -> None:
    view = PolicyBackend(store.backend, S3Policy(overwrite="if-unchanged"))
    path = store.path("doc.txt")
    seen = store.put("doc.txt", data=b"v1")
    condition = view.check_writable(path)
    assert condition == WriteCondition(etag=seen.etag, reason="overwrite=if-unchanged")
    store.put("doc.txt", data=b"v2 by someone else")
    with pytest.raises(ObjectChanged, match="changed since this upload began; it was not replaced"):
        view.put_object(path, memoryview(b"v3"), condition=condition)
    assert store.read_all(path) == b"v2 by someone else"
    view.put_object(path, memoryview(b"v3"), condition=view.check_writable(path))  # unchanged now
    assert store.read_all(path) == b"v3"


def test_if_unchanged_on_a_new_name(store: StoreUnderTest) -> None:
    view = PolicyBackend(store.backend, S3Policy(overwrite="if-unchanged"))
    path = store.path("fresh.txt")
    condition = view.check_writable(path)
    assert condition == WriteCondition(must_not_exist=True, reason="overwrite=if-unchanged")
    store.put("fresh.txt", data=b"someone was faster")
    with pytest.raises(ObjectChanged, match="another upload created this object meanwhile"):
        view.put_object(path, memoryview(b"mine"), condition=condition)
    assert store.read_all(path) == b"someone was faster"


def test_if_unchanged_when_the_object_was_deleted_meanwhile(store: StoreUnderTest) -> None:
    view = PolicyBackend(store.backend, S3Policy(overwrite="if-unchanged"))
    path = store.path("gone.txt")
    store.put("gone.txt", data=b"v1")
    condition = view.check_writable(path)
    store.backend.delete(path)
    with pytest.raises(ObjectChanged, match="changed since this upload began"):
        view.put_object(path, memoryview(b"v2"), condition=condition)
