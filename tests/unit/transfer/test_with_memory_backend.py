"""The engines against the storage team's MemoryBackend (S3 rules: part minimum, ETags, tags)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import zlib

import pytest

from s3dsi.protocol.errors import ObjectChanged, PathNotFound
from s3dsi.storage.memory import MemoryBackend
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.cksm import compute_checksum
from s3dsi.transfer.download import DownloadEngine
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.upload import UploadEngine
from s3dsi.transfer.workers import PartWorkers

from .drive import blocks_of, deal, payload, run_streams

P = 64 * 1024
PATH = "/bkt/key.dat"


def backend() -> MemoryBackend:
    store = MemoryBackend(min_part_size=P)
    store.create_bucket("bkt")
    return store


async def store_object(store: MemoryBackend, workers: PartWorkers, data: bytes, pool: BufferPool) -> None:
    engine = UploadEngine(store, PATH, plan=PartPlan.for_size(len(data), min_part=P, max_part=4 * P),
                          pool=pool, workers=workers)
    await engine.open()
    await run_streams(engine, data, deal(blocks_of(len(data), 16 * 1024), 4, random.Random(len(data))))
    result = await engine.finish()
    assert result.size == len(data)


@pytest.mark.parametrize("size", [0, 1000, P, P + 1, 9 * P + 3])
async def test_round_trip(workers: PartWorkers, size: int) -> None:
    store = backend()
    pool = BufferPool(8 * P)
    data = payload(size, size)
    await store_object(store, workers, data, pool)
    engine = DownloadEngine(store, PATH, pool=pool, workers=workers, part_size=P, chunk_size=20_000)
    assert (await engine.open()).size == size
    got = bytearray()
    while (chunk := await engine.next_chunk()) is not None:
        got += chunk.data
        chunk.release()
    await engine.close()
    assert bytes(got) == data
    assert await compute_checksum(store, PATH, "md5", 0, -1, pool=pool, workers=workers,
                                  part_size=P) == hashlib.md5(data).hexdigest()
    assert await compute_checksum(store, PATH, "ADLER32", 0, -1, pool=pool, workers=workers,
                                  part_size=P) == f"{zlib.adler32(data):08x}"
    assert store.list_uploads(PATH) == []
    assert pool.in_use == 0


async def test_open_fails_before_anything_moves(workers: PartWorkers) -> None:
    store = backend()
    pool = BufferPool(8 * P)
    engine = UploadEngine(store, "/nobucket/key", plan=PartPlan.uniform(P), pool=pool, workers=workers)
    with pytest.raises(PathNotFound):
        await engine.open()
    reader = DownloadEngine(store, PATH, pool=pool, workers=workers, part_size=P)
    with pytest.raises(PathNotFound):
        await reader.open()


async def test_overwrite_during_download_is_detected(workers: PartWorkers) -> None:
    store = backend()
    pool = BufferPool(8 * P)
    await store_object(store, workers, payload(6 * P), pool)
    engine = DownloadEngine(store, PATH, pool=pool, workers=workers, part_size=P, prefetch_parts=1)
    await engine.open()
    chunk = await engine.next_chunk()
    assert chunk is not None
    await store_object(store, workers, payload(6 * P, seed=3), pool)
    chunk.release()

    async def drain() -> None:
        while (nxt := await engine.next_chunk()) is not None:
            nxt.release()
            await asyncio.sleep(0)

    with pytest.raises(ObjectChanged):
        await drain()
    await engine.close()
