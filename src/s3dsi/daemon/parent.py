"""What the two forking parents share: the per-session model's (daemon/supervisor.py) and the workers'
(daemon/workers.py).

A forking parent never runs an event loop or a thread, since forking a threaded process is unsafe: it
is a plain selector loop over the control listeners, the admin socket and the metrics endpoint (both
served without blocking, daemon/oneshot.py), one channel per child and a self-pipe through which signals
wake it. Both parents apply the address lists and the connection limits before they hand a connection
on, keep the login throttle and the login slots their children share, and stop the same way: SIGTERM
stops the accepting and is passed on; children still alive ``shutdown_grace + KILL_AFTER`` seconds later
are killed. What they fork, and what a child reports, is theirs.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TextIO

import botocore.session

from s3dsi.config.settings import Settings
from s3dsi.daemon import admin
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.oneshot import OneShotServer
from s3dsi.daemon.runtime import Listeners
from s3dsi.daemon.sdnotify import sd_notify
from s3dsi.daemon.sockets import shown_address
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.logging import get_logger
from s3dsi.observability.metrics import Metrics, http_response
from s3dsi.observability.transferlog import TransferLog
from s3dsi.server.admission import Admission
from s3dsi.server.loginpool import ProcessSlots
from s3dsi.server.throttle import LoginThrottle

log = get_logger("s3dsi.daemon")
TICK = 1.0
KILL_AFTER = 10.0  # seconds past shutdown_grace before children still running are killed
UNAVAILABLE = b"421 Service not available.\r\n"


class ForkingParent(ABC):
    """The selector loop, signals, admin and metrics endpoints and shutdown of a forking parent."""

    child_noun: ClassVar[str]  # what a child is called in the log ("session process", "worker")

    def __init__(self, source: ConfigSource, settings: Settings, authenticator: Authenticator,
                 listeners: Listeners, transfer_log: TransferLog, *, metrics: bool,
                 stdout: TextIO | None) -> None:
        self.source = source
        self.settings = settings
        self.authenticator = authenticator
        self.listeners = listeners
        self.transfer_log = transfer_log
        self.metrics_on = metrics
        self.stdout = stdout if stdout is not None else sys.stdout
        self.finished_metrics = Metrics()  # counters of children that exited, and sessions opened
        self.admission = Admission(settings)
        self.throttle = LoginThrottle()  # children start from a copy and report every failure
        self.login_slots = ProcessSlots()  # at most that many password checks across all children
        self.started = time.time()
        self._selector = selectors.DefaultSelector()
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._pending: set[int] = set()
        self._stopping_since: float | None = None
        self._connections = 0  # connections numbered so far
        self._admin_server = OneShotServer(self._selector, complete=lambda r: b"\n" in r,
                                           respond=lambda r: admin.answer(r, self.status),
                                           max_request=admin.MAX_REQUEST,
                                           admit=lambda c: admin.peer_uid(c) in admin.allowed_uids())
        self._metrics_server = OneShotServer(self._selector, complete=lambda r: b"\r\n\r\n" in r,
                                             respond=lambda r: http_response(r, self.render_metrics),
                                             max_request=65536)
        # botocore's S3 model is parsed once here; children inherit it and only create clients
        self._botocore = botocore.session.Session()
        self._botocore.get_service_model("s3")

    # -- what each parent defines ----------------------------------------------------------------------
    @abstractmethod
    def _children(self) -> Mapping[int, object]:
        """The running children by pid."""

    @abstractmethod
    def _accept(self, listener: socket.socket) -> None: ...

    @abstractmethod
    def _reap(self) -> None:
        """Account for the children that exited (SIGCHLD): see ``_exited``."""

    @abstractmethod
    def reload(self) -> bool: ...

    @abstractmethod
    def _status_line(self) -> str: ...

    @abstractmethod
    def status(self) -> admin.DaemonStatus: ...

    @abstractmethod
    def render_metrics(self) -> bytes: ...

    def _running_fields(self) -> dict[str, Any]:
        """What the "daemon running" log line says besides the pid."""
        return {}

    def _before_serving(self) -> None:
        """Called once, before the listeners are watched."""
        return None

    @abstractmethod
    def _every_turn(self) -> None:
        """Called after every turn of the loop while the daemon is not stopping."""

    def _on_stopping(self) -> dict[str, Any]:
        """Called once when the shutdown begins; returns what the "stopping" log line says."""
        return {}

    # -- signals ---------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        self._pending.add(signum)

    def _install_signals(self) -> None:
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wakeup_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)

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

    def _shed_in_child(self) -> None:
        """In a freshly forked child: drop the parent's signal handling, self-pipe, selector, listeners
        and endpoints (never touch the parent's epoll set from there)."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloads are the parent's business
        for fd in (self._wakeup_r, self._wakeup_w):
            os.close(fd)
        os.close(self._selector.fileno())
        self.listeners.close()
        self._admin_server.close_inherited()
        self._metrics_server.close_inherited()

    # -- main loop -------------------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        self._before_serving()
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
        log.info("daemon running", pid=os.getpid(), **self._running_fields())
        last_status = ""
        while True:
            for key, _ in self._selector.select(TICK):
                callback: Callable[[Any], None] = key.data
                callback(key.fileobj)
            self._handle_signals()
            self._admin_server.sweep()
            self._metrics_server.sweep()
            if self._stopping_since is not None:
                if self._shutdown_step():
                    break
            else:
                self._every_turn()
            line = self._status_line()
            if line != last_status:
                sd_notify(line)
                last_status = line
        self._close()
        return 0

    def _admin(self, server: socket.socket) -> None:
        self._admin_server.accept(server)

    def _metrics(self, server: socket.socket) -> None:
        self._metrics_server.accept(server)

    # -- connections and children ----------------------------------------------------------------------
    def _admit(self, listener: socket.socket) -> tuple[socket.socket, str, int] | None:
        """Accept one connection and apply the address lists and connection limits: the connection, its
        peer's address and its number, or None when there was none or it was refused (one reply line)."""
        try:
            conn, address = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        host = str(address[0])
        refusal = self.admission.admit(host)
        if refusal is not None:
            log.warning("connection refused", remote=host, reason=refusal.reason)
            self._refuse(conn, refusal.reply)
            return None
        self._connections += 1
        return conn, host, self._connections

    @staticmethod
    def _refuse(conn: socket.socket, reply: bytes | None) -> None:
        """Close a connection that is not served, after one reply line that a fresh socket's send buffer
        always takes at once (never waiting on the client)."""
        if reply is not None:
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(reply)
        conn.close()

    @staticmethod
    def _exited() -> Iterator[tuple[int, int]]:
        """(pid, exit code) of every child that has exited and not yet been waited for."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            yield pid, os.waitstatus_to_exitcode(status)

    # -- SIGTERM ---------------------------------------------------------------------------------------
    def _begin_shutdown(self) -> None:
        if self._stopping_since is not None:
            return
        self._stopping_since = time.monotonic()
        sd_notify("STOPPING=1")
        log.info("stopping", grace=self.settings.shutdown_grace, **self._on_stopping())
        for listener in self.listeners.control:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(listener)
            listener.close()
        for pid in list(self._children()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # each drains: its running transfers may finish

    def _shutdown_step(self) -> bool:
        """True once every child is gone (killing stragglers after grace + KILL_AFTER seconds)."""
        self._reap()
        if not self._children():
            return True
        assert self._stopping_since is not None
        if time.monotonic() - self._stopping_since > self.settings.shutdown_grace + KILL_AFTER:
            for pid in list(self._children()):
                log.error(f"{self.child_noun} did not stop; killing it", pid=pid)
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
