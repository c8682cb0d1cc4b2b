"""The transfer engines against S3Backend on the moto server: real multipart rules, ETags, tags."""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Iterator

import crc32c
import pytest

from s3dsi.protocol.errors import BackendUnavailable
from s3dsi.storage.s3 import S3Backend
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.cksm import compute_checksum
from s3dsi.transfer.download import DownloadEngine
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.upload import UploadEngine
from s3dsi.transfer.workers import PartWorkers
from tests.support.moto_server import MotoS3
from tests.support.storage import RequestLog, moto_backend
from tests.unit.transfer.drive import blocks_of, deal, payload, run_streams

MiB = 1024 * 1024
P = 5 * MiB  # S3's (and moto's) minimum part size


@pytest.fixture(scope="module")
def workers() -> Iterator[PartWorkers]:
    pool = PartWorkers(4, cpu_threads=2)
    yield pool
    pool.shutdown()


@pytest.fixture
def s3(moto_s3: MotoS3) -> tuple[S3Backend, RequestLog]:
    backend, _, log = moto_backend(moto_s3)
    return backend, log


async def put(backend: S3Backend, path: str, data: bytes, workers: PartWorkers, pool: BufferPool) -> None:
    engine = UploadEngine(backend, path, plan=PartPlan.uniform(P), pool=pool, workers=workers)
    await engine.open()
    await run_streams(engine, data, deal(blocks_of(len(data), MiB // 4), 4, random.Random(7)))
    result = await engine.finish()
    assert result.size == len(data)


@pytest.mark.parametrize("size", [0, 300_000, 2 * P + 12_345])
async def test_upload_download_and_cksm(s3: tuple[S3Backend, RequestLog], s3_bucket: str,
                                        workers: PartWorkers, size: int) -> None:
    backend, log = s3
    path = f"/{s3_bucket}/obj-{size}"
    pool = BufferPool(6 * P)
    data = payload(size, size)
    await put(backend, path, data, workers, pool)
    assert log.count("CreateMultipartUpload") == (1 if size > P else 0)
    assert log.count("PutObject") == (0 if size > P else 1)

    reader = DownloadEngine(backend, path, pool=pool, workers=workers, part_size=P)
    info = await reader.open()
    assert info.size == size
    got = bytearray()
    while (chunk := await reader.next_chunk()) is not None:
        got += chunk.data
        chunk.release()
    await reader.close()
    assert bytes(got) == data

    digests = [("MD5", hashlib.md5(data).hexdigest()), ("adler32", f"{zlib.adler32(data):08x}"),
               ("CRC32C", f"{crc32c.crc32c(data):08x}")]
    log.clear()
    for alg, want in digests:
        assert await compute_checksum(backend, path, alg, 0, -1, pool=pool, workers=workers,
                                      part_size=P) == want
    # a multipart upload's tags name its ETag; a single PutObject's are proven by S3's own CRC32C, which
    # S3 (moto too) keeps because the upload names its algorithm: no read-back
    assert log.count("GetObject") == 0
    log.clear()
    for alg, want in digests:
        assert await compute_checksum(backend, path, alg, 0, -1, pool=pool, workers=workers,
                                      part_size=P) == want
    assert log.count("GetObject") == 0  # answered from the tags
    assert await compute_checksum(backend, path, "SHA256", 0, -1, pool=pool, workers=workers,
                                  part_size=P) == hashlib.sha256(data).hexdigest()
    assert backend.list_uploads(path) == []
    assert pool.in_use == 0


async def test_failed_part_leaves_the_old_object(s3: tuple[S3Backend, RequestLog], s3_bucket: str,
                                                 workers: PartWorkers) -> None:
    backend, _ = s3
    path = f"/{s3_bucket}/keep"
    backend.put_object(path, memoryview(b"old contents"))
    pool = BufferPool(6 * P)
    engine = UploadEngine(backend, path, plan=PartPlan.uniform(P), pool=pool, workers=workers)
    await engine.open()
    data = payload(3 * P)
    original = backend.upload_part

    def failing(path: str, upload_id: str, number: int, data: memoryview, *,
                crc32c: int | None = None) -> str:
        if number == 2:
            raise BackendUnavailable("injected")
        return original(path, upload_id, number, data, crc32c=crc32c)

    backend.upload_part = failing  # type: ignore[method-assign]
    try:
        await run_streams(engine, data, [blocks_of(len(data), MiB)])
    except BackendUnavailable:
        pass
    with pytest.raises(BackendUnavailable):
        await engine.finish()
    reader = DownloadEngine(backend, path, pool=pool, workers=workers, part_size=P)
    await reader.open()
    chunk = await reader.next_chunk()
    assert chunk is not None
    assert bytes(chunk.data) == b"old contents"
    chunk.release()
    await reader.close()
    assert backend.list_uploads(path) == []
