from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3dsi.protocol.errors import IsADirectory, ObjectChanged, PathNotFound, TransferAborted
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.download import Chunk, DownloadEngine, normalize_ranges
from s3dsi.transfer.workers import PartWorkers

from .drive import payload
from .fakes import FakeBackend

P = 64 * 1024
PATH = "/bucket/obj"


def engine_for(backend: FakeBackend, workers: PartWorkers, pool: BufferPool | None = None,
               **kwargs: object) -> DownloadEngine:
    kwargs.setdefault("chunk_size", 10_000)
    return DownloadEngine(backend, PATH, pool=pool or BufferPool(16 * P), workers=workers, part_size=P,
                          **kwargs)  # type: ignore[arg-type]


async def collect(engine: DownloadEngine, consumers: int = 1) -> list[tuple[int, bytes]]:
    """Concurrent senders; records chunks in delivery order."""
    got: list[tuple[int, bytes]] = []

    async def sender() -> None:
        while (chunk := await engine.next_chunk()) is not None:
            got.append((chunk.offset, bytes(chunk.data)))
            await asyncio.sleep(0)
            chunk.release()

    await asyncio.gather(*(sender() for _ in range(consumers)))
    return got


def test_a_sender_served_by_its_own_call_does_not_overtake_earlier_ones(workers: PartWorkers) -> None:
    """A caller whose own _dispatch serves it must not run ahead of earlier waiters served in that
    same dispatch (their tasks resume later): chunks leave in offset order."""
    size = 6 * P - 5000
    data = payload(size, size)
    backend = FakeBackend()
    backend.put(PATH, data)

    async def go() -> list[int]:
        engine = engine_for(backend, workers, BufferPool(16 * P), prefetch_parts=3)
        await engine.open()
        got = await collect(engine, 4)
        await engine.close()
        assert b"".join(d for _, d in got) == data
        return [o for o, _ in got]

    for _ in range(20):
        offsets = asyncio.run(go())
        assert offsets == sorted(offsets)


def test_normalize_ranges() -> None:
    assert normalize_ranges(None, 10) == [(0, 10)]
    assert normalize_ranges(None, 0) == []
    assert normalize_ranges([(5, None), (0, 3), (2, 4), (20, 30)], 10) == [(0, 4), (5, 10)]
    assert normalize_ranges([(3, 3), (12, None)], 10) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 6 * P + 3), consumers=st.integers(1, 4),
       raw=st.lists(st.tuples(st.integers(0, 7 * P), st.one_of(st.none(), st.integers(0, 7 * P))),
                    max_size=4), whole=st.booleans())
def test_ranges_reassemble_in_order(workers: PartWorkers, size: int, consumers: int,
                                    raw: list[tuple[int, int | None]], whole: bool) -> None:
    data = payload(size, size)
    backend = FakeBackend()
    backend.put(PATH, data)
    ranges = None if whole else raw

    async def go() -> None:
        pool = BufferPool(16 * P)
        engine = engine_for(backend, workers, pool, ranges=ranges, prefetch_parts=3)
        info = await engine.open()
        assert info.size == size
        got = await collect(engine, consumers)
        await engine.close()
        expected = normalize_ranges(ranges, size)
        offsets = [o for o, _ in got]
        assert offsets == sorted(offsets)
        for start, end in expected:
            piece = b"".join(d for o, d in got if start <= o < end)
            assert piece == data[start:end]
        assert sum(len(d) for _, d in got) == sum(e - s for s, e in expected) == engine.bytes_sent
        assert pool.in_use == 0

    asyncio.run(go())


async def test_open_errors_surface_before_any_data(workers: PartWorkers) -> None:
    backend = FakeBackend()
    pool = BufferPool(4 * P)
    with pytest.raises(PathNotFound):
        await engine_for(backend, workers, pool).open()
    with pytest.raises(IsADirectory):
        await DownloadEngine(backend, "/bucket", pool=pool, workers=workers, part_size=P).open()
    assert pool.in_use == 0


async def test_object_changed_mid_read(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.put(PATH, payload(6 * P))
    pool = BufferPool(16 * P)
    engine = engine_for(backend, workers, pool, prefetch_parts=1)
    await engine.open()
    first = await engine.next_chunk()
    assert first is not None
    assert first.offset == 0
    backend.put(PATH, payload(6 * P, seed=99))  # overwritten by someone else
    first.release()
    async def drain() -> None:
        while (chunk := await engine.next_chunk()) is not None:
            chunk.release()

    with pytest.raises(ObjectChanged):
        await drain()
    await engine.close()
    assert pool.in_use == 0


async def test_prefetch_window_bounds_memory(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(20 * P)
    backend.put(PATH, data)
    reads: list[int] = []
    backend.before_read = reads.append
    pool = BufferPool(16 * P)
    engine = engine_for(backend, workers, pool, prefetch_parts=2)
    await engine.open()
    held: list[Chunk] = []
    for _ in range(3):
        chunk = await engine.next_chunk()
        assert chunk is not None
        held.append(chunk)
    for _ in range(200):
        if len(reads) == 2 and pool.in_use == 2 * P:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(reads) == 2  # nothing released: no further reads
    assert pool.in_use == 2 * P
    head = b"".join(bytes(c.data) for c in held)
    for chunk in held:
        chunk.release()
    got = await collect(engine, 2)
    assert head + b"".join(d for _, d in got) == data
    assert pool.peak_in_use <= 2 * P
    await engine.close()
    assert pool.in_use == 0


async def test_close_while_reads_are_running(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.put(PATH, payload(8 * P))
    gate = threading.Event()
    backend.before_read = lambda start: gate.wait(5) if start else None  # open() reads the first part
    pool = BufferPool(16 * P)
    engine = engine_for(backend, workers, pool)
    await engine.open()
    while (first := await engine.next_chunk()) is not None and first.offset + len(first.data) < P:
        first.release()  # the first part, read by open(): chunks without waiting
    assert first is not None
    first.release()
    waiter = asyncio.ensure_future(engine.next_chunk())
    await asyncio.sleep(0.02)
    closing = asyncio.ensure_future(engine.close())
    await asyncio.sleep(0.02)
    assert not closing.done()  # waits for the running read before lending its buffer again
    gate.set()
    await closing
    assert pool.in_use == 0
    with pytest.raises(TransferAborted):
        await waiter


async def test_empty_object(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.put(PATH, b"")
    engine = engine_for(backend, workers)
    await engine.open()
    assert await engine.next_chunk() is None
    assert await engine.next_chunk() is None
    await engine.close()


async def test_two_downloads_share_a_one_part_pool(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(5 * P + 1)
    backend.put(PATH, data)
    pool = BufferPool(2 * P)
    engines = [engine_for(backend, workers, pool, prefetch_parts=4) for _ in range(3)]

    async def open_and_collect(engine: DownloadEngine) -> list[tuple[int, bytes]]:
        await engine.open()  # reads the first part: holds a buffer, as a session's RETR does
        return await collect(engine)

    results = await asyncio.wait_for(asyncio.gather(*(open_and_collect(e) for e in engines)), 10)
    for got in results:
        assert b"".join(d for _, d in got) == data
    assert pool.peak_in_use <= 2 * P
