"""The download engine: ranged reads prefetched into pool buffers, handed out as ordered chunks.

Reads of ``part_size`` run on the part workers at most ``prefetch_parts`` ahead of the senders, each
pinned to the ETag seen at ``open`` (a changed object fails the transfer instead of mixing
versions). Senders take chunks with ``next_chunk`` and give them back with ``chunk.release()``; a
part's buffer returns to the pool once all its chunks are released.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from s3dsi.protocol.errors import DsiError, ObjectChanged, TransferAborted
from s3dsi.protocol.ranges import RangeList
from s3dsi.storage.backend import Backend, ObjectInfo
from s3dsi.transfer.buffers import BufferPool, PartBuffer, PoolAccount
from s3dsi.transfer.coordinator import TransferCoordinator
from s3dsi.transfer.workers import PartWorkers

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Chunk:
    """``data`` holds object bytes from ``offset``; call ``release()`` once it has been sent."""

    offset: int
    data: memoryview
    release: Callable[[], None]


def normalize_ranges(ranges: Sequence[tuple[int, int | None]] | None, size: int) -> list[tuple[int, int]]:
    """Ranges clipped to the object, sorted and merged; end None means end of object."""
    if ranges is None:
        return [(0, size)] if size else []
    merged = RangeList()
    for first, last in ranges:
        start, end = max(0, first), size if last is None else min(last, size)
        if start < end:
            merged.add(start, end)
    return list(merged)


class _Slot:
    __slots__ = ("buf", "handed", "index", "job", "length", "outstanding", "start")

    def __init__(self, index: int, start: int, length: int, buf: PartBuffer) -> None:
        self.index = index
        self.start = start
        self.length = length
        self.buf: PartBuffer | None = buf
        self.job: asyncio.Future[int] | None = None
        self.handed = 0
        self.outstanding = 0


class _Release:
    __slots__ = ("_engine", "_n", "_slot")

    def __init__(self, engine: DownloadEngine, slot: _Slot | None, n: int) -> None:
        self._engine: DownloadEngine | None = engine
        self._slot = slot
        self._n = n

    def __call__(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine._chunk_released(self._slot, self._n)


_END = object()


class DownloadEngine:
    """One RETR/ERET (or a CKSM read-back). Every method runs on the event-loop thread."""

    def __init__(self, backend: Backend, path: str, *,
                 ranges: Sequence[tuple[int, int | None]] | None = None, pool: BufferPool,
                 workers: PartWorkers, part_size: int, chunk_size: int = MiB, prefetch_parts: int = 4,
                 info: ObjectInfo | None = None) -> None:
        if part_size > pool.budget:
            raise ValueError("part_size exceeds the memory budget")
        self._backend = backend
        self._path = path
        self._ranges = ranges
        self._pool = pool
        self._co = TransferCoordinator(workers, name=f"download of {path}")
        self._part_size = part_size
        self._chunk_size = max(1, min(chunk_size, part_size))
        self._prefetch_parts = max(1, prefetch_parts)
        self._info = info
        self._account = pool.open_account(f"download {path}")
        self._reads: list[tuple[int, int]] = []
        self._slots: deque[_Slot] = deque()  # slots not yet fully handed out, in offset order
        self._held: set[_Slot] = set()
        self._all_acquired = False
        self._waiters: deque[asyncio.Future[Chunk | None]] = deque()
        # waiters handed a chunk whose task has not resumed yet, in hand-out order
        self._in_transit: deque[asyncio.Future[Chunk | None]] = deque()
        self._slot_waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._next_read = 0
        self._first_done = False  # open() read the first part already
        self.bytes_sent = 0

    @property
    def info(self) -> ObjectInfo:
        if self._info is None:
            raise RuntimeError("DownloadEngine.open() has not run")
        return self._info

    @property
    def pool_account(self) -> PoolAccount:
        return self._account

    @property
    def size(self) -> int:
        """Size of the object at open."""
        return self.info.size

    async def __aenter__(self) -> DownloadEngine:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> ObjectInfo:
        """Open the object and start reading (PathNotFound, IsADirectory, ObjectArchived surface here).

        A whole-object download opens with its first ranged GET, whose response gives the size and
        ETag as well (one request for a small file, where HEAD + GET were two); every later GET is
        pinned to that ETag. Downloads of ranges (REST, ERET) need the size first: HEAD, then GETs.
        """
        first: tuple[PartBuffer, int] | None = None
        try:
            if self._info is None and self._ranges is None:
                first = await self._open_by_reading()
            elif self._info is None:
                self._info = await self._co.io(self._backend.head_object, self._path)
        except BaseException:
            self._closed = True
            self._account.close()
            raise
        assert self._info is not None
        for start, end in normalize_ranges(self._ranges, self._info.size):
            for piece in range(start, end, self._part_size):
                self._reads.append((piece, min(self._part_size, end - piece)))
        if first is not None:
            buf, count = first
            if self._reads:
                self._place_first(buf, count)
            else:
                self._pool.release(buf)  # an empty object
        self._co.spawn(self._prefetch())
        return self._info

    async def _open_by_reading(self) -> tuple[PartBuffer, int]:
        self._account.set_priority(0, self._part_size)
        buf = await self._pool.acquire(self._part_size, account=self._account, key=0)
        try:
            self._info, count = await self._co.io(self._backend.open_read, self._path, 0,
                                                  buf.view[:self._part_size])
        except BaseException:
            self._pool.release(buf)
            raise
        return buf, count

    def _place_first(self, buf: PartBuffer, count: int) -> None:
        """The first read is done: its slot is ready before the prefetch starts with the second."""
        start, length = self._reads[0]
        slot = _Slot(0, start, length, buf)
        job: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if count == length:
            job.set_result(count)
        else:
            job.set_exception(ObjectChanged("Object became shorter during the transfer; retry"))
        slot.job = job
        self._held.add(slot)
        self._slots.append(slot)
        self._first_done = True

    async def next_chunk(self) -> Chunk | None:
        """The next chunk in offset order (each handed out once), or None at the end.

        Callers get chunks in the order they asked; a caller never overtakes one that was handed an
        earlier chunk but has not resumed yet.
        """
        if not self._waiters and not self._in_transit:
            taken = self._take()
            if taken is _END:
                return None
            if isinstance(taken, Chunk):
                return taken
        waiter: asyncio.Future[Chunk | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._dispatch()
        try:
            chunk = await waiter
            # our own _dispatch may have served us right after earlier waiters whose tasks have not
            # run yet: let them go first (their wake-ups are already scheduled)
            while self._in_transit and self._in_transit[0] is not waiter:
                await asyncio.sleep(0)
            return chunk
        finally:
            if waiter in self._in_transit:
                self._in_transit.remove(waiter)

    async def close(self) -> None:
        """Stop reading and return every buffer (call once the senders have stopped)."""
        if self._closed:
            return
        self._closed = True
        if self._error is None:
            self._error = TransferAborted()
        self._dispatch()
        # stops the prefetch and waits for reads still running: they write into buffers about to be
        # lent again
        await self._co.shutdown()
        for slot in self._held:
            if slot.buf is not None:
                self._pool.release(slot.buf)
                slot.buf = None
        self._held.clear()
        self._slots.clear()
        self._account.close()

    # -- prefetch ----------------------------------------------------------------------------------
    async def _prefetch(self) -> None:
        loop = asyncio.get_running_loop()
        info = self.info
        try:
            for index, (start, length) in enumerate(self._reads):
                if index == 0 and self._first_done:
                    continue
                self._next_read = index
                while len(self._held) >= self._prefetch_parts:
                    self._slot_waiter = loop.create_future()
                    await self._slot_waiter
                self._account.set_priority(index, self._part_size if not self._held else 0)
                buf = await self._pool.acquire(self._part_size, account=self._account, key=index)
                slot = _Slot(index, start, length, buf)
                self._held.add(slot)
                self._slots.append(slot)
                slot.job = self._co.submit_io(self._read, info, slot.start, buf.view[:length])
                slot.job.add_done_callback(lambda _: self._dispatch())
            self._all_acquired = True
            self._account.set_priority(None, 0)
            self._dispatch()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._error = exc
            self._dispatch()

    def _read(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        n = self._backend.read_range(info, start, into)
        if n != len(into):
            raise ObjectChanged("Object became shorter during the transfer; retry")
        return n

    # -- handing out chunks ------------------------------------------------------------------------
    def _take(self) -> object:
        """A Chunk, _END, or None when the next bytes are not read yet; raises a read's failure."""
        if self._error is not None:
            raise self._error
        while self._slots:
            slot = self._slots[0]
            if slot.handed >= slot.length:
                self._slots.popleft()
                continue
            job = slot.job
            if job is None or not job.done():
                return None
            if job.cancelled():
                raise TransferAborted()
            exc = job.exception()
            if exc is not None:
                self._error = exc if isinstance(exc, DsiError) else DsiError(
                    f"Internal error during download ({type(exc).__name__})", operation="read")
                raise self._error
            assert slot.buf is not None
            lo = slot.handed
            hi = min(slot.length, lo + self._chunk_size)
            slot.handed = hi
            slot.outstanding += 1
            return Chunk(slot.start + lo, slot.buf.view[lo:hi], _Release(self, slot, hi - lo))
        return _END if self._all_acquired else None

    def _dispatch(self) -> None:
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            try:
                taken = self._take()
            except BaseException as exc:
                for w in self._waiters:
                    if not w.done():
                        w.set_exception(exc)
                self._waiters.clear()
                return
            if taken is None:
                return
            self._waiters.popleft()
            self._in_transit.append(waiter)
            waiter.set_result(taken if isinstance(taken, Chunk) else None)

    def _chunk_released(self, slot: _Slot | None, n: int) -> None:
        self.bytes_sent += n
        if slot is None or self._closed:
            return
        slot.outstanding -= 1
        if slot.handed < slot.length or slot.outstanding or slot.buf is None:
            return
        self._pool.release(slot.buf)
        slot.buf = None
        self._held.discard(slot)
        if not self._held and not self._all_acquired:  # the next read is now what unblocks this download
            self._account.set_priority(self._next_read, self._part_size)
        if self._slot_waiter is not None and not self._slot_waiter.done():
            self._slot_waiter.set_result(None)
