"""S3 requests per small file: one PutObject per upload and one GET per download in the common case,
with the directory rules intact (an upload still cannot turn a directory into a file)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from s3dsi.protocol.errors import IsADirectory, PathNotFound
from s3dsi.storage.memory import MemoryStore
from s3dsi.storage.namespace import Namespace


class CountingStore:
    """A MemoryStore that counts the requests the namespace makes (one call, one request)."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


@pytest.fixture
def store() -> CountingStore:
    s = CountingStore()
    s.inner.create_bucket(_target("/b")[0])
    return s


def upload(ns: Namespace, path: str, data: bytes = b"x" * 100) -> None:
    if not ns.writable_known(path):
        ns.check_writable(path)
    ns.put_object(path, memoryview(data))


def test_a_tree_of_small_uploads_costs_one_put_each(store: CountingStore) -> None:
    ns = Namespace(store)  # type: ignore[arg-type]
    ns.mkdir("/b/dir")
    store.calls.clear()
    for i in range(50):
        upload(ns, f"/b/dir/f{i}")
    assert store.calls["put"] == 50
    assert store.calls["list_keys"] == 0  # MKD made it: known empty


def test_an_existing_directory_is_listed_once_not_per_upload(store: CountingStore) -> None:
    ns = Namespace(store)  # type: ignore[arg-type]
    store.inner.put(*_target("/b/old/sub/x"), memoryview(b"x"))
    for i in range(50):
        upload(ns, f"/b/old/f{i}")
    assert store.calls["put"] == 50
    assert store.calls["list_keys"] <= 2  # the first by name, then one listing of the directory


def test_a_directory_stays_no_file_to_upload_onto(store: CountingStore) -> None:
    ns = Namespace(store)  # type: ignore[arg-type]
    store.inner.put(*_target("/b/d/sub/x"), memoryview(b"x"))
    list(ns.list_pages("/b/d"))  # a client's MLSD teaches the cache
    assert not ns.writable_known("/b/d/sub")
    with pytest.raises(IsADirectory):
        ns.check_writable("/b/d/sub")
    upload(ns, "/b/d/new")
    ns.mkdir("/b/d/made")
    with pytest.raises(IsADirectory):
        ns.check_writable("/b/d/made")  # our own MKD is known at once
    upload(ns, "/b/d/deeper/file")  # a key below makes "deeper" a directory of d
    assert not ns.writable_known("/b/d/deeper")


def test_a_download_opens_with_one_get(store: CountingStore) -> None:
    ns = Namespace(store)  # type: ignore[arg-type]
    data = bytes(range(256)) * 10
    store.inner.put(*_target("/b/small"), memoryview(data))
    store.calls.clear()
    into = memoryview(bytearray(1 << 20))
    info, count = ns.open_read("/b/small", 0, into)
    assert (info.size, count, bytes(into[:count])) == (len(data), len(data), data)
    assert dict(store.calls) == {"read_first": 1}
    with pytest.raises(PathNotFound):
        ns.open_read("/b/missing", 0, into)
    store.inner.put(*_target("/b/adir/x"), memoryview(b"x"))
    with pytest.raises(IsADirectory):
        ns.open_read("/b/adir", 0, into)


def _target(path: str) -> tuple[Any]:
    from s3dsi.storage.paths import parse_path  # noqa: PLC0415

    return (parse_path(path),)
