"""The daemon: listening sockets, the accept loop and the shared context every session uses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from s3dsi.config.settings import Settings, namespace_threads
from s3dsi.observability.logging import get_logger
from s3dsi.server.admission import Admission
from s3dsi.server.context import Authenticator, BackendProvider, DaemonContext, UserDirectory
from s3dsi.server.control import ControlStream
from s3dsi.server.handlers import handler_table
from s3dsi.server.security import SecurityServices
from s3dsi.server.session import Handler, Session
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.janitor import sweep_all
from s3dsi.transfer.journal import UploadJournal
from s3dsi.transfer.workers import PartWorkers

log = get_logger("s3dsi.daemon")


class Daemon:
    def __init__(self, settings: Settings, *, authenticator: Authenticator, backends: BackendProvider,
                 stdout: TextIO | None = None, security: SecurityServices | None = None,
                 sweep_at_start: bool = True) -> None:
        """``security``: GSI/FTPS loaded by the caller (before a privilege drop); None loads them from
        ``settings`` here, disabling them with an error logged when the host credential is unusable.
        ``sweep_at_start``: run the janitor once ``start`` listens (one worker of several does)."""
        self.settings = settings
        # the verb -> handler table every session of this daemon dispatches with, built here, once
        self.handlers: Mapping[str, Handler] = handler_table()
        self.ctx = DaemonContext(
            settings=settings,
            authenticator=authenticator,
            backends=backends,
            workers=PartWorkers(settings.part_workers),
            pool=BufferPool(settings.memory_budget),
            namespace_pool=ThreadPoolExecutor(namespace_threads(settings.threads),
                                              thread_name_prefix="s3dsi-ns"),
            journal=UploadJournal(settings.state_dir),
            security=security if security is not None else SecurityServices.load_or_disabled(settings),
        )
        self._stdout = stdout if stdout is not None else sys.stdout
        self._server: asyncio.Server | None = None
        self._session_tasks: set[asyncio.Task[None]] = set()
        self.addresses: list[tuple[str, int]] = []
        self._janitor: asyncio.Future[None] | None = None
        self._sweep_at_start = sweep_at_start
        self.admission = Admission(settings)

    async def start(self, sock: socket.socket | None = None) -> list[tuple[str, int]]:
        """Listen (on ``sock`` when the caller bound it already, e.g. before dropping privileges)."""
        settings = self.settings
        host = settings.control_interface or None
        if sock is not None:
            self._server = await asyncio.start_server(self._on_client, sock=sock, backlog=128)
        else:
            self._server = await asyncio.start_server(self._on_client, host=host, port=settings.port,
                                                      reuse_address=True, backlog=128)
        self.addresses = [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets]
        first = self.addresses[0]
        shown = f"[{first[0]}]" if ":" in first[0] else first[0]
        print(f"listening on {shown}:{first[1]}", file=self._stdout, flush=True)
        log.info("listening", addresses=[f"{h}:{p}" for h, p in self.addresses])
        if self._sweep_at_start:
            self.start_sweep()
        return self.addresses

    def start_sweep(self) -> None:
        """The start-up janitor, on a namespace thread."""
        loop = asyncio.get_running_loop()
        self._janitor = loop.run_in_executor(self.ctx.namespace_pool, self._sweep_orphans)

    def _sweep_orphans(self) -> None:
        """At start: abort unfinished uploads of this service (any host's) that nobody touched within
        orphan_upload_age, from the records in S3 (transfer/janitor.py)."""
        backends = self.ctx.backends
        try:
            users = backends.users() if isinstance(backends, UserDirectory) else []
            result = sweep_all(users, backends.backend_for, self.ctx.journal,
                               max_age=float(self.settings.orphan_upload_age))
        except Exception:
            log.exception("janitor failed")
            return
        if result.aborted or result.failed or result.unreadable:
            log.info("janitor", aborted=len(result.aborted), failed=len(result.failed), kept=result.kept,
                     buckets=len(result.buckets), unreadable=[f"{b}: {why}" for b, why in result.unreadable])

    def reload(self, settings: Settings, *, authenticator: Authenticator, backends: BackendProvider) -> None:
        """SIGHUP: sessions opened from now on use these; running sessions keep what they started with."""
        self.settings = settings
        self.ctx = dataclasses.replace(self.ctx, settings=settings, authenticator=authenticator,
                                       backends=backends)
        self.admission.configure(settings)

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                                admitted: bool = False, session_id: str | None = None) -> None:
        """Serve one already accepted control connection (per-session processes, workers). ``admitted``:
        the process that accepted it applied the address lists and connection limits already."""
        await self._on_client(reader, writer, admitted=admitted, session_id=session_id)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                         admitted: bool = False, session_id: str | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._session_tasks.add(task)
        stream = ControlStream(reader, writer)
        try:
            peer = writer.get_extra_info("peername") or ("?", 0)
            local = writer.get_extra_info("sockname") or ("0.0.0.0", 0)
            host = str(peer[0])
            refusal = None if admitted else self.admission.admit(host)
            if refusal is not None:
                log.warning("connection refused", remote=host, reason=refusal.reason)
                if refusal.reply is not None:
                    writer.write(refusal.reply)
                    with contextlib.suppress(ConnectionError, OSError):
                        await asyncio.wait_for(writer.drain(), 2.0)
                await stream.close()
                return
            try:
                session = Session(self.ctx, stream, peer=(host, int(peer[1])),
                                  local=(str(local[0]), int(local[1])), handlers=self.handlers,
                                  session_id=session_id)
                self.ctx.sessions.add(session)
                if self.ctx.on_session_opened is not None:
                    self.ctx.on_session_opened()
                try:
                    await session.run()
                except asyncio.CancelledError:
                    pass  # daemon shutdown; the session cleaned up after itself
                finally:
                    self.ctx.sessions.discard(session)
            finally:
                if not admitted:
                    self.admission.release(host)
        except Exception:
            log.exception("session crashed")
            await stream.close()
        finally:
            self._session_tasks.discard(task)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop accepting; idle sessions close at once, running transfers may finish for ``grace``
        seconds (their sessions close after them); whatever still runs then is cancelled."""
        if self._server is not None:
            self._server.close()
        if grace > 0:
            for session in list(self.ctx.sessions):
                session.drain()
        tasks = set(self._session_tasks)
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.ctx.workers.shutdown()
        self.ctx.namespace_pool.shutdown(wait=False, cancel_futures=True)
        self.ctx.login_pool.shutdown()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()
