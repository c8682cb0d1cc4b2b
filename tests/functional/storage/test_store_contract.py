"""The object-store seam itself, on MemoryStore and on S3Store against the moto server: the fake must page,
order and refuse exactly as S3 does, since the namespace layer above relies on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3dsi.protocol.errors import InvalidPath, PathExists, PathNotFound
from s3dsi.storage.memory import MemoryStore
from s3dsi.storage.paths import S3Path, parse_path
from s3dsi.storage.records import UploadRecords, bucket_records
from s3dsi.storage.s3 import S3Store
from s3dsi.storage.store import KeyPage, ObjectStore
from tests.support.storage import memory_store, s3_store

KEYS = ["d/", "d/a", "d/b", "d/c", "d/sub/x", "d/sub/y", "d/z", "e"]


@pytest.fixture(params=["memory", "s3"])
def store(request: pytest.FixtureRequest) -> tuple[ObjectStore, S3Path]:
    if request.param == "memory":
        under_test = memory_store()
    else:
        under_test = s3_store(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"))
    backend = under_test.backend
    assert isinstance(backend.store, MemoryStore | S3Store)
    target = parse_path(under_test.path("d"))
    for key in KEYS:
        if key.endswith("/"):
            backend.store.put_marker(target, key, "mkdir")
        else:
            backend.store.put(parse_path(under_test.path(key)), memoryview(b""))
    return backend.store, target


def pages(store: ObjectStore, target: S3Path, prefix: str, *, delimited: bool,
          limit: int) -> Iterator[KeyPage]:
    token = None
    while True:
        page = store.list_keys(target, prefix, "list", delimited=delimited, limit=limit, token=token)
        yield page
        if page.next_token is None:
            return
        token = page.next_token


def test_delimited_pages_count_a_common_prefix_once(store: tuple[ObjectStore, S3Path]) -> None:
    objects, target = store
    listed = pages(objects, target, "d/", delimited=True, limit=3)
    got = [([k.key for k in p.keys], p.prefixes) for p in listed]
    assert got == [(["d/", "d/a", "d/b"], []), (["d/c", "d/z"], ["d/sub/"])]


def test_undelimited_pages_in_key_order(store: tuple[ObjectStore, S3Path]) -> None:
    objects, target = store
    got = [[k.key for k in p.keys] for p in pages(objects, target, "d/", delimited=False, limit=4)]
    assert got == [["d/", "d/a", "d/b", "d/c"], ["d/sub/x", "d/sub/y", "d/z"]]
    assert [k.key for k in objects.list_keys(target, "d/sub/", "stat", limit=1).keys] == ["d/sub/x"]
    assert objects.list_keys(target, "nothing/", "stat", limit=1) == KeyPage()


def test_head_delete_and_copy(store: tuple[ObjectStore, S3Path]) -> None:
    objects, target = store
    a = parse_path(f"/{target.bucket}/d/a")
    head = objects.head(a, "stat")
    assert head is not None
    assert (head.size, head.storage_class, head.tag_count) == (0, "STANDARD", 0)
    assert objects.head(parse_path(f"/{target.bucket}/d"), "stat") is None  # only "d/" exists
    copy = parse_path(f"/{target.bucket}/copy")
    objects.copy(a, head, copy)
    assert objects.head(copy, "stat") is not None
    objects.delete(target, "d/a", "unlink")
    objects.delete(target, "d/a", "unlink")  # a missing key: no error, as in S3
    assert objects.head(a, "stat") is None


def test_buckets(store: tuple[ObjectStore, S3Path]) -> None:
    objects, target = store
    names = [name for name, _ in objects.list_buckets(None).names]
    assert target.bucket in names
    objects.check_bucket(target, "stat")
    with pytest.raises(PathNotFound, match="NoSuchBucket"):
        objects.check_bucket(parse_path("/no-such-bucket-s3dsi-store"), "stat")
    with pytest.raises(PathExists, match="BucketAlreadyOwnedByYou"):
        objects.create_bucket(parse_path(f"/{target.bucket}"))


def test_small_objects_and_restart_records(store: tuple[ObjectStore, S3Path]) -> None:
    """The daemon's own records: written and read whole in the default class, missing ones None, too
    large ones refused; listed under the reserved prefix and hidden from the namespace above."""
    objects, target = store
    objects.put_small(target, ".s3dsi/uploads/x.json", b'{"a": 1}', "write")
    got = objects.get_small(target, ".s3dsi/uploads/x.json", "list", 1024)
    assert got is not None and got[0] == b'{"a": 1}' and got[1].tzinfo is not None
    assert objects.get_small(target, ".s3dsi/uploads/none.json", "list", 1024) is None
    with pytest.raises(InvalidPath):
        objects.get_small(target, ".s3dsi/uploads/x.json", "list", 4)
    records = UploadRecords(objects, target)
    records.put("0123456789abcdef0123456789abcdef", {"user": "alice"})
    assert [dict(r.entry) for r in records.all()] == [{"user": "alice"}]
    assert [r.key for r in bucket_records(objects, target.bucket)] == [target.key]
    records.delete("0123456789abcdef0123456789abcdef")
    assert records.all() == []
