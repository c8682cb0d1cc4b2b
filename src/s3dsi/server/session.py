"""One control connection: reads commands (pipelined), answers them in order, runs transfers.

Reading and executing are two tasks. The reader queues every command line except an ABOR that
arrives while a transfer runs: that one is acted on at once (the transfer answers 426, then ABOR
answers ``226 Abort successful``) and the session stays usable. End of stream on the control
connection aborts whatever is running and cleans up (multipart uploads aborted).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from s3dsi.observability.logging import get_logger
from s3dsi.observability.transferlog import DOWNLOAD_KINDS, TransferRecord
from s3dsi.protocol.disabled import DisabledCommands
from s3dsi.protocol.errors import DsiError
from s3dsi.protocol.lines import CommandLine, ControlLineBuffer
from s3dsi.protocol.replies import (
    ABORT_SUCCESSFUL,
    IDLE_TIMEOUT,
    LINE_TOO_LONG,
    TRANSFER_ABORTED,
    TRANSFER_COMPLETE,
    Reply,
    error_reply,
)
from s3dsi.protocol.session import Deferred, ProtocolCore
from s3dsi.server.context import DaemonContext
from s3dsi.server.control import ControlStream
from s3dsi.server.data.channels import DataChannels
from s3dsi.server.data.protection import DataProtection
from s3dsi.server.security import SessionSecurity
from s3dsi.storage.backend import Backend
from s3dsi.transfer.checksums import ALGORITHMS

_ids = itertools.count(1)
QUEUE_LIMIT = 512
SHUTTING_DOWN = Reply.line(421, "Service shutting down.")



class RunningTransfer:
    """The data-moving task of the current transfer command, so that ABOR can stop it."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.path = path
        self.task: asyncio.Task[Any] | None = None
        self.aborted_by_client = False
        self.finished = asyncio.Event()
        self.nbytes = 0
        # -- facts for transfer logs, metrics and `s3dsi status` (daemon hooks) --
        self.started_at = time.time()
        self.progress: Callable[[], int] | None = None  # live byte count while data moves
        self.streams = 1  # data connections used
        self.data_peer: str | None = None  # the data connection's remote address, when known
        self.block_size = 0  # data-channel block size, for the transfer log
        self.reported = False
        # All data is in and the object is being stored (PutObject / CompleteMultipartUpload): from
        # here an ABOR or a lost control connection no longer interrupts the transfer, so what the
        # client is told (226) always matches what S3 holds.
        self.committing = False

    @property
    def bytes_done(self) -> int:
        return self.progress() if self.progress is not None else self.nbytes

    def abort(self) -> None:
        if self.committing:
            return  # answered as GT does for a finished transfer: 226, then 226 Abort successful
        self.aborted_by_client = True
        self.cancel()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done() and not self.committing:
            self.task.cancel()


# A handler answers one deferred command; the tables come from s3dsi.server.handlers.
Handler = Callable[["Session", Deferred], Awaitable[None]]


class Session:
    def __init__(self, ctx: DaemonContext, stream: ControlStream, *, peer: tuple[str, int],
                 local: tuple[str, int], handlers: Mapping[str, Handler],
                 session_id: str | None = None) -> None:
        """``session_id``: given by a process that numbers the connections of several (the workers')."""
        self.ctx = ctx
        self.stream = stream
        self.peer = peer
        self.local = local
        self.handlers = handlers
        self.id = session_id or f"{next(_ids):06d}"
        settings = ctx.settings
        self.core = ProtocolCore(checksum_algorithms=ALGORITHMS, mode_e_supported=True,
                                 require_protection=settings.require_tls,
                                 require_private_data=settings.encrypt_data,
                                 auth_mechanisms=ctx.security.mechanisms,
                                 disabled=DisabledCommands.parse(settings.disable_command_list))
        self.state = self.core.state
        self.lines = ControlLineBuffer()
        self.security = SessionSecurity()
        self.channels = DataChannels(data_host=settings.data_interface or local[0],
                                     port_range=settings.port_range, socket_buffer=self._socket_buffer,
                                     control_peer=peer[0], peer_networks=settings.port_allow)
        self.channels.security = DataProtection(
            self.state, self.security, ctx.security, ctx.namespace_pool,
            require_session_reuse=settings.tls_require_session_reuse,
            max_tls12=settings.gsi_tls_max_version == "1.2")
        self.backend: Backend | None = None
        self.transfer: RunningTransfer | None = None
        self.log = get_logger("s3dsi.session", session=self.id, remote=peer[0])
        self._queue: asyncio.Queue[CommandLine] = asyncio.Queue(QUEUE_LIMIT)
        self._closing = False
        self.control_closed = False
        self.opened = time.time()
        # daemon shutdown (drain): finish the command in progress, then close
        self._draining = False
        self._executing = False
        self._worker: asyncio.Task[None] | None = None
        self.failed_logins = 0  # on this connection; login_attempts_max closes it
        self._ending = False

    def _socket_buffer(self) -> int | None:
        """SBUF, else SITE RETRBUFSIZE/STORBUFSIZE: the TCP buffer size for new data connections."""
        state = self.state
        sizes = [x for x in (state.retr_bufsize, state.stor_bufsize) if x]
        return state.sbuf or (max(sizes) if sizes else None)

    # -- replies ---------------------------------------------------------------------------------
    async def reply(self, reply: Reply) -> None:
        await self.stream.send(reply)

    async def reply_error(self, err: DsiError, *, prefix: str | None = None) -> None:
        await self.reply(error_reply(err, prefix=prefix))

    # -- life cycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        settings = self.ctx.settings
        await self.reply(self.core.greeting(self.local[0], settings.banner, terse=settings.banner_terse))
        self.log.info("session opened")
        reader = asyncio.create_task(self._read_loop())
        worker = self._worker = asyncio.create_task(self._work_loop())
        deadline = asyncio.create_task(self._login_deadline(settings.preauth_timeout))
        try:
            await asyncio.wait({reader, worker, deadline}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # asyncio.wait_for of Python 3.11 may swallow a cancellation that meets a read just completing:
            # the reader also checks this flag, so the session cannot hang on a reader that missed it
            self._ending = True
            for task in (reader, worker, deadline):
                task.cancel()
            self._abort_running()
            await asyncio.gather(reader, worker, deadline, return_exceptions=True)
            if self._draining and not self.control_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.reply(SHUTTING_DOWN), 2.0)
            self.channels.close()
            self.security.close()  # the delegated credential's files go with the session
            await self.stream.close()
            self.log.info("session closed", user=self.state.user)

    async def _login_deadline(self, limit: float) -> None:
        """control_preauth_timeout counts from the connect, not from the last byte: a client that sends
        a byte now and then (or waits in a throttled PASS) is closed all the same. Returns, ending the
        session, only when the time is up without a login."""
        if limit <= 0:
            await asyncio.Event().wait()
        await asyncio.sleep(limit)
        if self.state.logged_in:
            await asyncio.Event().wait()  # this task now just waits to be cancelled with the session
        self.log.info("login timed out", seconds=limit)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reply(IDLE_TIMEOUT), 2.0)

    def close_after_reply(self) -> None:
        """The session ends once the command being executed has answered."""
        self._closing = True

    def _abort_running(self) -> None:
        if self.transfer is not None:
            self.transfer.cancel()

    async def _read_loop(self) -> None:
        settings = self.ctx.settings
        while not self._ending:
            timeout = self._idle_timeout(settings.idle_timeout)
            try:
                data = await asyncio.wait_for(self.stream.read(), timeout)
            except TimeoutError:
                if self._executing or self.transfer is not None or not self._queue.empty():
                    continue  # a command still runs (a long CKSM, say): that is not idle time
                if not self.state.logged_in:
                    continue  # before login, _login_deadline decides
                await self.reply(IDLE_TIMEOUT)
                return
            except (ConnectionError, OSError):
                self.control_closed = True
                return
            if not data:
                self.control_closed = True
                return
            for line in self.lines.feed(data):
                if line.verb == "ABOR" and self.transfer is not None and \
                        self.core.disabled.removed("ABOR") is None:
                    await self._abort_now()
                    continue
                await self._queue.put(line)

    def _idle_timeout(self, idle: float) -> float | None:
        """control_idle_timeout, from the last byte read (also while the login is still under way: the
        wait that began with the PASS line must end, so that a silent client is closed after it)."""
        if self.transfer is not None:
            return None
        return float(idle) if idle > 0 else None

    async def _abort_now(self) -> None:
        transfer = self.transfer
        if transfer is None:
            return
        transfer.abort()
        await transfer.finished.wait()
        await self.reply(ABORT_SUCCESSFUL)

    async def _work_loop(self) -> None:
        while not self._draining:
            line = await self._queue.get()
            self._executing = True
            try:
                await self.execute(line)
            finally:
                self._executing = False
            if self._closing or self._draining:
                return

    def drain(self) -> None:
        """Daemon shutdown: the command in progress (a running transfer included) may finish, then the
        session closes with 421; an idle session closes at once."""
        self._draining = True
        if not self._executing and self._worker is not None:
            self._worker.cancel()

    async def execute(self, line: CommandLine) -> None:
        if line.too_long:
            await self.reply(LINE_TOO_LONG)
            return
        if self.log.isEnabledFor(logging.DEBUG):  # the redacted line costs a regex match
            self.log.debug("command", line=line.redacted)
        security = (self.state.dcau, self.state.dcau_subject, self.state.prot)
        result = self.core.handle(line)
        if security != (self.state.dcau, self.state.dcau_subject, self.state.prot):
            self.channels.reset()  # cached data connections were secured for the old settings (as GT)
        if isinstance(result, Reply):
            await self.reply(result)
            if self.core.closing:
                self._closing = True
            return
        await self._run_handler(result)

    async def _run_handler(self, deferred: Deferred) -> None:
        handler = self.handlers.get(deferred.spec.verb)
        if handler is None:
            await self.reply(Reply.line(502, f"{deferred.spec.verb} not implemented."))
            return
        try:
            await handler(self, deferred)
        except DsiError as err:
            await self.reply_error(err)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("command failed", verb=deferred.spec.verb)
            await self.reply(Reply.line(451, "Internal server error."))

    # -- helpers for handlers ----------------------------------------------------------------------
    @property
    def user_backend(self) -> Backend:
        assert self.backend is not None, "login is enforced by the protocol core"
        return self.backend

    async def run_transfer(self, transfer: RunningTransfer,
                           body: Callable[[], Awaitable[None]]) -> BaseException | None:
        """Run a transfer's data phase as an abortable task; returns its failure, if any.

        On ABOR the body's cancellation clean-up runs, then ``426`` is sent here.
        """
        self.transfer = transfer
        task = asyncio.ensure_future(body())
        transfer.task = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            transfer.cancel()  # a transfer already storing its object is let finish
            with contextlib.suppress(BaseException):
                await task
            if transfer.committing and task.done() and not task.cancelled() and task.exception() is None:
                self.report_transfer(transfer, TRANSFER_COMPLETE.code)
            else:
                self.report_transfer(transfer, TRANSFER_ABORTED.code)  # the session itself is going away
            raise
        finally:
            self.transfer = None
        try:
            if task.cancelled():
                if transfer.aborted_by_client:
                    await self.reply(TRANSFER_ABORTED)
                return asyncio.CancelledError()
            return task.exception()
        finally:
            transfer.finished.set()

    def report_transfer(self, transfer: RunningTransfer, code: int) -> None:
        """Hand a finished transfer's facts (and its final reply code) to the daemon's hook, once."""
        hook = self.ctx.on_transfer_done
        if hook is None or transfer.reported:
            return
        transfer.reported = True
        state = self.state
        buffer = state.retr_bufsize if transfer.kind in DOWNLOAD_KINDS else state.stor_bufsize
        record = TransferRecord(
            kind=transfer.kind, path=transfer.path, user=state.user or "", nbytes=transfer.bytes_done,
            started=transfer.started_at, ended=time.time(), code=code,
            remote=transfer.data_peer or self.peer[0], streams=transfer.streams,
            block_size=transfer.block_size, tcp_buffer=state.sbuf or buffer or 0, task_id=state.task_id,
            session_id=self.id)
        try:
            hook(record)
        except Exception:
            self.log.exception("transfer record hook failed")
