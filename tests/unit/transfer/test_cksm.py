from __future__ import annotations

import hashlib
import zlib

import crc32c
import pytest

from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.cksm import UnknownChecksumAlgorithm, compute_checksum
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.upload import UploadEngine
from s3dsi.transfer.workers import PartWorkers

from .drive import blocks_of, payload, run_streams
from .fakes import FakeBackend

P = 64 * 1024
PATH = "/bucket/data"


async def cksm(backend: FakeBackend, workers: PartWorkers, alg: str, offset: int = 0,
               length: int = -1) -> str:
    return await compute_checksum(backend, PATH, alg, offset, length, pool=BufferPool(8 * P),
                                  workers=workers, part_size=P)


async def uploaded(workers: PartWorkers, data: bytes) -> FakeBackend:
    backend = FakeBackend()
    engine = UploadEngine(backend, PATH, plan=PartPlan.uniform(P), pool=BufferPool(8 * P), workers=workers)
    await engine.open()
    await run_streams(engine, data, [blocks_of(len(data), 8192)])
    await engine.finish()
    return backend


@pytest.mark.parametrize("size", [10, 3 * P + 5])
async def test_whole_object_answered_from_tags(workers: PartWorkers, size: int) -> None:
    data = payload(size)
    backend = await uploaded(workers, data)
    reads: list[int] = []
    backend.before_read = reads.append
    assert await cksm(backend, workers, "md5") == hashlib.md5(data).hexdigest()
    assert await cksm(backend, workers, "ADLER32") == f"{zlib.adler32(data):08x}"
    assert await cksm(backend, workers, "crc32c", 0, size) == f"{crc32c.crc32c(data):08x}"
    assert reads == []
    # not in the tags: read back
    assert await cksm(backend, workers, "SHA256") == hashlib.sha256(data).hexdigest()
    assert reads


async def test_stale_tags_are_ignored(workers: PartWorkers) -> None:
    data = payload(3 * P)
    backend = await uploaded(workers, data)
    tags = dict(backend.objects[PATH].tags)
    other = payload(3 * P, seed=1)
    backend.put(PATH, other, tags=tags)  # someone copied our tags onto different content
    assert await cksm(backend, workers, "MD5") == hashlib.md5(other).hexdigest()
    tags["s3dsi-size"] = "1"
    backend.put(PATH, data[:100], tags={k: v for k, v in tags.items() if k != "s3dsi-etag"})
    assert await cksm(backend, workers, "MD5") == hashlib.md5(data[:100]).hexdigest()


async def test_tags_without_an_etag_need_the_stores_own_checksum(workers: PartWorkers) -> None:
    """A single PutObject's tags carry no ETag: they apply only while the store's own full-object CRC32C
    (which S3 verified against the data) equals their s3dsi-crc32c. A same-sized object that carries
    those tags (copied, or hand-made) is read back instead."""
    data = payload(100)
    backend = await uploaded(workers, data)  # a single PutObject, with its CRC32C
    tags = dict(backend.objects[PATH].tags)
    assert "s3dsi-etag" not in tags and backend.objects[PATH].crc32c == tags["s3dsi-crc32c"]
    reads: list[int] = []
    backend.before_read = reads.append
    assert await cksm(backend, workers, "MD5") == hashlib.md5(data).hexdigest()
    assert reads == []  # provably ours: answered from the tags

    other = payload(100, seed=3)
    backend.put(PATH, other, tags=tags)  # same size, our tags, no store checksum
    assert await cksm(backend, workers, "MD5") == hashlib.md5(other).hexdigest()
    assert reads  # read back: the size alone proves nothing
    reads.clear()
    backend.put(PATH, other, tags=tags, crc32c=crc32c.crc32c(other))  # a checksum, but not the tagged one
    assert await cksm(backend, workers, "ADLER32") == f"{zlib.adler32(other):08x}"
    assert reads


async def test_a_read_back_never_vouches_for_stale_tags(workers: PartWorkers) -> None:
    """Remembering a read-back digest adds an ETag tag; digests already there that did not prove
    themselves must go, or they would look proven afterwards."""
    data = payload(100)
    stale = {"s3dsi-size": "100", "s3dsi-md5": "0" * 32, "s3dsi-crc32c": "0" * 8}
    backend = FakeBackend()
    backend.put(PATH, data, tags=stale)
    assert await cksm(backend, workers, "ADLER32") == f"{zlib.adler32(data):08x}"  # read back, remembered
    assert "s3dsi-md5" not in backend.objects[PATH].tags
    assert await cksm(backend, workers, "MD5") == hashlib.md5(data).hexdigest()


async def test_one_read_back_proves_the_tags_of_a_store_without_checksums(workers: PartWorkers) -> None:
    """A store that keeps no checksum of a single PutObject: the first CKSM reads the object back; its
    digest equals the upload's tag, so the upload's other digests describe these bytes too and are
    kept under the ETag: the next CKSM of another algorithm reads nothing."""
    data = payload(100)
    backend = await uploaded(workers, data)
    backend.objects[PATH].crc32c = None
    reads: list[int] = []
    backend.before_read = reads.append
    assert await cksm(backend, workers, "MD5") == hashlib.md5(data).hexdigest()
    assert reads
    reads.clear()
    assert await cksm(backend, workers, "ADLER32") == f"{zlib.adler32(data):08x}"
    assert reads == []
    assert backend.objects[PATH].tags["s3dsi-etag"] == backend.objects[PATH].etag


async def test_ranges_and_past_eof(workers: PartWorkers) -> None:
    data = payload(5 * P + 17)
    backend = FakeBackend()
    backend.put(PATH, data)
    assert await cksm(backend, workers, "MD5", 1000, 5000) == hashlib.md5(data[1000:6000]).hexdigest()
    want = hashlib.sha1(data[P - 1:3 * P - 1]).hexdigest()
    assert await cksm(backend, workers, "sha1", P - 1, 2 * P) == want
    assert await cksm(backend, workers, "MD5", 10 * P, -1) == "d41d8cd98f00b204e9800998ecf8427e"
    assert await cksm(backend, workers, "MD5", 0, 0) == "d41d8cd98f00b204e9800998ecf8427e"
    assert await cksm(backend, workers, "MD5", 5, 10 * P) == hashlib.md5(data[5:]).hexdigest()
    assert await cksm(backend, workers, "ADLER32") == f"{zlib.adler32(data):08x}"


async def test_unknown_algorithm(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.put(PATH, b"x")
    with pytest.raises(UnknownChecksumAlgorithm):
        await cksm(backend, workers, "CRC32")


async def test_read_back_digest_is_remembered(workers: PartWorkers) -> None:
    data = payload(3 * P + 9)
    backend = FakeBackend()
    backend.put(PATH, data, tags={"project": "x"})
    reads: list[int] = []
    backend.before_read = reads.append
    want = hashlib.md5(data).hexdigest()
    assert await cksm(backend, workers, "MD5") == want
    assert reads
    reads.clear()
    assert await cksm(backend, workers, "MD5") == want  # answered from the tag now
    assert reads == []
    assert backend.objects[PATH].tags["project"] == "x"  # other tags are kept
    # partial ranges are never remembered
    await cksm(backend, workers, "SHA1", 5, 100)
    assert "s3dsi-sha1" not in backend.objects[PATH].tags
    # the remembered digest does not apply to new content under the same name
    other = payload(3 * P + 9, seed=2)
    backend.put(PATH, other, tags=dict(backend.objects[PATH].tags))
    assert await cksm(backend, workers, "MD5") == hashlib.md5(other).hexdigest()


async def test_whole_object_answered_from_the_stores_own_checksum_first(workers: PartWorkers) -> None:
    """An object another tool uploaded with a CRC32C checksum, no tags of ours: the store's checksum
    answers (asked with the HeadObject), neither tags nor data are read."""
    data = payload(3 * P + 1, seed=9)
    backend = FakeBackend()
    backend.put(PATH, data)
    backend.objects[PATH].crc32c = f"{crc32c.crc32c(data):08x}"
    reads: list[int] = []
    backend.before_read = reads.append
    backend.calls.clear()
    assert await cksm(backend, workers, "CRC32C") == f"{crc32c.crc32c(data):08x}"
    assert reads == [] and backend.calls == ["head_object"]
    # other algorithms, or a range, are not what the store's checksum describes
    assert await cksm(backend, workers, "ADLER32") == f"{zlib.adler32(data):08x}"
    assert await cksm(backend, workers, "CRC32C", 1, 10) == f"{crc32c.crc32c(data[1:11]):08x}"
    assert reads
