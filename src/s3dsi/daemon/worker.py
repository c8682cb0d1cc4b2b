"""One worker of several (``workers N``): a session-serving process forked by the workers' parent
(daemon/workers.py), with its own event loop, thread pools, S3 clients and share of the memory budget.

It never accepts a connection itself: the parent accepts, applies the address lists and the connection
limits, numbers the connection and passes it here over the worker's channel (daemon/workerwire.py).
This process serves it as the single-process daemon would (``Daemon.handle_connection``) and tells the
parent when its session ended, so that the parent's counts stay exact. Once a second it reports its
sessions, counters, part-buffer memory and CPU time, for ``s3dsi status`` and the metrics endpoint the
parent serves.

SIGTERM (from the parent, or SIGINT from a terminal) drains as the single-process daemon does:
``shutdown_grace`` for running transfers, then cancellation, which aborts unfinished uploads. A reload is
the parent's: it loads the configuration, reads the password file (through the root helper in the
service-user model) and opens the log files, then sends this process the password file as a memfd and the
log files as descriptors; this process loads the configuration itself, keeps its own share of memory
and data ports, and adopts the rest exactly as a single-process daemon adopts a SIGHUP. Failed logins are
told to the parent, which tells every other worker, so the login throttle counts across workers. When
the parent goes away (its channel ends), the worker drains and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import resource
import signal
import socket
import time
from typing import Any

from s3dsi.config.settings import Settings
from s3dsi.daemon import admin, workerwire
from s3dsi.daemon.child import ReportingThrottle
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.runtime import adopt_reloaded
from s3dsi.daemon.services import S3Factories, authenticator_from_data, load_authenticator
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.logfiles import open_log_file
from s3dsi.observability.logging import get_logger
from s3dsi.observability.metrics import Metrics
from s3dsi.observability.transferlog import TransferLog, TransferRecord
from s3dsi.server.app import Daemon
from s3dsi.server.loginpool import LoginPool, ProcessSlots
from s3dsi.server.security import SecurityServices
from s3dsi.server.throttle import LoginThrottle
from s3dsi.transfer.tasks import TaskSet

log = get_logger("s3dsi.daemon")
REPORT_INTERVAL = 1.0


def port_slice(port_range: tuple[int, int] | None, index: int, count: int) -> tuple[int, int] | None:
    """Worker ``index``'s own part of ``port_range`` (the parts are disjoint and cover it)."""
    if port_range is None or count <= 1:
        return port_range
    low, high = port_range
    size = high - low + 1
    return low + index * size // count, low + (index + 1) * size // count - 1


def worker_settings(settings: Settings, index: int, count: int) -> Settings:
    """What worker ``index`` of ``count`` runs with: its share of memory_budget and of port_range."""
    if count <= 1:
        return settings
    return dataclasses.replace(settings, memory_budget=settings.memory_budget // count,
                               port_range=port_slice(settings.port_range, index, count))


class SharedThrottle(ReportingThrottle):
    """The login throttle of one worker: failures counted here go to the parent (which tells the other
    workers), and failures the parent relays from them are counted here too."""

    def absorb(self, address: str, user: str) -> None:
        LoginThrottle.failed(self, address, user)


@dataclasses.dataclass
class WorkerSetup:
    """What the parent hands a worker at fork."""

    index: int
    count: int
    source: ConfigSource
    settings: Settings  # the whole configuration; the worker takes its share
    model: str
    account: str
    authenticator: Authenticator
    transfer_log: TransferLog
    metrics: bool
    security: SecurityServices
    login_slots: ProcessSlots
    throttle: LoginThrottle
    s3_factories: S3Factories


class WorkerProcess:
    def __init__(self, setup: WorkerSetup, channel: socket.socket) -> None:
        self.setup = setup
        self.index = setup.index
        self.channel = channel
        self.settings = worker_settings(setup.settings, setup.index, setup.count)
        self.transfer_log = setup.transfer_log
        self.metrics = Metrics() if setup.metrics else None
        self.factories = setup.s3_factories
        self.factories.metrics = self.metrics
        self.daemon = Daemon(self.settings, authenticator=setup.authenticator,
                             backends=self.factories.map_backends(self.settings),
                             stdout=open(os.devnull, "w"), security=setup.security,  # noqa: SIM115
                             sweep_at_start=False)
        self.daemon.ctx.on_transfer_done = self._transfer_done
        self.throttle = SharedThrottle(setup.throttle, channel)
        self.daemon.ctx.throttle = self.throttle
        # argon2 checks: one at a time here, and at most LOGIN_WORKERS across all workers
        self.daemon.ctx.login_pool = LoginPool(1, slots=setup.login_slots)
        self.started = time.time()
        self._stop = asyncio.Event()
        self._tasks = TaskSet()
        self._open: set[int] = set()  # connection numbers being served
        self._unsent: list[int] = []  # "closed" messages the channel had no room for: sent with the report

    def _transfer_done(self, record: TransferRecord) -> None:
        self.transfer_log(record)
        if self.metrics is not None:
            self.metrics.record_transfer(record)

    # -- life cycle --------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._on_message)
        if self.index == 0:
            self.daemon.start_sweep()  # the start-up janitor, once for the whole daemon
        self._tasks.spawn(self._report_loop())
        log.info("worker running", worker=self.index, pid=os.getpid(),
                 memory_budget=self.settings.memory_budget, port_range=self.settings.port_range)
        await self._stop.wait()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self.channel.fileno())
        await self.daemon.stop(grace=float(self.settings.shutdown_grace))
        await self._tasks.cancel_and_wait()
        self._report()
        log.info("worker stopped", worker=self.index)
        return 0

    def _on_message(self) -> None:
        while True:
            try:
                got = workerwire.receive(self.channel)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                got = None
            if got is None:  # the parent is gone: nobody can reach this process any more
                self._stop.set()
                return
            message, fds = got
            self._dispatch(message, fds)

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> None:
        if "conn" in message and len(fds) == 1:
            self._tasks.spawn(self._serve(socket.socket(fileno=fds[0]), int(message["conn"])))
        elif "reload" in message:
            self._tasks.spawn(self._reload(dict(message["reload"]), fds))
        elif "throttle" in message:
            failed = dict(message["throttle"])
            self.throttle.absorb(str(failed.get("address", "")), str(failed.get("user", "")))
            for fd in fds:
                os.close(fd)
        else:
            for fd in fds:
                os.close(fd)

    async def _serve(self, sock: socket.socket, number: int) -> None:
        self._open.add(number)
        try:
            if self._stop.is_set():
                sock.close()
                return
            reader, writer = await asyncio.open_connection(sock=sock)
            await self.daemon.handle_connection(reader, writer, admitted=True, session_id=f"{number:06d}")
        except OSError:
            sock.close()
        finally:
            self._open.discard(number)
            self._closed(number)

    def _closed(self, number: int) -> None:
        """Tell the parent the connection is gone (its limits count it no more); retried if no room."""
        try:
            sent = workerwire.send(self.channel, {"closed": number})
        except OSError:
            sent = False
        if not sent:
            self._unsent.append(number)

    # -- reports ---------------------------------------------------------------------------------------
    async def _report_loop(self) -> None:
        while True:
            self._report()
            await asyncio.sleep(REPORT_INTERVAL)

    def _report(self) -> None:
        unsent, self._unsent = self._unsent, []
        for number in unsent:
            self._closed(number)
        sessions = [dataclasses.asdict(admin.snapshot_session(s)) for s in list(self.daemon.ctx.sessions)]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        pool = self.daemon.ctx.pool
        report: dict[str, Any] = {
            "index": self.index, "sessions": sessions,
            "transfers": sum(1 for s in sessions if s.get("kind")),
            "metrics": self.metrics.snapshot() if self.metrics is not None else None,
            "buffer_in_use": pool.in_use, "buffer_budget": pool.budget,
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "started": self.started,
            "open": sorted(self._open),  # lets the parent release a connection whose "closed" was lost
        }
        try:
            workerwire.send(self.channel, {"report": report})
        except OSError as err:
            if err.errno != errno.EMSGSIZE:
                return
            report["sessions"] = []  # too many to list: counts only
            with contextlib.suppress(OSError):
                workerwire.send(self.channel, {"report": report})

    # -- reload ----------------------------------------------------------------------------------------
    async def _reload(self, request: dict[str, Any], fds: list[int]) -> None:
        """The configuration the parent just adopted, taken up here: new sessions use it."""
        passed = list(fds)
        password_fd = passed.pop(0) if request.get("password") is not None else None
        logs = dict(zip([os.path.abspath(p) for p in request.get("logs", [])], passed, strict=False))
        loop = asyncio.get_running_loop()
        try:
            try:
                loaded = await loop.run_in_executor(None, self.setup.source.load)
                if password_fd is not None:
                    data = workerwire.read_fd(password_fd)
                    password_fd = None
                    authenticator = authenticator_from_data(loaded, str(request["password"]), data)
                elif "password" in request:  # the configuration names no password file
                    authenticator = authenticator_from_data(loaded, None, b"")
                else:  # this process may read the file itself (no privilege was dropped)
                    authenticator = await loop.run_in_executor(None, load_authenticator, loaded)
            except Exception as err:
                log.error("reload failed in a worker; its running configuration stays", worker=self.index,
                          error=str(err))
                return

            def opener(path: str) -> int:
                fd = logs.get(os.path.abspath(path))
                return os.dup(fd) if fd is not None else open_log_file(path)

            own = worker_settings(loaded, self.index, self.setup.count)
            settings = await loop.run_in_executor(None, adopt_reloaded, self.settings, own, self.transfer_log,
                                                  opener)
            self.daemon.reload(settings, authenticator=authenticator,
                               backends=self.factories.map_backends(settings))
            self.settings = settings
        finally:
            for fd in [*([password_fd] if password_fd is not None else []), *logs.values()]:
                with contextlib.suppress(OSError):
                    os.close(fd)
