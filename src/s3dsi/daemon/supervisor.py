"""Per-session model, parent side: a root process that accepts control connections and forks one
child per connection (docs/design.md, "Process model and privileges").

The loop, signals, endpoints and shutdown are the forking parent's (daemon/parent.py). This parent holds
no session state, no S3 client and no credential: only the settings and the password hashes (in a
mapping its children unmap after their login, identity/pwstore.py), both re-read on SIGHUP.

Before it forks it applies allow_from/deny_from and the connection limits (server/admission.py), so a
crowd cannot make it fork without bound; a child that has not logged in within control_preauth_timeout
(which the child enforces itself) is killed a few seconds later all the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from s3dsi import __version__
from s3dsi.config.settings import Settings
from s3dsi.daemon import admin
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.model import ProcessModel
from s3dsi.daemon.parent import UNAVAILABLE, ForkingParent
from s3dsi.daemon.runtime import Listeners, adopt_reloaded, status_line
from s3dsi.daemon.sdnotify import monotonic_usec, sd_notify
from s3dsi.daemon.services import S3Factories, load_isolated_authenticator
from s3dsi.daemon.sockets import shown_address
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.logging import get_logger
from s3dsi.observability.metrics import Metrics, render_prometheus
from s3dsi.observability.transferlog import TransferLog

log = get_logger("s3dsi.daemon")
LOGIN_KILL_AFTER = 5.0  # seconds past control_preauth_timeout before a child without a login is killed


@dataclass
class Child:
    pid: int
    pipe: socket.socket
    peer: str
    number: int
    opened: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    session: admin.SessionSnapshot | None = None
    metrics: dict[str, Any] | None = None
    buffer_in_use: int = 0

    def snapshot(self) -> admin.SessionSnapshot:
        if self.session is not None:
            return self.session
        return admin.SessionSnapshot(id=f"{self.number:06d}", remote=self.peer, opened=self.opened,
                                     pid=self.pid)


class Supervisor(ForkingParent):
    child_noun = "session process"

    def __init__(self, source: ConfigSource, settings: Settings, authenticator: Authenticator,
                 listeners: Listeners, transfer_log: TransferLog, *, metrics: bool,
                 stdout: TextIO | None = None) -> None:
        super().__init__(source, settings, authenticator, listeners, transfer_log, metrics=metrics,
                         stdout=stdout)
        self.children: dict[int, Child] = {}

    def _children(self) -> dict[int, Child]:
        return self.children

    def _running_fields(self) -> dict[str, Any]:
        return {"model": ProcessModel.PER_SESSION.value}

    def _every_turn(self) -> None:
        self._expire_logins()

    def _on_stopping(self) -> dict[str, Any]:
        return {"sessions": len(self.children)}

    # -- connections --------------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        admitted = self._admit(listener)
        if admitted is None:
            return
        conn, host, number = admitted
        try:
            self._fork(conn, host, number)
        except OSError as err:
            self.admission.release(host)
            log.error("cannot fork a session process", error=err.strerror)
            self._refuse(conn, UNAVAILABLE)
            return
        self.finished_metrics.session_opened()  # here, not in the child: counted once, at the accept

    def _expire_logins(self) -> None:
        """Kill children still without a login well after control_preauth_timeout (each one closes its
        connection at the deadline itself; this is for one that does not)."""
        limit = self.settings.preauth_timeout
        if limit <= 0:
            return
        now = time.monotonic()
        for child in list(self.children.values()):
            logged_in = child.session is not None and child.session.user is not None
            if not logged_in and now - child.started > limit + LOGIN_KILL_AFTER:
                log.warning("session process without a login past control_preauth_timeout; killing it",
                            pid=child.pid, remote=child.peer)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.started = float("inf")  # once

    def _fork(self, conn: socket.socket, peer: str, number: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid == 0:  # pragma: no cover - the child; its coverage is the functional tests'
            ours.close()
            os._exit(self._child(conn, theirs, number))
        theirs.close()
        conn.close()
        ours.setblocking(False)
        child = Child(pid, ours, peer, number)
        self.children[pid] = child
        self._selector.register(ours, selectors.EVENT_READ, lambda _s, c=child: self._child_report(c))
        log.info("session process started", pid=pid, remote=peer, session=f"{number:06d}")

    def _child(self, conn: socket.socket, pipe: socket.socket, number: int) -> int:  # pragma: no cover
        """In the forked child: shed the parent's state, then serve ``conn``."""
        try:
            self._shed_in_child()
            for other in self.children.values():
                other.pipe.close()
            from s3dsi.daemon.child import SessionProcess  # noqa: PLC0415
            from s3dsi.daemon.eventloop import run_loop  # noqa: PLC0415

            process = SessionProcess(conn, self.settings, self.authenticator, pipe, self.transfer_log,
                                     metrics=self.metrics_on, number=number,
                                     s3_factories=S3Factories(session=self._botocore), throttle=self.throttle,
                                     login_slots=self.login_slots)
            return run_loop(process.run())
        except BaseException:
            with contextlib.suppress(Exception):
                log.exception("session process failed")
            return 70

    def _child_report(self, child: Child) -> None:
        while True:
            try:
                message = child.pipe.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message = b""
            if not message:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(child.pipe)
                return
            self._absorb(child, message)

    def _absorb(self, child: Child, message: bytes) -> None:
        try:
            data = json.loads(message)
            if "login" in data:
                if data["login"] == "failed":
                    self.throttle.failed(str(data.get("address", "")), str(data.get("user", "")))
                return
            session = data.get("session")
            child.session = admin.SessionSnapshot.from_json(session) if session else None
            child.metrics = data.get("metrics") or child.metrics
            child.buffer_in_use = int(data.get("buffer_in_use", 0))
        except (ValueError, TypeError, AttributeError):
            log.warning("unreadable report from a session process", pid=child.pid)

    def _reap(self) -> None:
        for pid, code in self._exited():
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self.admission.release(child.peer)
            self._child_report(child)  # the last report, if it is still in the pipe
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(child.pipe)
            child.pipe.close()
            if child.metrics:
                self.finished_metrics.add(child.metrics)
            log.info("session process ended", pid=pid, session=f"{child.number:06d}", exit=code)

    # -- SIGHUP ---------------------------------------------------------------------------------------
    def reload(self) -> bool:
        sd_notify("RELOADING=1", monotonic_usec())
        try:
            loaded = self.source.load()
            authenticator = load_isolated_authenticator(loaded)
        except Exception as err:
            log.error("reload failed; the running configuration stays", error=str(err))
            sd_notify("READY=1", self._status_line())
            return False
        self.settings = adopt_reloaded(self.settings, loaded, self.transfer_log)
        old, self.authenticator = self.authenticator, authenticator
        old.forget()  # children forked before keep their own copy of the mapping
        self.admission.configure(self.settings)
        sd_notify("READY=1", self._status_line())
        return True

    # -- status, admin socket, metrics ---------------------------------------------------------------
    def _status_line(self) -> str:
        running = sum(1 for c in self.children.values() if c.session is not None and c.session.kind)
        return status_line(len(self.children), running)

    def status(self) -> admin.DaemonStatus:
        return admin.DaemonStatus(pid=os.getpid(), version=__version__, model=ProcessModel.PER_SESSION.value,
                                  started=self.started, account="root (sessions: their users)",
                                  addresses=tuple(shown_address(s) for s in self.listeners.control)
                                  if self._stopping_since is None else (),
                                  sessions=tuple(c.snapshot() for c in self.children.values()))

    def render_metrics(self) -> bytes:
        total = Metrics.combined([self.finished_metrics.snapshot(),
                                  *(c.metrics for c in self.children.values() if c.metrics)])
        running = sum(1 for c in self.children.values() if c.session is not None and c.session.kind)
        gauges = {"s3dsi_sessions": float(len(self.children)), "s3dsi_transfers_running": float(running),
                  "s3dsi_buffer_bytes_in_use": float(sum(c.buffer_in_use for c in self.children.values())),
                  "s3dsi_buffer_budget_bytes": float(self.settings.memory_budget)}
        return render_prometheus(total, gauges)
