from __future__ import annotations

import asyncio
import hashlib
import random
import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3dsi.config.s3policy import S3Policy
from s3dsi.protocol.errors import BackendUnavailable, DsiError, PathExists, TransferAborted
from s3dsi.storage.backend import WriteCondition
from s3dsi.storage.memory import MemoryBackend
from s3dsi.storage.policy import PolicyBackend
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.errors import FileTooLarge, IncompleteUpload
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.tags import digest_tags
from s3dsi.transfer.upload import CommittedPart, UploadEngine
from s3dsi.transfer.workers import PartWorkers

from .drive import blocks_of, deal, feed_block, payload, reference_digests, run_streams
from .fakes import FakeBackend

P = 64 * 1024  # lowered part size
PATH = "/bucket/dir/file"


def make_engine(backend: FakeBackend, workers: PartWorkers, *, budget: int = 16 * P,
                pool: BufferPool | None = None, **kwargs: object) -> tuple[UploadEngine, BufferPool]:
    pool = pool or BufferPool(budget)
    engine = UploadEngine(backend, PATH, plan=PartPlan.uniform(P), pool=pool, workers=workers,
                          **kwargs)  # type: ignore[arg-type]
    return engine, pool


async def upload(backend: FakeBackend, workers: PartWorkers, data: bytes,
                 streams: list[list[tuple[int, int]]], **kwargs: object) -> tuple[UploadEngine, BufferPool]:
    engine, pool = make_engine(backend, workers, **kwargs)  # type: ignore[arg-type]
    await engine.open()
    await run_streams(engine, data, streams)
    result = await engine.finish()
    assert result.size == len(data)
    return engine, pool


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def assert_stored(backend: FakeBackend, data: bytes, pool: BufferPool) -> None:
    assert backend.data(PATH) == data
    tags = backend.objects[PATH].tags
    want = reference_digests(data)
    assert tags["s3dsi-md5"] == want["MD5"]
    assert tags["s3dsi-adler32"] == want["ADLER32"]
    assert tags["s3dsi-crc32c"] == want["CRC32C"]
    assert tags["s3dsi-size"] == str(len(data))
    assert backend.list_uploads(PATH) == []
    assert pool.in_use == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 12 * P + 7), block=st.sampled_from([1000, 4096, 16 * 1024, P, 3 * P // 2]),
       n_streams=st.integers(1, 6), seed=st.integers(0, 2**32), dup=st.booleans(),
       recv_max=st.sampled_from([None, 777, 8192]))
def test_random_interleavings_reassemble_byte_exact(workers: PartWorkers, size: int, block: int,
                                                   n_streams: int, seed: int, dup: bool,
                                                   recv_max: int | None) -> None:
    rng = random.Random(seed)
    data = payload(size, seed)
    blocks = blocks_of(size, block)
    if dup and blocks:
        blocks += rng.sample(blocks, k=min(3, len(blocks)))
        blocks.sort()
    streams = deal(blocks, n_streams, rng)
    backend = FakeBackend()

    async def go() -> None:
        engine, pool = make_engine(backend, workers, budget=32 * P)
        await engine.open()
        await run_streams(engine, data, streams, recv_max)
        assert engine.bytes_received == size
        result = await engine.finish()
        assert result.checksums == reference_digests(data)
        assert_stored(backend, data, pool)
        assert pool.peak_in_use <= pool.budget
        single = size <= P
        assert ("put_object" in backend.calls) == single
        assert ("create_upload" in backend.calls) == (not single)
        ranges = engine.pop_committed_ranges()
        assert ranges == ([(0, size)] if size else [])

    asyncio.run(go())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 10 * P), seed=st.integers(0, 2**32))
def test_fully_shuffled_blocks_within_window(workers: PartWorkers, size: int, seed: int) -> None:
    """Any block order works as long as the whole file fits the window (budget ≥ file)."""
    rng = random.Random(seed)
    data = payload(size, seed)
    blocks = blocks_of(size, 5000)
    rng.shuffle(blocks)
    backend = FakeBackend()

    async def go() -> None:
        engine, pool = make_engine(backend, workers, budget=24 * P)
        await engine.open()
        await run_streams(engine, data, [blocks])
        await engine.finish()
        assert_stored(backend, data, pool)

    asyncio.run(go())


async def test_single_part_is_one_put_object(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(P - 10)
    _, pool = await upload(backend, workers, data, [blocks_of(len(data), 4096)])
    assert_stored(backend, data, pool)
    assert "create_upload" not in backend.calls
    assert backend.calls.count("put_object") == 1
    assert "s3dsi-etag" not in backend.objects[PATH].tags


async def test_empty_file_is_put_of_nothing(workers: PartWorkers) -> None:
    backend = FakeBackend()
    engine, pool = make_engine(backend, workers)
    await engine.open()
    result = await engine.finish()
    assert result.size == 0
    assert result.parts == 0
    assert_stored(backend, b"", pool)
    assert result.checksums["MD5"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert result.checksums["ADLER32"] == "00000001"
    assert result.checksums["CRC32C"] == "00000000"
    assert engine.pop_committed_ranges() == []


async def test_exactly_one_part_is_put_object(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(P)
    _, pool = await upload(backend, workers, data, [blocks_of(P, 8192)])
    assert_stored(backend, data, pool)
    assert "create_upload" not in backend.calls


async def test_one_part_and_one_byte_is_multipart(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(P + 1)
    _engine, pool = await upload(backend, workers, data, [blocks_of(P + 1, 8192)])
    assert_stored(backend, data, pool)
    assert backend.calls.count("create_upload") == 1
    assert "upload_part 1" in backend.calls
    assert "upload_part 2" in backend.calls
    assert backend.objects[PATH].tags["s3dsi-etag"] == backend.objects[PATH].etag


@pytest.mark.parametrize("size", [P - 3, 5 * P + 17])
async def test_the_commit_carries_the_opening_condition_and_the_whole_crc32c(workers: PartWorkers,
                                                                             size: int) -> None:
    """What check_writable answered when the upload opened goes with its commit (PutObject or
    CompleteMultipartUpload), and a multipart completion carries the object's CRC32C (the fake checks
    it against the data, as S3 checks a full-object checksum)."""
    backend = FakeBackend()
    backend.condition = WriteCondition(must_not_exist=True, reason="append_only")
    data = payload(size, seed=3)
    streams = deal(blocks_of(size, 8192), 3, random.Random(2))
    _engine, pool = await upload(backend, workers, data, streams)
    assert_stored(backend, data, pool)
    assert backend.commit_conditions == [backend.condition]
    if size > P:
        assert backend.completed_crc32c == [int(reference_digests(data)["CRC32C"], 16)]


async def test_many_parts_with_eight_streams(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.min_part_size = P
    data = payload(23 * P + 123, seed=5)
    streams = deal(blocks_of(len(data), 16 * 1024), 8, random.Random(1))
    _engine, pool = await upload(backend, workers, data, streams, budget=8 * P)
    assert_stored(backend, data, pool)
    assert sum(c.startswith("upload_part") for c in backend.calls) == 24
    assert pool.peak_in_use <= 8 * P


async def test_part_one_held_until_a_later_byte_arrives(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(2 * P + 5)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    await feed_block(engine, data, 0, P)
    await asyncio.sleep(0.05)
    assert "create_upload" not in backend.calls  # could still be a single PutObject
    assert engine.pop_committed_ranges() == []
    await feed_block(engine, data, P, P + 5)
    await engine.finish()
    assert_stored(backend, data, pool)


async def test_hole_fails_and_nothing_is_visible(workers: PartWorkers) -> None:
    backend = FakeBackend()
    old = b"previous object"
    backend.put(PATH, old)
    data = payload(5 * P)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    blocks = [b for b in blocks_of(len(data), 4096) if not 2 * P <= b[0] < 2 * P + 8192]
    await run_streams(engine, data, [blocks])
    with pytest.raises(IncompleteUpload, match=f"offset {2 * P}"):
        await engine.finish()
    assert backend.data(PATH) == old
    assert backend.list_uploads(PATH) == []
    assert pool.in_use == 0


async def test_hole_in_single_part_file(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(P // 2)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    await feed_block(engine, data, 100, len(data) - 100)
    with pytest.raises(IncompleteUpload):
        await engine.finish()
    assert PATH not in backend.objects
    assert "put_object" not in backend.calls
    assert pool.in_use == 0


async def test_failing_upload_part_aborts_and_keeps_old_object(workers: PartWorkers) -> None:
    backend = FakeBackend()
    old = b"previous object"
    backend.put(PATH, old)
    backend.fail_part[3] = BackendUnavailable("S3 said no")
    data = payload(8 * P)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    try:
        await run_streams(engine, data, [blocks_of(len(data), 8192)])
    except BackendUnavailable:
        pass  # wait_for_space may already report it
    with pytest.raises(BackendUnavailable):
        await engine.finish()
    await engine.abort()
    assert "abort_upload" in backend.calls
    assert backend.data(PATH) == old
    assert backend.list_uploads(PATH) == []
    assert pool.in_use == 0
    assert isinstance(engine.failed, BackendUnavailable)


async def test_wait_for_space_raises_the_upload_failure(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.fail_part[2] = BackendUnavailable("boom")
    data = payload(10 * P)
    engine, pool = make_engine(backend, workers, max_window_parts=3)
    await engine.open()
    with pytest.raises(BackendUnavailable):
        await run_streams(engine, data, [blocks_of(len(data), 8192)])
    await engine.abort()
    assert backend.list_uploads(PATH) == []
    assert pool.in_use == 0


async def test_abort_midway_leaves_no_upload(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(6 * P)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    await run_streams(engine, data, [blocks_of(4 * P + 100, 8192)])
    await eventually(lambda: "upload_part 2" in backend.calls)
    assert backend.calls.count("create_upload") == 1
    await engine.abort()
    await engine.abort()  # idempotent
    assert backend.list_uploads(PATH) == []
    assert PATH not in backend.objects
    assert pool.in_use == 0
    assert engine.get_buffer(5 * P, 100) is None
    with pytest.raises(TransferAborted):
        await engine.wait_for_space(5 * P)
    with pytest.raises(DsiError):
        await engine.finish()


async def test_abort_while_create_upload_in_flight_aborts_it(workers: PartWorkers) -> None:
    backend = FakeBackend()
    gate = threading.Event()
    original = backend.create_upload

    def slow_create(path: str) -> str:
        gate.wait(5)
        return original(path)

    backend.create_upload = slow_create  # type: ignore[method-assign]
    data = payload(3 * P)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    await run_streams(engine, data, [blocks_of(2 * P + 10, 8192)])
    abort = asyncio.ensure_future(engine.abort())
    await asyncio.sleep(0.02)
    gate.set()
    await abort
    assert backend.uploads == {}
    assert pool.in_use == 0


async def test_far_out_of_order_blocks_stall_with_bounded_memory(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(40 * P)
    engine, pool = make_engine(backend, workers, budget=4 * P)
    await engine.open()
    # part 1 is missing its first block; every stream is already far ahead
    await feed_block(engine, data, 4096, P - 4096)
    for part in (1, 2, 3):
        await feed_block(engine, data, part * P, P // 2)
    assert engine.get_buffer(10 * P, 4096) is None
    assert pool.in_use <= pool.budget
    waiter = asyncio.ensure_future(engine.wait_for_space(10 * P))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    assert engine.is_stalled()
    await engine.abort()
    with pytest.raises(TransferAborted):
        await waiter
    assert pool.in_use == 0


async def test_not_stalled_while_parts_upload(workers: PartWorkers) -> None:
    backend = FakeBackend()
    gate = threading.Event()
    backend.part_delay = lambda n: gate.wait(5)
    data = payload(3 * P)
    engine, pool = make_engine(backend, workers, budget=4 * P)
    await engine.open()
    await feed_block(engine, data, 0, 2 * P + 10)
    await asyncio.sleep(0.05)
    assert not engine.is_stalled()
    gate.set()
    await feed_block(engine, data, 2 * P + 10, P - 10)
    await engine.finish()
    assert_stored(backend, data, pool)


async def test_committed_ranges_only_after_acknowledgement(workers: PartWorkers) -> None:
    backend = FakeBackend()
    gate = threading.Event()
    backend.part_delay = lambda n: gate.wait(5) if n == 2 else None
    data = payload(4 * P + 7)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    await run_streams(engine, data, [blocks_of(3 * P, 8192)])
    await feed_block(engine, data, 3 * P, 10)
    first: list[tuple[int, int]] = []

    def both_acknowledged() -> bool:
        first.extend(engine.pop_committed_ranges())
        return len(first) == 2

    await eventually(both_acknowledged)
    assert first == [(0, P), (2 * P, 3 * P)]
    assert engine.pop_committed_ranges() == []
    gate.set()
    await feed_block(engine, data, 3 * P + 10, P - 3)
    await engine.finish()
    assert engine.pop_committed_ranges() == [(P, 2 * P), (3 * P, 4 * P + 7)]
    assert_stored(backend, data, pool)


async def test_memory_bounded_through_a_long_upload(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(60 * P, seed=9)
    engine, pool = make_engine(backend, workers, budget=6 * P)
    await engine.open()
    streams = deal(blocks_of(len(data), 16 * 1024), 4, random.Random(3))
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(pool.in_use)
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(watch())
    await run_streams(engine, data, streams)
    await engine.finish()
    watcher.cancel()
    assert max(seen) <= 6 * P
    assert pool.peak_in_use <= 6 * P
    assert_stored(backend, data, pool)


async def test_two_uploads_share_a_small_pool(workers: PartWorkers) -> None:
    pool = BufferPool(5 * P)
    backends = [FakeBackend(), FakeBackend()]
    datas = [payload(20 * P + 3, seed=1), payload(17 * P, seed=2)]

    async def one(i: int) -> None:
        engine, _ = make_engine(backends[i], workers, pool=pool)
        await engine.open()
        await run_streams(engine, datas[i], deal(blocks_of(len(datas[i]), 8192), 3, random.Random(i)))
        await engine.finish()

    await asyncio.wait_for(asyncio.gather(one(0), one(1)), 20)
    for backend, data in zip(backends, datas, strict=True):
        assert backend.data(PATH) == data
    assert pool.in_use == 0
    assert pool.peak_in_use <= pool.budget


async def test_beyond_the_plan_is_file_too_large(workers: PartWorkers) -> None:
    backend = FakeBackend()
    engine, _pool = make_engine(backend, workers)
    await engine.open()
    assert engine.get_buffer(P * 10_000, 10) is None
    assert isinstance(engine.failed, FileTooLarge)
    with pytest.raises(FileTooLarge):
        await engine.wait_for_space(P * 10_000)
    await engine.abort()


async def test_duplicates_are_not_counted_twice(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(3 * P)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    await feed_block(engine, data, 0, P)
    await feed_block(engine, data, 100, 5000)  # part 1 is sealed: dropped
    await feed_block(engine, data, P, 1000)
    await feed_block(engine, data, P + 500, 1000)
    assert engine.bytes_received == P + 1500
    await feed_block(engine, data, P, 3 * P - P)
    assert engine.bytes_received == 3 * P
    await engine.finish()
    assert_stored(backend, data, pool)


async def test_esto_offset_and_ranges_in_transfer_offsets(workers: PartWorkers) -> None:
    """ESTO A <n>: data lands at n; the marker ranges are the client's offsets."""
    backend = FakeBackend()
    data = payload(3 * P)
    engine, _pool = make_engine(backend, workers, base_offset=P)
    await engine.open()
    await feed_block(engine, data[P:], 0, 2 * P)
    await asyncio.sleep(0.05)
    with pytest.raises(IncompleteUpload, match="offset 0"):  # nothing before the ESTO offset
        await engine.finish()
    assert PATH not in backend.objects


async def test_resume_from_committed_parts(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(5 * P + 99, seed=4)
    journal: list[CommittedPart] = []
    first, pool = make_engine(backend, workers, on_part_committed=journal.append)
    await first.open()
    await run_streams(first, data, [blocks_of(3 * P, 8192)])
    await feed_block(first, data, 3 * P, 10)
    await eventually(lambda: len(first.committed_parts()) == 3)
    upload_id = first.upload_id
    assert upload_id is not None
    committed = first.committed_parts()
    assert [c.number for c in committed] == [1, 2, 3]
    assert sorted(journal, key=lambda c: c.number) == committed
    await first.abort(keep_upload=True)
    assert [u.upload_id for u in backend.list_uploads(PATH)] == [upload_id]
    assert pool.in_use == 0

    plan_again = PartPlan.from_dict(first.plan.to_dict())
    second = UploadEngine(backend, PATH, plan=plan_again, pool=BufferPool(8 * P), workers=workers,
                          upload_id=upload_id, committed_parts=committed)
    await second.open()
    assert second.get_buffer(P, 100) is not None  # a durable part: accepted and dropped
    second.data_received(P, 100)
    await run_streams(second, data, [blocks_of(len(data), 8192)[3 * P // 8192:]])
    result = await second.finish()
    assert backend.data(PATH) == data
    want = reference_digests(data)
    assert result.checksums == {"ADLER32": want["ADLER32"], "CRC32C": want["CRC32C"]}
    assert "MD5" not in result.checksums  # earlier bytes were never seen by this engine
    assert second.pop_committed_ranges() == [(3 * P, len(data))]
    assert backend.objects[PATH].tags == digest_tags(result.checksums, len(data), result.etag)


async def test_tags_refused_is_not_an_error(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.tags_allowed = False
    data = payload(3 * P)
    _engine, _pool = await upload(backend, workers, data, [blocks_of(len(data), 8192)])
    assert backend.data(PATH) == data
    assert backend.objects[PATH].tags == {}


async def test_failed_complete_leaves_nothing(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.fail_complete = BackendUnavailable("complete failed")
    data = payload(3 * P)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    await run_streams(engine, data, [blocks_of(len(data), 8192)])
    with pytest.raises(BackendUnavailable):
        await engine.finish()
    assert PATH not in backend.objects
    assert backend.list_uploads(PATH) == []
    assert pool.in_use == 0


async def test_sha_algorithms_on_request(workers: PartWorkers) -> None:
    backend = FakeBackend()
    data = payload(4 * P + 1)
    engine, _pool = make_engine(backend, workers, checksums=("sha256", "crc32c", "SHA512", "SHA1"))
    await engine.open()
    await run_streams(engine, data, deal(blocks_of(len(data), 4096), 3, random.Random(0)))
    result = await engine.finish()
    assert result.checksums == {
        "SHA1": hashlib.sha1(data).hexdigest(),
        "SHA256": hashlib.sha256(data).hexdigest(),
        "SHA512": hashlib.sha512(data).hexdigest(),
        "CRC32C": reference_digests(data)["CRC32C"],
    }


async def test_put_without_tagging_permission_still_stores(workers: PartWorkers) -> None:
    backend = FakeBackend()
    backend.tagging_denied = True
    data = payload(1000)
    engine, pool = make_engine(backend, workers)
    await engine.open()
    await feed_block(engine, data, 0, len(data))
    result = await engine.finish()
    assert backend.data(PATH) == data
    assert result.tags_stored is False
    assert backend.objects[PATH].tags == {}
    assert pool.in_use == 0


async def test_part_larger_than_the_budget_fails_cleanly(workers: PartWorkers) -> None:
    backend = FakeBackend()
    engine, pool = make_engine(backend, workers, budget=P // 2)
    await engine.open()
    assert engine.get_buffer(0, 100) is None
    with pytest.raises(FileTooLarge, match="memory budget"):
        await engine.wait_for_space(0)
    await engine.abort()
    assert pool.in_use == 0


async def test_last_block_first_then_reverse_order(workers: PartWorkers) -> None:
    """EOF-first style: the final short block lands before everything else."""
    backend = FakeBackend()
    data = payload(6 * P + 321)
    blocks = blocks_of(len(data), 8192)[::-1]
    _, pool = await upload(backend, workers, data, [blocks], budget=8 * P)
    assert_stored(backend, data, pool)


async def test_stream_mode_in_a_two_part_budget(workers: PartWorkers) -> None:
    """Sequential data through the smallest pool that works: part 1 waits for part 2's first byte."""
    backend = FakeBackend()
    data = payload(7 * P + 5)
    engine, pool = make_engine(backend, workers, budget=2 * P)
    await engine.open()
    await run_streams(engine, data, [[(0, len(data))]], recv_max=3000)
    await engine.finish()
    assert_stored(backend, data, pool)
    assert pool.peak_in_use <= 2 * P


async def test_stall_once_uploads_above_a_missing_block_are_done(workers: PartWorkers) -> None:
    """Parts 2-4 complete and upload, part 1 lacks a block, the streams are beyond the window:
    nothing moves once the uploads are acknowledged, and wait_stalled() says so."""
    backend = FakeBackend()
    gate = threading.Event()
    backend.part_delay = lambda n: gate.wait(5)
    data = payload(20 * P)
    engine, pool = make_engine(backend, workers, budget=4 * P)
    await engine.open()
    await feed_block(engine, data, 4096, 4 * P - 4096)
    assert engine.get_buffer(4 * P, 4096) is None
    stalled = asyncio.ensure_future(engine.wait_stalled())
    await asyncio.sleep(0.05)
    assert not stalled.done()  # uploads of parts 2-4 still in flight
    assert not engine.is_stalled()
    gate.set()
    await asyncio.wait_for(stalled, 5)
    assert engine.is_stalled()
    assert pool.in_use == 4 * P
    await engine.abort()
    assert backend.list_uploads(PATH) == []
    assert pool.in_use == 0


async def test_a_policy_is_asked_even_when_the_directory_cache_knows_the_name(
        workers: PartWorkers) -> None:
    """The namespace lets an upload skip check_writable when a listing showed the name is no directory;
    under append-only that check is what refuses replacing, and its condition what guards the commit."""
    memory = MemoryBackend()
    memory.create_bucket("bucket")
    memory.put_object(PATH, memoryview(b"first"))
    [entry for page in memory.list_pages("/bucket/dir") for entry in page]  # the cache now knows dir/
    assert memory.writable_known(PATH)
    view = PolicyBackend(memory, S3Policy(append_only=True))
    engine = UploadEngine(view, PATH, plan=PartPlan.uniform(P), pool=BufferPool(4 * P), workers=workers)
    with pytest.raises(PathExists, match="append-only"):
        await engine.open()
    fresh = UploadEngine(view, "/bucket/dir/new", plan=PartPlan.uniform(P), pool=BufferPool(4 * P),
                         workers=workers)
    await fresh.open()
    memory.put_object("/bucket/dir/new", memoryview(b"raced"))  # another writer
    await run_streams(fresh, b"mine", [blocks_of(4, 4)])
    with pytest.raises(PathExists, match="another upload created this object meanwhile"):
        await fresh.finish()
    # the other writer's object stays
    info = memory.head_object("/bucket/dir/new")
    buffer = bytearray(info.size)
    memory.read_range(info, 0, memoryview(buffer))
    assert bytes(buffer) == b"raced"
