"""MemoryBackend specifics: its knobs (part minimum, page size, clock), S3 strictness, thread safety.

The behaviour it shares with S3Backend is tested on both in tests/functional/storage.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import crc32c
import pytest

from s3dsi.protocol.errors import DsiError, ObjectArchived, ObjectChanged, PathExists, PathNotFound
from s3dsi.storage.backend import Backend
from s3dsi.storage.memory import MemoryBackend
from s3dsi.storage.paths import parse_path


@pytest.fixture
def memory() -> MemoryBackend:
    backend = MemoryBackend(min_part_size=10, page_size=3)
    backend.create_bucket("bkt")
    return backend


def put(backend: MemoryBackend, path: str, data: bytes = b"x") -> None:
    backend.put_object(path, memoryview(data))


def test_is_a_backend() -> None:
    assert isinstance(MemoryBackend(), Backend)


def test_pages_follow_page_size_and_are_lazy(memory: MemoryBackend) -> None:
    memory.mkdir("/bkt/d")
    for name in ["a", "b", "c", "e", "f"]:
        put(memory, f"/bkt/d/{name}")
    put(memory, "/bkt/d/sub/x")
    put(memory, "/bkt/d/sub/y")
    pages = memory.list_pages("/bkt/d")
    first = next(pages)
    put(memory, "/bkt/d/z")  # added after the first page: a lazy listing still sees it
    rest = list(pages)
    # S3 counts the marker "d/" as one of the page's keys, and "sub/" once.
    assert [[e.name for e in p] for p in [first, *rest]] == [["a", "b"], ["c", "e", "f"], ["sub", "z"]]


def test_minimum_part_size_is_a_parameter(memory: MemoryBackend) -> None:
    upload = memory.create_upload("/bkt/m")
    e1 = memory.upload_part("/bkt/m", upload, 1, memoryview(b"0123456789"))
    e2 = memory.upload_part("/bkt/m", upload, 2, memoryview(b"z"))
    info = memory.complete_upload("/bkt/m", upload, [(1, e1), (2, e2)])
    expected = hashlib.md5(hashlib.md5(b"0123456789").digest() + hashlib.md5(b"z").digest()).hexdigest()
    assert info.etag == f"{expected}-2"
    assert info.size == 11


def test_complete_checks_parts_like_s3(memory: MemoryBackend) -> None:
    upload = memory.create_upload("/bkt/m")
    e1 = memory.upload_part("/bkt/m", upload, 1, memoryview(b"0123456789"))
    e2 = memory.upload_part("/bkt/m", upload, 2, memoryview(b"z"))
    with pytest.raises(DsiError, match="InvalidPartOrder"):
        memory.complete_upload("/bkt/m", upload, [(2, e2), (1, e1)])
    with pytest.raises(DsiError, match="InvalidPart"):
        memory.complete_upload("/bkt/m", upload, [(1, "0" * 32), (2, e2)])
    with pytest.raises(DsiError, match="InvalidPart"):
        memory.complete_upload("/bkt/m", upload, [(1, e1), (3, e2)])
    with pytest.raises(DsiError, match="InvalidArgument"):
        memory.upload_part("/bkt/m", upload, 10_001, memoryview(b"x"))
    with pytest.raises(PathNotFound, match="NoSuchUpload"):
        memory.upload_part("/bkt/other", upload, 1, memoryview(b"x"))
    memory.complete_upload("/bkt/m", upload, [(1, e1)])  # a subset of parts is fine
    with pytest.raises(PathNotFound):
        memory.complete_upload("/bkt/m", upload, [(1, e1)])


def test_wrong_crc32c_is_refused(memory: MemoryBackend) -> None:
    with pytest.raises(DsiError, match="BadDigest"):
        memory.put_object("/bkt/k", memoryview(b"abc"), crc32c=1)
    upload = memory.create_upload("/bkt/m")
    with pytest.raises(DsiError, match="BadDigest"):
        memory.upload_part("/bkt/m", upload, 1, memoryview(b"abc"), crc32c=crc32c.crc32c(b"abd"))


def test_tag_limits(memory: MemoryBackend) -> None:
    put(memory, "/bkt/k")
    assert not memory.set_tags("/bkt/k", {f"k{i}": "v" for i in range(11)})
    assert not memory.set_tags("/bkt/k", {"k": "v" * 257})
    with pytest.raises(DsiError, match="InvalidTag"):
        memory.put_object("/bkt/t", memoryview(b"x"), tags={"k" * 129: "v"})


def test_foreign_bucket_is_reachable_but_not_listed(memory: MemoryBackend) -> None:
    memory.create_bucket("theirs", listed=False)
    assert memory.stat("/theirs").is_dir
    assert [e.name for page in memory.list_pages("/") for e in page] == ["bkt"]
    with pytest.raises(PathExists, match="another account"):
        memory.mkdir("/theirs")


def test_restore_in_progress_is_still_archived(memory: MemoryBackend) -> None:
    put(memory, "/bkt/cold")
    info = memory.head_object("/bkt/cold")
    memory.archive("/bkt/cold", "DEEP_ARCHIVE")
    memory.restore("/bkt/cold", finished=False)
    with pytest.raises(ObjectArchived, match="in progress"):
        memory.head_object("/bkt/cold")
    with pytest.raises(ObjectArchived):
        memory.read_range(info, 0, memoryview(bytearray(1)))


def test_clock_sets_modification_times_to_whole_seconds() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    backend = MemoryBackend(clock=lambda: moment)
    backend.mkdir("/bkt")
    put(backend, "/bkt/k")
    assert backend.stat("/bkt/k").modified == moment.replace(microsecond=0)


def test_concurrent_part_uploads_and_reads() -> None:
    backend = MemoryBackend(min_part_size=1)
    backend.create_bucket("bkt")
    upload = backend.create_upload("/bkt/m")
    parts = [bytes([n]) * 1000 for n in range(1, 65)]

    def send(number: int) -> tuple[int, str]:
        return number, backend.upload_part("/bkt/m", upload, number, memoryview(parts[number - 1]))

    with ThreadPoolExecutor(8) as pool:
        etags = sorted(pool.map(send, range(1, 65)))
    info = backend.complete_upload("/bkt/m", upload, etags)
    out = bytearray(info.size)
    view = memoryview(out)

    def read(offset: int) -> int:
        return backend.read_range(info, offset, view[offset:offset + 1000])

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(read, range(0, info.size, 1000))) == info.size
    assert bytes(out) == b"".join(parts)


def test_copy_is_pinned_to_the_etag_seen(memory: MemoryBackend) -> None:
    """S3's CopySourceIfMatch: a rename never copies a newer object than the one it looked at."""
    put(memory, "/bkt/a", b"one")
    source = parse_path("/bkt/a")
    head = memory.store.head(source, "rename")
    assert head is not None
    put(memory, "/bkt/a", b"two")
    with pytest.raises(ObjectChanged, match="PreconditionFailed"):
        memory.store.copy(source, head, parse_path("/bkt/b"))
    assert memory.store.head(parse_path("/bkt/b"), "stat") is None
