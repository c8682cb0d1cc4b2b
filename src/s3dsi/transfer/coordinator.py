"""One transfer's concurrent work, its state and its clean-up, in one place.

After s3transfer's ``TransferCoordinator``: every thread job (part upload, ranged GET, digest) and
every asyncio task of a transfer is started through its coordinator, so that ending the transfer —
however it ends — is one call: ``shutdown`` cancels the tasks and the jobs that have not started,
waits for the jobs already running (their buffers must not be lent again while a thread still writes
or reads them), then runs the clean-ups registered for a failure (an abort of the multipart upload is
registered the moment its id exists), last registered first.

States: RUNNING → DONE (``succeed``) | FAILED (``fail``; a cancellation is a failure with
``TransferAborted``). Only the first ``fail`` counts; it wakes every waiter.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple, Unpack

from s3dsi.protocol.errors import DsiError, TransferAborted
from s3dsi.transfer.tasks import TaskSet
from s3dsi.transfer.workers import PartWorkers

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

RUNNING, DONE, FAILED = "running", "done", "failed"

Cleanup = Callable[[], Awaitable[None]]


class TransferCoordinator:
    """Every method runs on the event-loop thread, except where noted."""

    def __init__(self, workers: PartWorkers, *, name: str = "transfer") -> None:
        self.name = name
        self.status = RUNNING
        self.exception: BaseException | None = None
        self._workers = workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks = TaskSet()
        self._lock = threading.Lock()  # jobs and the failed flag are touched from worker threads too
        self._jobs: set[cf.Future[Any]] = set()
        self._failed_flag = False
        self._cleanups: list[Cleanup] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._shutdown: asyncio.Task[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- work ----------------------------------------------------------------------------------
    async def io(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """A blocking call on the part workers' I/O pool, tracked."""
        return await self._track(self._workers.submit(fn, *args))

    async def cpu(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """CPU work (digests) on the hash pool, tracked."""
        return await self._track(self._workers.submit_cpu(fn, *args))

    def submit_io(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> asyncio.Future[T]:
        """Like ``io`` but returns the future at once (prefetching reads)."""
        return asyncio.wrap_future(self._register(self._workers.submit(fn, *args)), loop=self.loop)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """An asyncio task of this transfer; cancelled by ``shutdown``."""
        return self._tasks.spawn(coro)

    async def _track(self, job: cf.Future[T]) -> T:
        return await asyncio.wrap_future(self._register(job), loop=self.loop)

    def _register(self, job: cf.Future[T]) -> cf.Future[T]:
        with self._lock:
            self._jobs.add(job)
        job.add_done_callback(self._job_done)
        return job

    def _job_done(self, job: cf.Future[Any]) -> None:
        with self._lock:
            self._jobs.discard(job)

    @property
    def jobs_running(self) -> bool:
        """A thread job of this transfer is queued or running."""
        with self._lock:
            return bool(self._jobs)

    def pending_tasks(self) -> set[asyncio.Task[Any]]:
        return self._tasks.pending()

    # -- clean-up ------------------------------------------------------------------------------
    def add_failure_cleanup(self, cleanup: Cleanup) -> None:
        """Run by ``shutdown`` if the transfer did not succeed (last added, first run)."""
        self._cleanups.append(cleanup)

    def register_from_thread(self, cleanup: Cleanup) -> bool:
        """From a worker thread, right after creating a resource: register its clean-up, or return
        False when the transfer has already failed (the caller then undoes the resource itself)."""
        with self._lock:
            if self._failed_flag:
                return False
            self._cleanups.append(cleanup)
            return True

    def fail(self, exc: BaseException) -> None:
        """The first failure wins; non-DsiErrors are logged and wrapped. Starts the shutdown."""
        if self.status != RUNNING:
            return
        if not isinstance(exc, DsiError):
            if not isinstance(exc, asyncio.CancelledError):
                log.error("%s failed", self.name, exc_info=exc)
                wrapped = DsiError(f"Internal error during {self.name} ({type(exc).__name__})")
                wrapped.__cause__ = exc
                exc = wrapped
            else:
                exc = TransferAborted()
        with self._lock:
            self._failed_flag = True
        self.status = FAILED
        self.exception = exc
        self.notify()
        if self._shutdown is None and self._loop is not None:
            self._shutdown = self._loop.create_task(self._shut_down())

    def succeed(self) -> None:
        if self.status == RUNNING:
            self.status = DONE
            self.notify()

    def raise_if_failed(self) -> None:
        if self.exception is not None:
            raise self.exception

    async def shutdown(self) -> None:
        """Idempotent: stop everything of this transfer; failure clean-ups run unless it succeeded."""
        if self.status == RUNNING:
            self.fail(TransferAborted())
        if self._shutdown is None:
            self._shutdown = self.loop.create_task(self._shut_down())
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        tasks = self._tasks.cancel()
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()  # only jobs not yet started; running ones must end before buffers are reused
        running = [asyncio.wrap_future(j, loop=self.loop) for j in jobs if not j.cancelled()]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.status == DONE:
            return
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                await cleanup()
            except Exception as exc:
                log.warning("clean-up of %s failed: %s", self.name, getattr(exc, "text", repr(exc)))

    # -- wake-ups ------------------------------------------------------------------------------
    def notify(self) -> None:
        """Something changed (a part finished, a buffer came free, the transfer failed)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self) -> None:
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        await waiter
