"""Behaviour every Backend must show, run on MemoryBackend and on S3Backend against the moto server."""

from __future__ import annotations

import hashlib
import os

import crc32c
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
)
from s3dsi.storage.backend import Backend
from tests.support.storage import StoreUnderTest, memory_store, s3_store

MiB = 1024 * 1024


def names(backend: Backend, path: str) -> dict[str, bool]:
    """name -> is_dir for a whole listing."""
    return {e.name: e.is_dir for page in backend.list_pages(path) for e in page}


def test_backend_satisfies_protocol(store: StoreUnderTest) -> None:
    assert isinstance(store.backend, Backend)


# -- stat ---------------------------------------------------------------------------------------------
def test_stat_root_bucket_object_and_prefix(store: StoreUnderTest) -> None:
    b = store.backend
    info = store.put("a", "b.txt", data=b"hello")
    assert b.stat("/").is_dir
    bucket = b.stat(store.path())
    assert bucket.is_dir
    assert bucket.name == store.bucket
    entry = b.stat(store.path("a", "b.txt"))
    assert (entry.name, entry.is_dir, entry.size, entry.etag) == ("b.txt", False, 5, info.etag)
    assert entry.etag == hashlib.md5(b"hello").hexdigest()  # unquoted
    assert entry.modified is not None
    assert entry.modified.tzinfo is not None
    prefix = b.stat(store.path("a"))
    assert prefix.is_dir
    assert prefix.modified is None
    assert prefix.size == 0


def test_stat_directory_marker_gives_its_time(store: StoreUnderTest) -> None:
    store.backend.mkdir(store.path("d"))
    entry = store.backend.stat(store.path("d"))
    assert entry.is_dir
    assert entry.modified is not None


@pytest.mark.parametrize("parts", [("missing",), ("a", "missing")])
def test_stat_missing(store: StoreUnderTest, parts: tuple[str, ...]) -> None:
    store.put("a", "x")
    with pytest.raises(PathNotFound):
        store.backend.stat(store.path(*parts))


def test_stat_missing_bucket(store: StoreUnderTest) -> None:
    with pytest.raises(PathNotFound):
        store.backend.stat("/no-such-bucket-s3dsi-test")
    with pytest.raises(PathNotFound):
        store.backend.stat("/no-such-bucket-s3dsi-test/key")


def test_unique_is_distinct_per_directory_and_stable(store: StoreUnderTest) -> None:
    for key in ("a/x", "b/x", "a/c/x"):
        store.put(*key.split("/"))
    dirs = [store.path("a"), store.path("b"), store.path("a", "c"), store.path()]
    uniques = [store.backend.stat(d).unique for d in dirs]
    assert len(set(uniques)) == len(uniques)
    assert uniques == [store.backend.stat(d).unique for d in dirs]
    listed = {e.name: e.unique for page in store.backend.list_pages(store.path()) for e in page}
    assert listed["a"] == uniques[0]


# -- listing ------------------------------------------------------------------------------------------
def test_list_bucket_root_and_subdirectory(store: StoreUnderTest) -> None:
    b = store.backend
    store.put("top.txt")
    store.put("a", "one")
    store.put("a", "two", data=b"22")
    store.put("a", "deep", "three")
    b.mkdir(store.path("empty"))
    assert names(b, store.path()) == {"top.txt": False, "a": True, "empty": True}
    assert names(b, store.path("a")) == {"one": False, "two": False, "deep": True}
    two = next(e for page in b.list_pages(store.path("a")) for e in page if e.name == "two")
    assert two.size == 2
    assert two.etag == hashlib.md5(b"22").hexdigest()
    assert two.storage_class == "STANDARD"


def test_listing_is_in_key_order(store: StoreUnderTest) -> None:
    for key in ("b/x", "a-b", "a/x", "c", "a.txt"):
        store.put(*key.split("/"))
    listed = [e.name for page in store.backend.list_pages(store.path()) for e in page]
    assert listed == ["a-b", "a.txt", "a", "b", "c"]  # "a-b" < "a.txt" < "a/" in S3's byte order


def test_list_empty_directory_has_no_entries_and_hides_its_marker(store: StoreUnderTest) -> None:
    store.backend.mkdir(store.path("empty"))
    assert names(store.backend, store.path("empty")) == {}


def test_list_errors_are_raised_by_the_call_itself(store: StoreUnderTest) -> None:
    store.put("file")
    with pytest.raises(NotADirectory):
        store.backend.list_pages(store.path("file"))
    with pytest.raises(PathNotFound):
        store.backend.list_pages(store.path("missing"))
    with pytest.raises(PathNotFound):
        store.backend.list_pages("/no-such-bucket-s3dsi-test")


def test_list_root_shows_the_bucket(store: StoreUnderTest) -> None:
    assert names(store.backend, "/").get(store.bucket) is True


# -- mkdir --------------------------------------------------------------------------------------------
def test_mkdir_creates_marker_and_refuses_existing(store: StoreUnderTest) -> None:
    b = store.backend
    b.mkdir(store.path("d"))
    assert b.stat(store.path("d")).is_dir
    with pytest.raises(PathExists):
        b.mkdir(store.path("d"))
    store.put("f")
    with pytest.raises(PathExists):
        b.mkdir(store.path("f"))
    store.put("implicit", "x")
    with pytest.raises(PathExists):
        b.mkdir(store.path("implicit"))


def test_mkdir_parent_must_exist(store: StoreUnderTest) -> None:
    b = store.backend
    with pytest.raises(PathNotFound):
        b.mkdir(store.path("p", "c"))
    b.mkdir(store.path("p"))
    b.mkdir(store.path("p", "c"))
    store.put("implicit", "x")  # a prefix without a marker is a directory too
    b.mkdir(store.path("implicit", "c"))
    assert names(b, store.path("p")) == {"c": True}
    with pytest.raises(PathNotFound):
        b.mkdir("/no-such-bucket-s3dsi-test/d")


def test_mkdir_bucket(store: StoreUnderTest) -> None:
    name = f"s3dsi-new-{os.urandom(4).hex()}"
    store.backend.mkdir(f"/{name}")
    assert store.backend.stat(f"/{name}").is_dir
    with pytest.raises(PathExists):
        store.backend.mkdir(f"/{name}")
    store.backend.rmdir(f"/{name}")
    with pytest.raises(PathNotFound):
        store.backend.stat(f"/{name}")


@pytest.mark.parametrize("name", ["Upper", "ab", "under_score", "192.168.1.1", "a..b"])
def test_mkdir_bucket_invalid_name(store: StoreUnderTest, name: str) -> None:
    with pytest.raises(InvalidPath, match="InvalidBucketName"):
        store.backend.mkdir(f"/{name}")


def test_mkdir_root_exists(store: StoreUnderTest) -> None:
    with pytest.raises(PathExists):
        store.backend.mkdir("/")


# -- rmdir / delete ----------------------------------------------------------------------------------
def test_rmdir(store: StoreUnderTest) -> None:
    b = store.backend
    b.mkdir(store.path("d"))
    store.put("d", "x")
    with pytest.raises(DirectoryNotEmpty):
        b.rmdir(store.path("d"))
    b.delete(store.path("d", "x"))
    b.rmdir(store.path("d"))
    with pytest.raises(PathNotFound):
        b.stat(store.path("d"))
    with pytest.raises(PathNotFound):
        b.rmdir(store.path("d"))
    store.put("f")
    with pytest.raises(NotADirectory):
        b.rmdir(store.path("f"))
    store.put("implicit", "x")  # no marker: not empty either
    with pytest.raises(DirectoryNotEmpty):
        b.rmdir(store.path("implicit"))


def test_rmdir_non_empty_bucket(store: StoreUnderTest) -> None:
    store.put("x")
    with pytest.raises(DirectoryNotEmpty):
        store.backend.rmdir(store.path())


def test_delete(store: StoreUnderTest) -> None:
    b = store.backend
    store.put("d", "x")
    with pytest.raises(IsADirectory):
        b.delete(store.path("d"))
    with pytest.raises(IsADirectory):
        b.delete(store.path())
    b.delete(store.path("d", "x"))
    with pytest.raises(PathNotFound):
        b.stat(store.path("d", "x"))
    with pytest.raises(PathNotFound):
        b.delete(store.path("d", "x"))


# -- rename -------------------------------------------------------------------------------------------
def test_rename_moves_content_and_tags(store: StoreUnderTest) -> None:
    b = store.backend
    store.put("src", data=b"payload", tags={"md5": "abc"})
    b.mkdir(store.path("d"))
    b.rename(store.path("src"), store.path("d", "dst"))
    with pytest.raises(PathNotFound):
        b.stat(store.path("src"))
    assert store.read_all(store.path("d", "dst")) == b"payload"
    assert b.get_tags(store.path("d", "dst")) == {"md5": "abc"}


def test_rename_overwrites_file_and_same_path_is_noop(store: StoreUnderTest) -> None:
    b = store.backend
    store.put("a", data=b"new")
    store.put("b", data=b"old")
    b.rename(store.path("a"), store.path("b"))
    assert store.read_all(store.path("b")) == b"new"
    b.rename(store.path("b"), store.path("b"))
    assert store.read_all(store.path("b")) == b"new"


def test_rename_errors(store: StoreUnderTest) -> None:
    b = store.backend
    store.put("d", "x")
    store.put("f")
    with pytest.raises(NotSupported, match="directory rename"):
        b.rename(store.path("d"), store.path("e"))
    with pytest.raises(NotSupported):
        b.rename(store.path(), "/other")
    with pytest.raises(PathNotFound):
        b.rename(store.path("missing"), store.path("g"))
    with pytest.raises(IsADirectory):
        b.rename(store.path("f"), store.path("d"))
    with pytest.raises(PathNotFound):
        b.rename(store.path("f"), "/no-such-bucket-s3dsi/g")
    assert b.stat(store.path("f")).size == 4


def test_writes_create_implicit_directories(store: StoreUnderTest) -> None:
    """S3 prefixes are implicit: an upload may name a directory that has no marker yet."""
    b = store.backend
    b.check_writable(store.path("newdir", "sub", "f"))
    b.put_object(store.path("newdir", "sub", "f"), memoryview(b"data"))
    assert b.stat(store.path("newdir")).is_dir
    with pytest.raises(PathNotFound):
        b.check_writable("/no-such-bucket-s3dsi/f")


# -- reading ------------------------------------------------------------------------------------------
def test_head_object(store: StoreUnderTest) -> None:
    b = store.backend
    put = store.put("k", data=b"12345", tags={"a": "1"})
    info = b.head_object(store.path("k"))
    assert (info.size, info.etag, info.storage_class) == (5, put.etag, "STANDARD")
    assert info.tags == {"a": "1"}
    store.put("d", "x")
    with pytest.raises(IsADirectory):
        b.head_object(store.path("d"))
    with pytest.raises(IsADirectory):
        b.head_object(store.path())
    with pytest.raises(PathNotFound):
        b.head_object(store.path("missing"))


def test_archived_object_needs_restore(store: StoreUnderTest) -> None:
    store.put("cold", data=b"frozen")
    store.archive(store.path("cold"))
    with pytest.raises(ObjectArchived, match="GLACIER"):
        store.backend.head_object(store.path("cold"))
    store.restore(store.path("cold"))
    assert store.read_all(store.path("cold")) == b"frozen"


def test_read_range(store: StoreUnderTest) -> None:
    data = os.urandom(100_000)
    store.put("r", data=data)
    info = store.backend.head_object(store.path("r"))
    buf = bytearray(30_000)
    assert store.backend.read_range(info, 10, memoryview(buf)) == 30_000
    assert bytes(buf) == data[10:30_010]
    assert store.backend.read_range(info, 90_000, memoryview(buf)) == 10_000
    assert bytes(buf[:10_000]) == data[90_000:]
    assert store.backend.read_range(info, 100_000, memoryview(buf)) == 0
    assert store.backend.read_range(info, 0, memoryview(buf)[:0]) == 0


def test_read_range_is_pinned_to_the_etag(store: StoreUnderTest) -> None:
    store.put("r", data=b"version one")
    info = store.backend.head_object(store.path("r"))
    store.put("r", data=b"version two")
    with pytest.raises(ObjectChanged):
        store.backend.read_range(info, 0, memoryview(bytearray(4)))
    fresh = store.backend.head_object(store.path("r"))
    store.backend.delete(store.path("r"))
    with pytest.raises(ObjectChanged):
        store.backend.read_range(fresh, 0, memoryview(bytearray(4)))


def test_tags(store: StoreUnderTest) -> None:
    b = store.backend
    store.put("t")
    assert b.get_tags(store.path("t")) == {}
    assert b.set_tags(store.path("t"), {"adler32": "01020304", "md5": "ff"})
    assert b.get_tags(store.path("t")) == {"adler32": "01020304", "md5": "ff"}
    assert b.head_object(store.path("t"), with_tags=True).tags == {"adler32": "01020304", "md5": "ff"}
    with pytest.raises(PathNotFound):
        b.get_tags(store.path("missing"))
    with pytest.raises(PathNotFound):
        b.set_tags(store.path("missing"), {"a": "b"})


# -- writing ------------------------------------------------------------------------------------------
def test_check_writable(store: StoreUnderTest) -> None:
    b = store.backend
    b.check_writable(store.path("new"))
    store.put("d", "x")
    b.check_writable(store.path("d", "new"))
    b.check_writable(store.path("d", "x"))  # overwriting a file is allowed
    with pytest.raises(IsADirectory):
        b.check_writable(store.path("d"))
    with pytest.raises(IsADirectory):
        b.check_writable(store.path())
    b.check_writable(store.path("nodir", "new"))  # prefixes are implicit in S3
    with pytest.raises(PathNotFound):
        b.check_writable("/no-such-bucket-s3dsi-test/new")
    with pytest.raises(InvalidPath):
        b.check_writable(store.path("k" * 1100))


def test_put_object_with_crc32c(store: StoreUnderTest) -> None:
    data = os.urandom(10_000)
    info = store.backend.put_object(store.path("c"), memoryview(data), crc32c=crc32c.crc32c(data))
    assert info.size == 10_000
    assert info.etag == hashlib.md5(data).hexdigest()
    assert store.read_all(store.path("c")) == data


def test_put_object_from_a_slice_of_a_larger_buffer(store: StoreUnderTest) -> None:
    buffer = bytearray(os.urandom(4096))
    store.backend.put_object(store.path("s"), memoryview(buffer)[100:2100])
    assert store.read_all(store.path("s")) == bytes(buffer[100:2100])


def test_multipart_upload_lifecycle(store: StoreUnderTest) -> None:
    b = store.backend
    path = store.path("big")
    first, last = os.urandom(5 * MiB), os.urandom(1000)
    upload_id = b.create_upload(path)
    other = b.create_upload(store.path("big2"))  # same prefix, another key
    e2 = b.upload_part(path, upload_id, 2, memoryview(last), crc32c=crc32c.crc32c(last))
    e1 = b.upload_part(path, upload_id, 1, memoryview(first))
    assert [u.upload_id for u in b.list_uploads(path)] == [upload_id]
    parts = b.list_parts(path, upload_id)
    assert [(p.number, p.size, p.etag) for p in parts] == [(1, 5 * MiB, e1), (2, 1000, e2)]
    info = b.complete_upload(path, upload_id, [(1, e1), (2, e2)])
    assert info.size == 5 * MiB + 1000
    assert info.etag.endswith("-2")
    assert store.read_all(path) == first + last
    assert b.list_uploads(path) == []
    b.abort_upload(store.path("big2"), other)
    b.abort_upload(store.path("big2"), other)  # idempotent
    assert b.list_uploads(store.path("big2")) == []


def test_multipart_parts_below_minimum_are_refused(store: StoreUnderTest) -> None:
    b = store.backend
    path = store.path("small")
    upload_id = b.create_upload(path)
    e1 = b.upload_part(path, upload_id, 1, memoryview(b"a" * 1000))
    e2 = b.upload_part(path, upload_id, 2, memoryview(b"b" * 1000))
    with pytest.raises(DsiError, match="EntityTooSmall"):
        b.complete_upload(path, upload_id, [(1, e1), (2, e2)])
    b.abort_upload(path, upload_id)


def test_list_parts_of_unknown_upload(store: StoreUnderTest) -> None:
    store.put("k")
    with pytest.raises(PathNotFound):
        store.backend.list_parts(store.path("k"), "no-such-upload")


@pytest.mark.parametrize("name", ["with space", "plus+sign", "percent%20", "ünïcödé", "semi;colon=eq",
                                  "a&b?c"])
def test_names_with_special_characters(store: StoreUnderTest, name: str) -> None:
    b = store.backend
    b.mkdir(store.path("dir " + name))
    store.put("dir " + name, name, data=name.encode())
    assert names(b, store.path()) == {"dir " + name: True}
    assert names(b, store.path("dir " + name)) == {name: False}
    assert store.read_all(store.path("dir " + name, name)) == name.encode()
    b.rename(store.path("dir " + name, name), store.path(name))
    assert b.stat(store.path(name)).size == len(name.encode())


def test_implicit_directory_survives_its_last_file(store: StoreUnderTest) -> None:
    """Deleting or renaming away the last file of a directory leaves the (now empty) directory."""
    b = store.backend
    b.put_object(store.path("imp", "sub", "f"), memoryview(b"x"))
    b.put_object(store.path("imp", "g"), memoryview(b"y"))
    b.delete(store.path("imp", "sub", "f"))
    assert b.stat(store.path("imp", "sub")).is_dir
    assert [e.name for page in b.list_pages(store.path("imp", "sub")) for e in page] == []
    b.rename(store.path("imp", "g"), store.path("moved"))
    assert b.stat(store.path("imp")).is_dir
    b.rmdir(store.path("imp", "sub"))
    b.rmdir(store.path("imp"))


@pytest.fixture(params=["memory", "s3"])
def archive_class_store(request: pytest.FixtureRequest) -> StoreUnderTest:
    """New objects go to GLACIER, as with ``storage_class GLACIER`` in the S3 conf."""
    if request.param == "memory":
        return memory_store(storage_class="GLACIER")
    return s3_store(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"),
                    storage_class="GLACIER")


def test_upload_into_an_archive_class_completes(archive_class_store: StoreUnderTest) -> None:
    """Completing a multipart upload reports the stored object; that it cannot be read back before a
    restore is no reason to fail the upload (S3Backend used to, by checking it as if opening it)."""
    b, path = archive_class_store.backend, archive_class_store.path("cold")
    first = os.urandom(5 * MiB)
    upload_id = b.create_upload(path)
    parts = [(1, b.upload_part(path, upload_id, 1, memoryview(first))),
             (2, b.upload_part(path, upload_id, 2, memoryview(b"tail")))]
    info = b.complete_upload(path, upload_id, parts)
    assert (info.size, info.storage_class, info.tags) == (5 * MiB + 4, "GLACIER", {})
    assert info.etag.endswith("-2")
    assert b.stat(path).etag == info.etag
    with pytest.raises(ObjectArchived):
        b.head_object(path)
