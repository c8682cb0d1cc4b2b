"""Per-session model, child side: one forked process serves one control connection.

It starts as root with nothing but the accepted socket, the settings and the loaded password hashes.
The first successful login drops it to the login's local account (SessionUserBackends); at that moment
it unmaps every other user's hash and gives up its password-check slot, and only then is that account's
credential map read and the S3 clients created. It never dumps core and cannot be ptraced by the users
it becomes. Every second it reports its session and its counters to the parent over a SOCK_SEQPACKET
pipe, and each failed login at once (the parent's throttle counts them for the children it forks next).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import signal
import socket
from typing import Any

from s3dsi.config.settings import Settings
from s3dsi.daemon import admin
from s3dsi.daemon.accounts import Account
from s3dsi.daemon.hardening import no_core_dumps
from s3dsi.daemon.services import S3Factories
from s3dsi.daemon.userbackends import SessionUserBackends, user_state_dir
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.logging import get_logger
from s3dsi.observability.metrics import Metrics
from s3dsi.observability.transferlog import TransferLog, TransferRecord
from s3dsi.server import session as session_module
from s3dsi.server.app import Daemon
from s3dsi.server.loginpool import LoginPool, ProcessSlots
from s3dsi.server.throttle import LoginThrottle
from s3dsi.transfer.journal import UploadJournal

log = get_logger("s3dsi.daemon")
REPORT_INTERVAL = 1.0


def report(pipe: socket.socket, daemon: Daemon, metrics: Metrics | None) -> None:
    """One status message to the parent; dropped (not blocked on) when the parent is slow."""
    sessions = list(daemon.ctx.sessions)
    message: dict[str, Any] = {
        "session": dataclasses.asdict(admin.snapshot_session(sessions[0])) if sessions else None,
        "metrics": metrics.snapshot() if metrics is not None else None,
        "buffer_in_use": daemon.ctx.pool.in_use,
    }
    with contextlib.suppress(OSError):
        pipe.send(json.dumps(message).encode())


class ReportingThrottle(LoginThrottle):
    """Failed-login delays that keep growing across session processes: this process starts from the
    parent's counts (inherited at fork) and tells the parent of every failure."""

    def __init__(self, inherited: LoginThrottle, pipe: socket.socket) -> None:
        super().__init__(inherited.base, inherited.cap, inherited.decay, inherited.max_entries)
        self._levels = inherited._levels
        self._pipe = pipe

    def failed(self, address: str, user: str) -> None:
        super().failed(address, user)
        with contextlib.suppress(OSError):
            self._pipe.send(json.dumps({"login": "failed", "address": address, "user": user}).encode())


class SessionProcess:
    def __init__(self, conn: socket.socket, settings: Settings, authenticator: Authenticator,
                 pipe: socket.socket, transfer_log: TransferLog, *, metrics: bool, number: int,
                 s3_factories: S3Factories | None = None, throttle: LoginThrottle | None = None,
                 login_slots: ProcessSlots | None = None) -> None:
        no_core_dumps()
        self.conn = conn
        self.authenticator = authenticator
        self.login_slots = login_slots
        self.settings = settings
        self.pipe = pipe
        self.transfer_log = transfer_log
        self.metrics = Metrics() if metrics else None
        factories = s3_factories or S3Factories()
        factories.metrics = self.metrics
        # session ids stay unique across the daemon: the parent numbers its connections
        session_module._ids = itertools.count(number)
        self.backends = SessionUserBackends(settings, lambda: factories.factory(settings),
                                            on_drop=self._dropped)
        self.daemon = Daemon(settings, authenticator=authenticator, backends=self.backends,
                             stdout=open(os.devnull, "w"))  # noqa: SIM115
        self.daemon.ctx.on_transfer_done = self._transfer_done
        if throttle is not None:
            self.daemon.ctx.throttle = ReportingThrottle(throttle, pipe)
        # one password check at a time here (one connection), and a slot among all session processes
        self.daemon.ctx.login_pool = LoginPool(1, slots=login_slots)

    def _dropped(self, account: Account) -> None:
        """Now running as ``account``: no other user's hash stays in this process, no password-check slot
        is held, and restartable uploads are journalled where that account may write."""
        self.authenticator.forget(keep=account.name)
        if self.login_slots is not None:
            self.login_slots.close()
        self.daemon.ctx.journal = UploadJournal(user_state_dir(self.settings, account))

    def _transfer_done(self, record: TransferRecord) -> None:
        self.transfer_log(record)
        if self.metrics is not None:
            self.metrics.record_transfer(record)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.pipe.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=self.conn)
        serving = asyncio.ensure_future(self.daemon.handle_connection(reader, writer))
        stopping = asyncio.ensure_future(stop.wait())
        reporter = asyncio.ensure_future(self._report_loop())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        grace = float(self.settings.shutdown_grace) if stop.is_set() and not serving.done() else 0.0
        await self.daemon.stop(grace=grace)
        for task in (stopping, reporter):
            task.cancel()
        await asyncio.gather(serving, stopping, reporter, return_exceptions=True)
        report(self.pipe, self.daemon, self.metrics)
        return 0

    async def _report_loop(self) -> None:
        while True:
            report(self.pipe, self.daemon, self.metrics)
            await asyncio.sleep(REPORT_INTERVAL)
