"""The single-process daemon (process models INVOKER, SERVICE_USER and ROOT, and the demo): one asyncio
loop serves every session; SIGHUP reloads, SIGTERM drains; systemd is told (sd_notify); the admin
socket and the metrics endpoint answer beside the control port."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TextIO

from s3dsi import __version__
from s3dsi.config.settings import Settings
from s3dsi.daemon import admin
from s3dsi.daemon.accounts import Account
from s3dsi.daemon.configsource import restart_only_changes
from s3dsi.daemon.model import ProcessModel
from s3dsi.daemon.sdnotify import monotonic_usec, sd_notify
from s3dsi.daemon.services import reapply_logging
from s3dsi.daemon.sockets import shown_address
from s3dsi.observability.logfiles import LogOpener
from s3dsi.observability.logging import get_logger
from s3dsi.observability.metrics import Metrics, http_response, render_prometheus
from s3dsi.observability.transferlog import TransferLog, TransferRecord
from s3dsi.server.app import Daemon
from s3dsi.server.context import Authenticator, BackendProvider
from s3dsi.server.security import SecurityServices
from s3dsi.transfer.tasks import TaskSet

log = get_logger("s3dsi.daemon")
STATUS_INTERVAL = 5.0
REQUEST_TIMEOUT = 5.0


@dataclass
class Listeners:
    """Sockets bound before the loop starts (and before any privilege drop)."""

    control: list[socket.socket]  # the first is the one `listening on` names
    admin: socket.socket | None = None
    admin_path: str | None = None
    metrics: socket.socket | None = None

    def close(self) -> None:
        for sock in (*self.control, self.admin, self.metrics):
            if sock is not None:
                sock.close()


@dataclass(frozen=True)
class Reloaded:
    settings: Settings
    authenticator: Authenticator
    backends: BackendProvider


Reload = Callable[[], Reloaded]  # blocking; raises on a configuration it cannot use


def keep_restart_only(old: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """``new`` with the settings that need a restart put back to their running values."""
    changed = restart_only_changes(old, new)
    return dataclasses.replace(new, **{name: getattr(old, name) for name in changed}), changed


def adopt_reloaded(old: Settings, new: Settings, transfer_log: TransferLog,
                   opener: LogOpener | None = None) -> Settings:
    """Everything a SIGHUP does in either process model once the new configuration has loaded: keep
    restart-only settings, apply the logging settings (files that cannot be opened keep their previous
    destination, and a warning names them), and say what happened. Returns the settings to run with.
    ``opener`` opens log files this process may no longer open itself (the service-user model)."""
    settings, changed = keep_restart_only(old, new)
    if changed:
        log.warning("changed settings that take effect only after a restart", settings=changed)
    for problem in reapply_logging(settings, opener):
        log.warning("log file not opened", setting=problem.setting, path=problem.path, error=problem.error,
                    writing_to=problem.instead)
    try:
        transfer_log.reopen(settings.log_transfer, opener)
    except OSError as err:
        log.warning("log file not opened", setting="log_transfer", path=settings.log_transfer,
                    error=err.strerror or str(err), writing_to=transfer_log.path or "nowhere")
    log.info("configuration reloaded", files=list(settings.config_files))
    return settings


def status_line(sessions: int, transfers: int) -> str:
    return f"STATUS={sessions} session{'s' if sessions != 1 else ''}, {transfers} transfer" \
           f"{'s' if transfers != 1 else ''} running"


class SingleProcessRuntime:
    def __init__(self, settings: Settings, *, model: ProcessModel, runs_as: Account, listeners: Listeners,
                 authenticator: Authenticator, backends: BackendProvider, transfer_log: TransferLog,
                 metrics: Metrics | None = None, reload: Reload | None = None,
                 on_ready: Callable[[Daemon], None] | None = None, stdout: TextIO | None = None,
                 log_opener: LogOpener | None = None, security: SecurityServices | None = None) -> None:
        self.settings = settings
        self.model = model
        self.runs_as = runs_as
        self.listeners = listeners
        self.transfer_log = transfer_log
        self.metrics = metrics
        self._reload = reload
        self._on_ready = on_ready
        self._log_opener = log_opener
        self.daemon = Daemon(settings, authenticator=authenticator, backends=backends, stdout=stdout,
                             security=security)
        self.daemon.ctx.on_transfer_done = self._transfer_done
        if metrics is not None:
            self.daemon.ctx.on_session_opened = metrics.session_opened
        self.started = time.time()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._servers: list[asyncio.Server] = []
        self._tasks = TaskSet()

    # -- hooks ------------------------------------------------------------------------------------
    def _transfer_done(self, record: TransferRecord) -> None:
        self.transfer_log(record)
        if self.metrics is not None:
            self.metrics.record_transfer(record)

    def status(self) -> admin.DaemonStatus:
        sessions = tuple(admin.snapshot_session(s) for s in list(self.daemon.ctx.sessions))
        return admin.DaemonStatus(pid=os.getpid(), version=__version__, model=self.model.value,
                                  started=self.started, account=self.runs_as.name,
                                  addresses=tuple(shown_address(s) for s in self.listeners.control),
                                  sessions=sessions)

    def gauges(self) -> dict[str, float]:
        sessions = list(self.daemon.ctx.sessions)
        pool = self.daemon.ctx.pool
        return {"s3dsi_sessions": float(len(sessions)),
                "s3dsi_transfers_running": float(sum(1 for s in sessions if s.transfer is not None)),
                "s3dsi_buffer_bytes_in_use": float(pool.in_use),
                "s3dsi_buffer_budget_bytes": float(pool.budget)}

    def _notify_status(self) -> str:
        gauges = self.gauges()
        return status_line(int(gauges["s3dsi_sessions"]), int(gauges["s3dsi_transfers_running"]))

    # -- life cycle --------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # before the `listening on` line: a SIGHUP or SIGTERM sent as soon as we look ready must not kill us
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_reload)
        first, *others = self.listeners.control
        for sock in others:  # e.g. the IPv6 socket beside the IPv4 one: the same daemon serves both
            self._servers.append(await asyncio.start_server(self.daemon.handle_connection, sock=sock))
        await self.daemon.start(sock=first)
        if self.listeners.admin is not None:
            self._servers.append(await asyncio.start_unix_server(self._admin_client,
                                                                 sock=self.listeners.admin))
        if self.listeners.metrics is not None:
            self._servers.append(await asyncio.start_server(self._metrics_client,
                                                            sock=self.listeners.metrics))
        if self._on_ready is not None:
            self._on_ready(self.daemon)
        sd_notify("READY=1", self._notify_status(), f"MAINPID={os.getpid()}")
        self._spawn(self._status_loop())
        log.info("daemon running", model=self.model.value, account=self.runs_as.name, pid=os.getpid())
        await self._stop.wait()
        await self._shutdown()
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)

    async def _status_loop(self) -> None:
        last = ""
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            line = self._notify_status()
            if line != last:
                sd_notify(line)
                last = line

    async def _shutdown(self) -> None:
        grace = float(self.settings.shutdown_grace)
        sd_notify("STOPPING=1")
        log.info("stopping", grace=grace, sessions=len(self.daemon.ctx.sessions))
        for server in self._servers:
            server.close()
        self._tasks.cancel()
        await self.daemon.stop(grace=grace)
        self.transfer_log.close()
        if self.listeners.admin_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.listeners.admin_path)
        log.info("stopped")

    # -- SIGHUP --------------------------------------------------------------------------------------
    def _spawn_reload(self) -> None:
        self._spawn(self.reload())

    async def reload(self) -> bool:
        """Load the configuration and password file again; new sessions use them. False if refused."""
        if self._reload is None:
            log.info("reload requested: nothing to reload")
            return False
        async with self._reload_lock:
            sd_notify("RELOADING=1", monotonic_usec())
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(None, self._reload)
            except Exception as err:
                log.error("reload failed; the running configuration stays", error=str(err))
                sd_notify("READY=1", self._notify_status())
                return False
            # off the loop: opening a log file may mean asking the root helper
            settings = await loop.run_in_executor(None, adopt_reloaded, self.settings, result.settings,
                                                  self.transfer_log, self._log_opener)
            self.daemon.reload(settings, authenticator=result.authenticator, backends=result.backends)
            self.settings = settings
            sd_notify("READY=1", self._notify_status())
            return True

    # -- admin socket and metrics endpoint ---------------------------------------------------------------
    async def _admin_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            if sock is None or admin.peer_uid(sock) not in admin.allowed_uids():
                return
            request = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            writer.write(admin.answer(request[:admin.MAX_REQUEST], self.status))
            await writer.drain()
        except (OSError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()

    async def _metrics_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            writer.write(http_response(head, self.render_metrics))
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def render_metrics(self) -> bytes:
        return render_prometheus(self.metrics or Metrics(), self.gauges())
