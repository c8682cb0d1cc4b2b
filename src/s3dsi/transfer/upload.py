"""The upload engine: out-of-order data blocks assembled in place into S3 parts, uploaded as they fill.

Blocks are received straight into part buffers (``get_buffer`` / ``data_received``) lent by the
``PartWindow``. A full part is sealed and shipped: its CRC32C/ADLER32 on the hash pool, then
UploadPart through the ``MultipartUpload`` (which also decides between one PutObject and a multipart
upload); meanwhile the in-order chain feeds MD5/SHA. A part's buffer returns to the pool once it is
both uploaded and hashed. All of this runs through the transfer's ``TransferCoordinator``, which owns
the clean-up: whatever ends the transfer, ``abort`` (or a failure) cancels the work, waits for the
threads, aborts the multipart upload (unless kept for a restart) and returns every buffer.

Nothing becomes visible before ``finish`` succeeds: the object appears only through PutObject or
CompleteMultipartUpload, so an existing object is never touched by a failed upload.

Use as ``async with UploadEngine(...) as engine:`` (open, then abort unless finished), or call
``open``/``finish``/``abort`` directly. Every method runs on the event-loop thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from s3dsi.protocol.errors import DsiError, PermissionDenied, TransferAborted
from s3dsi.protocol.ranges import RangeList
from s3dsi.storage.backend import Backend, ObjectInfo
from s3dsi.transfer.assembly import FILLING, SEALED, UPLOADED, PartAssembly
from s3dsi.transfer.buffers import BufferPool, PoolAccount
from s3dsi.transfer.checksums import RunningChecksums
from s3dsi.transfer.coordinator import TransferCoordinator
from s3dsi.transfer.errors import ChecksumMismatch, FileTooLarge, IncompleteUpload
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.multipart import MultipartUpload, UploadRecorder
from s3dsi.transfer.tags import digest_tags
from s3dsi.transfer.window import PartWindow
from s3dsi.transfer.workers import PartWorkers

log = logging.getLogger(__name__)

INLINE_DIGEST = 256 * 1024  # parts up to this size are digested on the event loop (~20 µs)


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
    """One STOR/ESTO/APPE into one object."""

    def __init__(self, backend: Backend, path: str, *, plan: PartPlan, pool: BufferPool,
                 workers: PartWorkers, checksums: Sequence[str] = ("MD5", "ADLER32", "CRC32C"),
                 base_offset: int = 0, max_window_parts: int | None = None,
                 loop: asyncio.AbstractEventLoop | None = None,
                 upload_id: str | None = None, committed_parts: Sequence[CommittedPart] = (),
                 on_part_committed: Callable[[CommittedPart], None] | None = None,
                 recorder: UploadRecorder | None = None) -> None:
        self._backend = backend
        self._path = path
        self._plan = plan
        self._pool = pool
        self._base_offset = base_offset
        self._on_part_committed = on_part_committed
        self._sums = RunningChecksums(checksums)
        self._first_end = plan.span(1).end
        self._co = TransferCoordinator(workers, name=f"upload of {path}")
        if loop is not None:
            self._co._loop = loop
        self._co.add_failure_cleanup(self._release_all)  # registered first: runs last
        self._multipart = MultipartUpload(backend, path, self._co, upload_id=upload_id, recorder=recorder)
        account = pool.open_account(f"upload {path}")
        self._window = PartWindow(plan, pool, account, durable=[c.number for c in committed_parts],
                                  max_width=max_window_parts)

        self._committed: dict[int, CommittedPart] = {c.number: c for c in committed_parts}
        self._uploaded: dict[int, CommittedPart] = dict(self._committed)
        self._newly_durable: list[tuple[int, int]] = []
        self._highest = max((c.start + c.size for c in committed_parts), default=0)
        self._bytes_received = 0
        self._hash_next = 1
        self._hash_task: asyncio.Task[None] | None = None
        self._pool_waits = 0
        self._closed = False
        self._expect: tuple[str, str] | None = None

        if committed_parts:
            self._sums.drop_ordered()
            for c in committed_parts:
                self._sums.record_part(c.number, c.size, c.crc32c, c.adler32)
        self._window.advance()

    # -- state for the network layer ---------------------------------------------------------------
    @property
    def bytes_received(self) -> int:
        """Distinct bytes received in this transfer (duplicates and skipped durable parts excluded)."""
        return self._bytes_received

    @property
    def upload_id(self) -> str | None:
        return self._multipart.upload_id

    @property
    def plan(self) -> PartPlan:
        return self._plan

    @property
    def failed(self) -> BaseException | None:
        return self._co.exception

    @property
    def pool_account(self) -> PoolAccount:
        return self._window.account

    async def __aenter__(self) -> UploadEngine:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.abort()  # a no-op once finish succeeded

    async def open(self) -> None:
        """Check the object can be written; nothing is created in S3 yet. A back end that can tell
        without a request (``writable_known``: the namespace's directory cache) is asked on the spot,
        any other in a worker thread."""
        known = getattr(self._backend, "writable_known", None)
        try:
            if known is None or not known(self._path):
                # the commit must carry what check_writable answers (a policy's WriteCondition); back
                # ends with policies have no writable_known, so they are always asked
                self._multipart.condition = await self._co.io(self._backend.check_writable, self._path)
        except BaseException:
            self._closed = True
            self._window.account.close()
            raise
        self._window.reserving = True
        self._window.advance()

    def get_buffer(self, offset: int, max_len: int) -> memoryview | None:
        """Writable view for bytes at transfer ``offset``; None: pause the stream, ``wait_for_space``."""
        if max_len <= 0:
            raise ValueError("max_len must be positive")
        if self._co.exception is not None or self._closed:
            return None
        try:
            return self._window.lend(offset + self._base_offset, max_len)
        except DsiError as exc:
            self._fail(exc)
            return None

    def data_received(self, offset: int, nbytes: int) -> None:
        """The kernel wrote ``nbytes`` at transfer ``offset`` into the view ``get_buffer`` returned."""
        if nbytes <= 0 or self._co.exception is not None or self._closed:
            return
        f = offset + self._base_offset
        part = self._window.filling_part_at(f)
        if part is None:
            return  # bytes of a part that is already durable or sealed: dropped
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
            if end > self._first_end and not self._multipart.multipart_wanted:
                self._multipart.want_multipart()
        if part.filled == part.size:
            self._seal(part, part.size)

    async def wait_for_space(self, offset: int) -> None:
        """Return once ``get_buffer(offset, …)`` will succeed (its buffer is taken for it)."""
        f = offset + self._base_offset
        window = self._window
        while True:
            self._raise_if_failed()
            try:
                span = self._plan.part_for(f)
            except DsiError as exc:
                self._fail(exc)
                raise
            if window.has_room_for(span):
                return
            if span.number >= window.end:
                await self._co.changed()
                continue
            if span.size > self._pool.budget:
                self._fail(FileTooLarge(f"Part size {span.size} exceeds the memory budget"))
                continue
            self._pool_waits += 1
            try:
                buf = await self._pool.acquire(span.size, account=window.account, key=span.number)
            finally:
                self._pool_waits -= 1
            if self._co.exception is not None or window.has_room_for(span):
                self._pool.release(buf)
                continue
            window.open_part(span, buf)
            return

    def is_stalled(self) -> bool:
        """True when no part can move without new data: nothing uploading, hashing or being created.

        With every data connection paused this means the data needed to free the window will never
        come (raise ``DataTooFarOutOfOrder``). A wait for pool room counts as movement: other
        transfers release buffers by themselves.
        """
        if self._co.exception is not None or self._closed:
            return False
        if self._co.jobs_running or self._pool_waits:
            return False
        if self._hash_task is not None and not self._hash_task.done():
            return False
        if self._multipart.creating:
            return False
        # a sealed part moves by itself, unless it is part 1 parked until the file proves larger
        parked = self._multipart.first_part_parked
        return not any(part.state == SEALED and not (part.number == 1 and parked)
                       for part in self._window.parts.values())

    async def wait_stalled(self) -> None:
        """Return once ``is_stalled()`` is true (for a network layer whose streams are all paused)."""
        while not self.is_stalled():
            self._raise_if_failed()
            await self._co.changed()

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
    def _seal(self, part: PartAssembly, length: int) -> None:
        part.length = length
        part.state = SEALED
        self._window.unlink(part)
        self._co.spawn(self._ship(part))
        self._kick_hash()

    async def _ship(self, part: PartAssembly) -> None:
        try:
            view = part.view[:part.length]
            if part.length <= INLINE_DIGEST:  # cheaper here than the hand-off to a thread and back
                part.crc, part.adler = self._sums.digest_part(view)
            else:
                part.crc, part.adler = await self._co.cpu(self._sums.digest_part, view)
            self._sums.record_part(part.number, part.length, part.crc, part.adler)
            if part.number == 1 and not await self._multipart.first_part_goes_multipart():
                return  # finish() stores it with one PutObject
            etag = await self._multipart.upload_part(part.number, view, part.crc)
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
            self._co.notify()

    def _kick_hash(self) -> None:
        if not self._sums.needs_ordered or (self._hash_task is not None and not self._hash_task.done()):
            return
        part = self._window.parts.get(self._hash_next)
        if part is not None and part.state != FILLING:
            self._hash_task = self._co.spawn(self._hash_chain())

    async def _hash_chain(self) -> None:
        """MD5/SHA need the bytes in file order: parts are hashed as the contiguous prefix grows."""
        try:
            while (part := self._window.parts.get(self._hash_next)) is not None and part.state != FILLING:
                await self._co.cpu(self._sums.feed_ordered, part.view[:part.length])
                part.hashed = True
                self._hash_next += 1
                self._maybe_release(part)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._co.notify()

    def _maybe_release(self, part: PartAssembly) -> None:
        if part.state != UPLOADED or (self._sums.needs_ordered and not part.hashed):
            return
        self._window.release(part)
        self._co.notify()

    # -- the end -----------------------------------------------------------------------------------
    async def finish(self, *, expect: tuple[str, str] | None = None) -> FinishedUpload:
        """Store the object (PutObject or CompleteMultipartUpload) and tag it with its digests.

        ``expect`` (algorithm, lower-case hex; from SCKS): the object is stored only if the data
        received has that digest — checked before anything becomes visible. The algorithm must be one
        this engine computes; otherwise the check cannot be made and is skipped (logged).
        """
        self._expect = expect
        if self._closed:
            raise self._co.exception or DsiError("upload already finished")
        try:
            self._raise_if_failed()
            size = self._highest
            self._check_contiguous(size)
            last = self._window.parts.get(self._plan.part_for(size - 1).number) if size else None
            if last is not None and last.state == FILLING:
                self._seal(last, size - last.start)
            single = size <= self._first_end and self._multipart.upload_id is None and not self._committed
            if single:
                self._multipart.choose_single()
            else:
                self._multipart.want_multipart()
            await self._drain()
            self._raise_if_failed()
            result = await (self._put_single(size) if single else self._complete(size))
        except BaseException as exc:
            self._fail(exc if not isinstance(exc, asyncio.CancelledError) else TransferAborted())
            await self.abort()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._failure() from None
        self._co.succeed()
        await self._co.shutdown()
        await self._release_all()
        return result

    async def abort(self, *, keep_upload: bool = False) -> None:
        """Idempotent: abort the multipart upload, release every buffer, fail every waiter.

        ``keep_upload`` leaves the multipart upload in place for a later restart (REST), with the
        parts ``committed_parts()`` lists; the janitor removes it if nobody comes back.
        """
        if self._closed and self._co.status != "failed":
            return  # finished (or never opened): nothing to undo
        if keep_upload:
            self._multipart.keep()
        if self._co.exception is None:
            self._fail(TransferAborted())
        await self._co.shutdown()

    async def _drain(self) -> None:
        while True:
            pending = self._co.pending_tasks()
            if not pending:
                return
            await asyncio.wait(pending)

    def _check_contiguous(self, size: int) -> None:
        if size == 0:
            return
        last = self._plan.part_for(size - 1).number
        for number in range(self._window.base, last + 1):
            if number in self._committed:
                continue
            part = self._window.parts.get(number)
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
        part = self._window.parts.get(1)
        if size and part is None:
            raise self._hole(0)
        data = part.view[:size] if part is not None and size else memoryview(b"")
        digests = self._sums.hexdigests(size)
        self._verify_expected(digests)
        tags = digest_tags(digests, size, None)
        crc = part.crc if part is not None and size else 0
        try:
            info = await self._multipart.put_single(data, crc, tags)
            stored = True
        except PermissionDenied:
            # PutObject with tags also needs s3:PutObjectTagging; tags are best effort, the data is not
            info = await self._multipart.put_single(data, crc, None)
            stored = False
        if size:
            self._newly_durable.append((0, size))
        return FinishedUpload(size, info.etag, digests, info, 0, stored)

    async def _complete(self, size: int) -> FinishedUpload:
        parts = [(n, self._uploaded[n].etag) for n in sorted(self._uploaded)]
        digests = self._sums.hexdigests(size)
        self._verify_expected(digests)
        info = await self._multipart.complete(parts, self._sums.crc32c(size))
        tags = digest_tags(digests, size, info.etag)
        try:
            stored = await self._co.io(self._backend.set_tags, self._path, tags)
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

    async def _release_all(self) -> None:
        if self._closed:
            return
        self._window.release_all()
        self._closed = True
        self._window.account.close()
        self._co.notify()

    # -- failure -----------------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if self._co.exception is not None:
            return
        if not isinstance(exc, DsiError) and not isinstance(exc, asyncio.CancelledError):
            log.error("upload of %s failed", self._path, exc_info=exc)
            wrapped = DsiError(f"Internal error during upload ({type(exc).__name__})", operation="write")
            wrapped.__cause__ = exc
            exc = wrapped
        self._co.fail(exc)
        if self._co.exception is not None:
            self._pool.fail_waiters(self._window.account, self._co.exception)

    def _failure(self) -> BaseException:
        return self._co.exception if self._co.exception is not None else TransferAborted()

    def _raise_if_failed(self) -> None:
        self._co.raise_if_failed()
        if self._closed:
            raise TransferAborted()
