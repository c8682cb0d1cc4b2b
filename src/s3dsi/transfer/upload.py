"""The upload engine: out-of-order data blocks assembled in place into S3 parts, uploaded as they fill.

Blocks are received straight into part buffers (``get_buffer`` / ``data_received``). A full part goes
to the workers (CRC32C + ADLER32, UploadPart) and to the in-order hash chain (MD5/SHA); its buffer
returns to the pool once both are done. Only parts inside the window ``[lowest unfinished part,
+window)`` get buffers, so memory is bounded whatever order the blocks come in.

Multipart-creation rule: a file that fits in part 1 must become one PutObject, so the multipart
upload is created only once the file is known to be larger than part 1 — when a byte beyond part 1
has been received — and lazily, by the first part that is ready to upload. A full part 1 waits
(its buffer held; it is the window's lowest part so it never blocks the window beyond its width)
until either such a byte arrives or ``finish`` decides on a single PutObject.

Nothing becomes visible before ``finish`` succeeds: the object appears only through PutObject or
CompleteMultipartUpload, and every failure path aborts the multipart upload (registered the moment
its id exists, in the very thread that created it), so an existing object is never touched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, TypeVarTuple, Unpack

from s3dsi.protocol.errors import DsiError, PermissionDenied, TransferAborted
from s3dsi.protocol.ranges import RangeList
from s3dsi.storage.backend import Backend, ObjectInfo
from s3dsi.transfer.assembly import DONE, FILLING, SEALED, UPLOADED, PartAssembly
from s3dsi.transfer.buffers import BufferPool, PartBuffer
from s3dsi.transfer.checksums import RunningChecksums
from s3dsi.transfer.errors import ChecksumMismatch, FileTooLarge, IncompleteUpload
from s3dsi.transfer.geometry import MAX_PARTS, PartPlan, PartSpan
from s3dsi.transfer.tags import digest_tags
from s3dsi.transfer.workers import PartWorkers

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_DISCARD_SIZE = 256 * 1024


@dataclass(frozen=True)
class CommittedPart:
    """A part durably uploaded to the multipart upload (what a restart journal keeps)."""

    number: int
    start: int
    size: int
    etag: str
    crc32c: int
    adler32: int | None = None


@dataclass(frozen=True)
class FinishedUpload:
    size: int
    etag: str
    checksums: Mapping[str, str]  # algorithm (upper case) -> lower-case hex
    info: ObjectInfo
    parts: int  # 0: single PutObject
    tags_stored: bool


class UploadEngine:
    """One STOR/ESTO/APPE into one object. Every method runs on the event-loop thread."""

    def __init__(self, backend: Backend, path: str, *, plan: PartPlan, pool: BufferPool,
                 workers: PartWorkers, checksums: Sequence[str] = ("MD5", "ADLER32", "CRC32C"),
                 base_offset: int = 0, max_window_parts: int | None = None,
                 loop: asyncio.AbstractEventLoop | None = None,
                 upload_id: str | None = None, committed_parts: Sequence[CommittedPart] = (),
                 on_part_committed: Callable[[CommittedPart], None] | None = None) -> None:
        self._backend = backend
        self._path = path
        self._plan = plan
        self._pool = pool
        self._workers = workers
        self._base_offset = base_offset
        self._max_window = max_window_parts
        self._loop = loop
        self._on_part_committed = on_part_committed
        self._sums = RunningChecksums(checksums)
        self._account = pool.open_account(f"upload {path}")
        self._first_end = plan.span(1).end

        self._parts: dict[int, PartAssembly] = {}
        self._cur: PartAssembly | None = None  # the part the last block went to (fast path)
        self._committed: dict[int, CommittedPart] = {c.number: c for c in committed_parts}
        self._uploaded: dict[int, CommittedPart] = dict(self._committed)
        self._newly_durable: list[tuple[int, int]] = []
        self._highest = max((c.start + c.size for c in committed_parts), default=0)
        self._bytes_received = 0
        self._base = 1
        self._window_end = 0
        self._hash_next = 1
        self._hash_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._change_waiters: list[asyncio.Future[None]] = []
        self._pool_waits = 0
        self._discard: memoryview | None = None

        self._lock = threading.Lock()  # guards what worker threads touch: upload id, abort flag, jobs
        self._jobs: set[cf.Future[Any]] = set()
        self._upload_id = upload_id
        self._aborting = False
        self._keep_upload = False
        self._completed = False
        self._create_task: asyncio.Future[str] | None = None
        self._multipart_wanted = upload_id is not None
        self._decision: asyncio.Future[bool] | None = None
        self._parked = False
        self._cleanup_task: asyncio.Task[None] | None = None
        self._closed = False
        self._opened = False
        self.failed: BaseException | None = None
        self._expect: tuple[str, str] | None = None

        if committed_parts:
            self._sums.drop_ordered()
            for c in committed_parts:
                self._sums.record_part(c.number, c.size, c.crc32c, c.adler32)
        self._advance_base()

    # -- state for the network layer ---------------------------------------------------------------
    @property
    def bytes_received(self) -> int:
        """Distinct bytes received in this transfer (duplicates and skipped durable parts excluded)."""
        return self._bytes_received

    @property
    def upload_id(self) -> str | None:
        return self._upload_id

    @property
    def plan(self) -> PartPlan:
        return self._plan

    async def open(self) -> None:
        """Check the object can be written; nothing is created in S3 yet."""
        self._loop = self._loop or asyncio.get_running_loop()
        try:
            await self._io(self._backend.check_writable, self._path)
        except BaseException:
            self._closed = True
            self._account.close()
            raise
        self._opened = True
        self._advance_base()

    def get_buffer(self, offset: int, max_len: int) -> memoryview | None:
        """Writable view for bytes at transfer ``offset``; None: pause the stream, ``wait_for_space``."""
        if max_len <= 0:
            raise ValueError("max_len must be positive")
        if self.failed is not None or self._closed:
            return None
        f = offset + self._base_offset
        part = self._cur
        if part is None or not part.start <= f < part.end:
            try:
                span = self._plan.part_for(f)
            except DsiError as exc:
                self._fail(exc)
                return None
            part = self._parts.get(span.number)
            if part is None:
                if span.number < self._base or span.number in self._committed:
                    return self._discard_view(min(max_len, span.end - f))
                if span.number >= self._window_end:
                    return None
                buf = self._pool.try_acquire(span.size, account=self._account, key=span.number)
                if buf is None:
                    return None
                part = self._new_part(span, buf)
        if part.state != FILLING:
            return self._discard_view(min(max_len, part.end - f))
        self._cur = part
        rel = f - part.start
        return part.view[rel:min(part.size, rel + max_len)]

    def data_received(self, offset: int, nbytes: int) -> None:
        """The kernel wrote ``nbytes`` at transfer ``offset`` into the view ``get_buffer`` returned."""
        if nbytes <= 0 or self.failed is not None or self._closed:
            return
        f = offset + self._base_offset
        part = self._cur
        if part is None or not part.start <= f < part.end:
            part = self._parts.get(self._plan.part_for(f).number)
            if part is None:
                return  # bytes of a part that is already durable: dropped
        if part.state != FILLING:
            return
        end = f + nbytes
        if end > part.end:
            raise ValueError("data_received beyond the view get_buffer returned")
        added = part.add_run(f - part.start, end - part.start)
        if not added:
            return
        part.filled += added
        self._bytes_received += added
        if end > self._highest:
            self._highest = end
            if end > self._first_end and not self._multipart_wanted:
                self._want_multipart()
        if part.filled == part.size:
            self._seal(part, part.size)

    async def wait_for_space(self, offset: int) -> None:
        """Return once ``get_buffer(offset, …)`` will succeed (its buffer is taken for it)."""
        f = offset + self._base_offset
        while True:
            self._raise_if_failed()
            try:
                span = self._plan.part_for(f)
            except DsiError as exc:
                self._fail(exc)
                raise
            if span.number in self._parts or span.number < self._base or span.number in self._committed:
                return
            if span.number >= self._window_end:
                await self._next_change()
                continue
            if span.size > self._pool.budget:
                self._fail(FileTooLarge(f"Part size {span.size} exceeds the memory budget"))
                continue
            self._pool_waits += 1
            try:
                buf = await self._pool.acquire(span.size, account=self._account, key=span.number)
            finally:
                self._pool_waits -= 1
            if self.failed is not None or span.number in self._parts or span.number < self._base:
                self._pool.release(buf)
                continue
            self._new_part(span, buf)
            return

    def is_stalled(self) -> bool:
        """True when no part can move without new data: nothing uploading, hashing or being created.

        With every data connection paused this means the data needed to free the window will never
        come (raise ``DataTooFarOutOfOrder``). A wait for pool room counts as movement: other
        transfers release buffers by themselves.
        """
        if self.failed is not None or self._closed:
            return False
        with self._lock:
            if self._jobs:
                return False
        if self._pool_waits or (self._hash_task is not None and not self._hash_task.done()):
            return False
        if self._create_task is not None and not self._create_task.done():
            return False
        # an UPLOADED part waiting for an earlier part's hash does not move by itself
        return not any(part.state == SEALED and not (part.number == 1 and self._parked)
                       for part in self._parts.values())

    async def wait_stalled(self) -> None:
        """Return once ``is_stalled()`` is true (for a network layer whose streams are all paused)."""
        while not self.is_stalled():
            self._raise_if_failed()
            await self._next_change()

    def pop_committed_ranges(self) -> list[tuple[int, int]]:
        """Transfer-offset ranges made durable since the previous call, merged, each reported once."""
        ranges, self._newly_durable = self._newly_durable, []
        merged = RangeList()
        for file_start, file_end in ranges:
            start, end = max(0, file_start - self._base_offset), file_end - self._base_offset
            if start < end:
                merged.add(start, end)
        return list(merged)

    def committed_parts(self) -> list[CommittedPart]:
        """Every part durably in the multipart upload so far (for a restart journal)."""
        return [self._uploaded[n] for n in sorted(self._uploaded)]

    # -- part pipeline -----------------------------------------------------------------------------

    def _new_part(self, span: PartSpan, buf: PartBuffer) -> PartAssembly:
        part = PartAssembly(span, buf)
        self._parts[span.number] = part
        if span.number == self._base:
            self._account.set_priority(self._base, 0)
        return part

    def _seal(self, part: PartAssembly, length: int) -> None:
        part.length = length
        part.state = SEALED
        if self._cur is part:
            self._cur = None
        task = self._get_loop().create_task(self._ship(part))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._kick_hash()

    async def _ship(self, part: PartAssembly) -> None:
        try:
            view = part.view[:part.length]
            part.crc, part.adler = await self._cpu(self._sums.digest_part, view)
            self._sums.record_part(part.number, part.length, part.crc, part.adler)
            if part.number == 1 and not self._multipart_wanted:
                self._parked = True
                self._notify()  # parked: may leave the engine with nothing in motion
                try:
                    if not await self._decide():
                        return  # finish() stores it with one PutObject
                finally:
                    self._parked = False
            upload_id = await self._ensure_upload()
            etag = await self._io(partial(self._backend.upload_part, self._path, upload_id, part.number,
                                          view, crc32c=part.crc))
            committed = CommittedPart(part.number, part.start, part.length, etag, part.crc, part.adler)
            self._uploaded[part.number] = committed
            part.state = UPLOADED
            self._newly_durable.append((part.start, part.start + part.length))
            if self._on_part_committed is not None:
                self._on_part_committed(committed)
            self._maybe_release(part)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._notify()

    def _kick_hash(self) -> None:
        if not self._sums.needs_ordered or (self._hash_task is not None and not self._hash_task.done()):
            return
        part = self._parts.get(self._hash_next)
        if part is not None and part.state != FILLING:
            self._hash_task = self._get_loop().create_task(self._hash_chain())

    async def _hash_chain(self) -> None:
        try:
            while (part := self._parts.get(self._hash_next)) is not None and part.state != FILLING:
                await self._cpu(self._sums.feed_ordered, part.view[:part.length])
                part.hashed = True
                self._hash_next += 1
                self._maybe_release(part)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._notify()

    def _maybe_release(self, part: PartAssembly) -> None:
        if part.state != UPLOADED or (self._sums.needs_ordered and not part.hashed):
            return
        if part.buf is not None:
            self._pool.release(part.buf)
            part.buf = None
        part.state = DONE
        if part.number == self._base:
            self._advance_base()

    def _advance_base(self) -> None:
        while True:
            part = self._parts.get(self._base)
            if part is not None and part.state == DONE:
                del self._parts[self._base]
            elif self._base not in self._committed:
                break
            self._base += 1
        span = self._plan.span(min(self._base, MAX_PARTS))
        width = max(2, self._pool.budget // span.size)
        if self._max_window is not None:
            width = max(2, min(width, self._max_window))
        self._window_end = self._base + width
        if self._opened:  # an engine never opened must not hold a reserve in the shared pool
            self._account.set_priority(self._base, 0 if self._base in self._parts else span.size)
        self._notify()

    # -- the multipart upload ----------------------------------------------------------------------
    def _want_multipart(self) -> None:
        self._multipart_wanted = True
        if self._decision is not None and not self._decision.done():
            self._decision.set_result(True)

    async def _decide(self) -> bool:
        if self._decision is None:
            self._decision = self._get_loop().create_future()
        return await self._decision

    async def _ensure_upload(self) -> str:
        if self._upload_id is not None:
            return self._upload_id
        if self._create_task is None:
            self._create_task = asyncio.ensure_future(self._io(self._create_upload))
        return await asyncio.shield(self._create_task)

    def _create_upload(self) -> str:
        """Worker thread: create the upload and register its clean-up before anything else runs."""
        upload_id = self._backend.create_upload(self._path)
        with self._lock:
            aborting = self._aborting
            if not aborting:
                self._upload_id = upload_id
        if aborting:
            self._backend.abort_upload(self._path, upload_id)
            raise TransferAborted()
        return upload_id

    # -- the end -----------------------------------------------------------------------------------
    async def finish(self, *, expect: tuple[str, str] | None = None) -> FinishedUpload:
        """Store the object (PutObject or CompleteMultipartUpload) and tag it with its digests.

        ``expect`` (algorithm, lower-case hex; from SCKS): the object is stored only if the data
        received has that digest — checked before anything becomes visible. The algorithm must be one
        this engine computes; otherwise the check cannot be made and is skipped (logged).
        """
        self._expect = expect
        if self._closed:
            raise self.failed or DsiError("upload already finished")
        try:
            self._raise_if_failed()
            size = self._highest
            self._check_contiguous(size)
            last = self._parts.get(self._plan.part_for(size - 1).number) if size else None
            if last is not None and last.state == FILLING:
                self._seal(last, size - last.start)
            single = size <= self._first_end and self._upload_id is None and not self._committed
            if single:
                if self._decision is None:
                    self._decision = self._get_loop().create_future()
                if not self._decision.done():
                    self._decision.set_result(False)
            else:
                self._want_multipart()
            await self._drain()
            self._raise_if_failed()
            result = await (self._put_single(size) if single else self._complete(size))
        except BaseException as exc:
            if self.failed is None:
                self._fail(exc if not isinstance(exc, asyncio.CancelledError) else TransferAborted())
            await self.abort()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._failure() from None
        self._release_all()
        return result

    async def abort(self, *, keep_upload: bool = False) -> None:
        """Idempotent: abort the multipart upload, release every buffer, fail every waiter.

        ``keep_upload`` leaves the multipart upload in place for a later restart (REST), with the
        parts ``committed_parts()`` lists; the janitor removes it if nobody comes back.
        """
        if self._closed and self._cleanup_task is None:
            return  # finished (or never opened): nothing to undo
        if keep_upload:
            with self._lock:
                self._keep_upload = True
        if self.failed is None:
            self._fail(TransferAborted())
        if self._cleanup_task is None:
            self._cleanup_task = self._get_loop().create_task(self._cleanup())
        await asyncio.shield(self._cleanup_task)

    async def _drain(self) -> None:
        while True:
            pending: set[asyncio.Future[None]] = set(self._tasks)
            if self._hash_task is not None and not self._hash_task.done():
                pending.add(self._hash_task)
            if not pending:
                return
            await asyncio.wait(pending)

    def _check_contiguous(self, size: int) -> None:
        if size == 0:
            return
        last = self._plan.part_for(size - 1).number
        for number in range(self._base, last + 1):
            if number in self._committed:
                continue
            part = self._parts.get(number)
            if part is None:
                raise self._hole(self._plan.span(number).start)
            if part.state != FILLING:
                continue
            want = size - part.start if number == last else part.size
            if part.filled != want or part.first_gap() != want:
                raise self._hole(part.start + part.first_gap())

    def _hole(self, offset: int) -> IncompleteUpload:
        return IncompleteUpload(
            f"Data received is not contiguous: bytes from offset {max(0, offset - self._base_offset)} "
            f"are missing; nothing was stored", operation="close")

    async def _put_single(self, size: int) -> FinishedUpload:
        part = self._parts.get(1)
        if size and part is None:
            raise self._hole(0)
        data = part.view[:size] if part is not None and size else memoryview(b"")
        digests = self._sums.hexdigests(size)
        self._verify_expected(digests)
        tags = digest_tags(digests, size, None)
        crc = part.crc if part is not None and size else 0
        try:
            info = await self._io(partial(self._backend.put_object, self._path, data, crc32c=crc, tags=tags))
            stored = True
        except PermissionDenied:
            # PutObject with tags also needs s3:PutObjectTagging; tags are best effort, the data is not
            info = await self._io(partial(self._backend.put_object, self._path, data, crc32c=crc))
            stored = False
        if size:
            self._newly_durable.append((0, size))
        return FinishedUpload(size, info.etag, digests, info, 0, stored)

    async def _complete(self, size: int) -> FinishedUpload:
        upload_id = await self._ensure_upload()
        parts = [(n, self._uploaded[n].etag) for n in sorted(self._uploaded)]
        digests = self._sums.hexdigests(size)
        self._verify_expected(digests)
        info = await self._io(self._backend.complete_upload, self._path, upload_id, parts)
        with self._lock:
            self._completed = True  # the upload id is spent: nothing to abort any more
        tags = digest_tags(digests, size, info.etag)
        try:
            stored = await self._io(self._backend.set_tags, self._path, tags)
        except DsiError as exc:
            log.warning("could not tag %s with its checksums: %s", self._path, exc.text)
            stored = False
        return FinishedUpload(size, info.etag, digests, info, len(parts), stored)

    def _verify_expected(self, digests: Mapping[str, str]) -> None:
        if self._expect is None:
            return
        algorithm, value = self._expect
        got = digests.get(algorithm.upper())
        if got is None:
            log.warning("SCKS %s for %s cannot be verified: not computed for this upload", algorithm,
                        self._path)
            return
        if got != value.lower():
            raise ChecksumMismatch(f"Checksum mismatch: {algorithm} of the data received is {got}, SCKS "
                                   f"announced {value.lower()}; nothing was stored")

    async def _cleanup(self) -> None:
        with self._lock:
            self._aborting = True
            upload_id = None if self._completed or self._keep_upload else self._upload_id
            jobs = list(self._jobs)
        if self._decision is not None and not self._decision.done():
            self._decision.set_result(False)
        tasks = [t for t in (*self._tasks, self._hash_task, self._create_task) if t is not None]
        for task in tasks:
            task.cancel()
        for job in jobs:
            job.cancel()  # only jobs not yet started; running ones must end before buffers are reused
        running = [asyncio.wrap_future(j) for j in jobs if not j.cancelled()]
        if running:
            await asyncio.wait(running)
        await asyncio.gather(*tasks, return_exceptions=True)
        if upload_id is not None:
            try:
                await self._workers.run(self._backend.abort_upload, self._path, upload_id)
            except Exception as exc:
                log.warning("could not abort multipart upload for %s: %s", self._path,
                            getattr(exc, "text", type(exc).__name__))
        self._release_all()

    def _release_all(self) -> None:
        for part in self._parts.values():
            if part.buf is not None:
                self._pool.release(part.buf)
                part.buf = None
        self._cur = None
        self._closed = True
        self._account.close()
        self._notify()

    # -- failure and wake-ups ----------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if self.failed is not None:
            return
        if not isinstance(exc, DsiError):
            log.error("upload of %s failed", self._path, exc_info=exc)
            wrapped = DsiError(f"Internal error during upload ({type(exc).__name__})", operation="write")
            wrapped.__cause__ = exc
            exc = wrapped
        self.failed = exc
        self._pool.fail_waiters(self._account, exc)
        self._notify()
        if self._cleanup_task is None and self._loop is not None:
            self._cleanup_task = self._loop.create_task(self._cleanup())

    def _failure(self) -> BaseException:
        return self.failed if self.failed is not None else TransferAborted()

    def _raise_if_failed(self) -> None:
        if self.failed is not None:
            raise self.failed
        if self._closed:
            raise TransferAborted()

    def _notify(self) -> None:
        waiters, self._change_waiters = self._change_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _next_change(self) -> None:
        waiter = self._get_loop().create_future()
        self._change_waiters.append(waiter)
        await waiter

    def _discard_view(self, length: int) -> memoryview:
        if self._discard is None:
            self._discard = memoryview(bytearray(_DISCARD_SIZE))
        return self._discard[:min(length, _DISCARD_SIZE)]

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- jobs on the worker pools, tracked so abort can wait for the running ones ------------------
    async def _io(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        return await self._track(self._workers.submit(fn, *args))

    async def _cpu(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        return await self._track(self._workers.submit_cpu(fn, *args))

    async def _track(self, job: cf.Future[T]) -> T:
        with self._lock:
            self._jobs.add(job)
        job.add_done_callback(self._job_done)
        return await asyncio.wrap_future(job, loop=self._get_loop())

    def _job_done(self, job: cf.Future[T]) -> None:
        with self._lock:
            self._jobs.discard(job)
