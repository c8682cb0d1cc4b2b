"""Per-session model, parent side: a root process that accepts control connections and forks one
child per connection (docs/design.md, "Process model and privileges").

The parent never runs an event loop or a thread, since forking a threaded process is unsafe: it is
a plain selector loop over the control listener, the admin socket, the metrics endpoint (both served
without blocking, daemon/oneshot.py), one status pipe per child, and a self-pipe that signals wake it
through. It holds no session state, no S3 client and no credential: only the settings and the password
hashes (in a mapping its children unmap after their login, identity/pwstore.py), both re-read on SIGHUP.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import botocore.session

from s3dsi import __version__
from s3dsi.config.settings import Settings
from s3dsi.daemon import admin
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.model import ProcessModel
from s3dsi.daemon.oneshot import OneShotServer
from s3dsi.daemon.runtime import Listeners, adopt_reloaded, status_line
from s3dsi.daemon.sdnotify import monotonic_usec, sd_notify
from s3dsi.daemon.services import S3Factories, load_isolated_authenticator
from s3dsi.daemon.sockets import shown_address
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.logging import get_logger
from s3dsi.observability.metrics import Metrics, http_response, render_prometheus
from s3dsi.observability.transferlog import TransferLog
from s3dsi.server.admission import Admission
from s3dsi.server.loginpool import ProcessSlots
from s3dsi.server.throttle import LoginThrottle

log = get_logger("s3dsi.daemon")
TICK = 1.0
KILL_AFTER = 10.0  # seconds past shutdown_grace before children still running are killed
LOGIN_KILL_AFTER = 5.0  # seconds past control_preauth_timeout before a child without a login is killed
UNAVAILABLE = b"421 Service not available.\r\n"


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


class Supervisor:
    def __init__(self, source: ConfigSource, settings: Settings, authenticator: Authenticator,
                 listeners: Listeners, transfer_log: TransferLog, *, metrics: bool,
                 stdout: TextIO | None = None) -> None:
        self.source = source
        self.settings = settings
        self.authenticator = authenticator
        self.listeners = listeners
        self.transfer_log = transfer_log
        self.metrics_on = metrics
        self.finished_metrics = Metrics()  # counters of children that exited, and sessions opened
        self.children: dict[int, Child] = {}
        self.started = time.time()
        self.stdout = stdout if stdout is not None else sys.stdout
        self._selector = selectors.DefaultSelector()
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._pending: set[int] = set()
        self._stopping_since: float | None = None
        self._connections = 0
        self.throttle = LoginThrottle()  # children start from a copy and report every failure
        self.admission = Admission(settings)
        self.login_slots = ProcessSlots()  # at most that many children hash a password at once
        self._admin_server = OneShotServer(self._selector, complete=lambda r: b"\n" in r,
                                           respond=lambda r: admin.answer(r, self.status),
                                           max_request=admin.MAX_REQUEST,
                                           admit=lambda c: admin.peer_uid(c) in admin.allowed_uids())
        self._metrics_server = OneShotServer(self._selector, complete=lambda r: b"\r\n\r\n" in r,
                                             respond=lambda r: http_response(r, self.render_metrics),
                                             max_request=65536)
        # The S3 model is parsed once here; children inherit it and only create clients (after their drop).
        self._botocore = botocore.session.Session()
        self._botocore.get_service_model("s3")

    # -- signals -----------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        self._pending.add(signum)

    def _install_signals(self) -> None:
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wakeup_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)

    # -- main loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        for listener in self.listeners.control:
            listener.setblocking(False)
            self._selector.register(listener, selectors.EVENT_READ, self._accept)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, self._drain_wakeup)
        if self.listeners.admin is not None:
            self._selector.register(self.listeners.admin, selectors.EVENT_READ, self._admin)
        if self.listeners.metrics is not None:
            self._selector.register(self.listeners.metrics, selectors.EVENT_READ, self._metrics)
        print(f"listening on {shown_address(self.listeners.control[0])}", file=self.stdout, flush=True)
        sd_notify("READY=1", self._status_line(), f"MAINPID={os.getpid()}")
        log.info("daemon running", model=ProcessModel.PER_SESSION.value, pid=os.getpid())
        last_status = ""
        while True:
            for key, _ in self._selector.select(TICK):
                callback: Callable[[Any], None] = key.data
                callback(key.fileobj)
            self._handle_signals()
            self._admin_server.sweep()
            self._metrics_server.sweep()
            if self._stopping_since is not None and self._shutdown_step():
                break
            if self._stopping_since is None:
                self._expire_logins()
            line = self._status_line()
            if line != last_status:
                sd_notify(line)
                last_status = line
        self._close()
        return 0

    def _drain_wakeup(self, _fd: object) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wakeup_r, 512):
                pass

    def _handle_signals(self) -> None:
        pending, self._pending = self._pending, set()
        if signal.SIGCHLD in pending:
            self._reap()
        if signal.SIGHUP in pending and self._stopping_since is None:
            self.reload()
        if pending & {signal.SIGTERM, signal.SIGINT}:
            self._begin_shutdown()

    # -- connections --------------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, address = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        host = str(address[0])
        refusal = self.admission.admit(host)
        if refusal is not None:
            log.warning("connection refused", remote=host, reason=refusal.reason)
            self._refuse(conn, refusal.reply)
            return
        self._connections += 1
        try:
            self._fork(conn, host, self._connections)
        except OSError as err:
            self.admission.release(host)
            log.error("cannot fork a session process", error=err.strerror)
            self._refuse(conn, UNAVAILABLE)
            return
        self.finished_metrics.session_opened()  # here, not in the child: counted once, at the accept

    @staticmethod
    def _refuse(conn: socket.socket, reply: bytes | None) -> None:
        """Close a connection that is not served, after one reply line that a fresh socket's send buffer
        always takes at once (never waiting on the client)."""
        if reply is not None:
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(reply)
        conn.close()

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
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloads are the parent's business
            for fd in (self._wakeup_r, self._wakeup_w):
                os.close(fd)
            os.close(self._selector.fileno())  # never touch the parent's epoll set from here
            self.listeners.close()
            for other in self.children.values():
                other.pipe.close()
            self._admin_server.close_inherited()
            self._metrics_server.close_inherited()
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
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
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
            code = os.waitstatus_to_exitcode(status)
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

    # -- SIGTERM ----------------------------------------------------------------------------------------
    def _begin_shutdown(self) -> None:
        if self._stopping_since is not None:
            return
        self._stopping_since = time.monotonic()
        sd_notify("STOPPING=1")
        log.info("stopping", grace=self.settings.shutdown_grace, sessions=len(self.children))
        for listener in self.listeners.control:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(listener)
            listener.close()
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # each drains: its running transfer may finish

    def _shutdown_step(self) -> bool:
        """True once every child is gone (killing stragglers after grace + KILL_AFTER seconds)."""
        self._reap()
        if not self.children:
            return True
        assert self._stopping_since is not None
        if time.monotonic() - self._stopping_since > self.settings.shutdown_grace + KILL_AFTER:
            for pid in list(self.children):
                log.error("session process did not stop; killing it", pid=pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            self._reap()
        return False

    def _close(self) -> None:
        self.transfer_log.close()
        if self.listeners.admin_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.listeners.admin_path)
        self.listeners.close()
        self._selector.close()
        signal.set_wakeup_fd(-1)
        for fd in (self._wakeup_r, self._wakeup_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        log.info("stopped")

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

    def _admin(self, server: socket.socket) -> None:
        self._admin_server.accept(server)

    def render_metrics(self) -> bytes:
        total = Metrics.combined([self.finished_metrics.snapshot(),
                                  *(c.metrics for c in self.children.values() if c.metrics)])
        running = sum(1 for c in self.children.values() if c.session is not None and c.session.kind)
        gauges = {"s3dsi_sessions": float(len(self.children)), "s3dsi_transfers_running": float(running),
                  "s3dsi_buffer_bytes_in_use": float(sum(c.buffer_in_use for c in self.children.values())),
                  "s3dsi_buffer_budget_bytes": float(self.settings.memory_budget)}
        return render_prometheus(total, gauges)

    def _metrics(self, server: socket.socket) -> None:
        self._metrics_server.accept(server)
