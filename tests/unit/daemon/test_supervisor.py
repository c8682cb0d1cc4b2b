"""The per-session parent's own sockets: nothing a client sends may hold its single selector loop."""

from __future__ import annotations

import selectors
import signal
import socket
import threading
import time

import pytest

from s3dsi.config.settings import Settings
from s3dsi.daemon import admin
from s3dsi.daemon import supervisor as supervisor_module
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.runtime import Listeners
from s3dsi.daemon.supervisor import Child, Supervisor
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.transferlog import TransferLog


def test_a_dribbling_metrics_client_cannot_hold_the_parent() -> None:
    """The parent accepts sessions, reaps children and handles signals in one loop: a metrics request
    that sends one byte now and then must be cut off, not served for hours."""
    control = socket.create_server(("127.0.0.1", 0))
    metrics = socket.create_server(("127.0.0.1", 0))
    listeners = Listeners([control], metrics=metrics)
    supervisor = Supervisor(ConfigSource(), Settings(), Authenticator(None), listeners, TransferLog(None),
                            metrics=True)
    client = socket.create_connection(metrics.getsockname())
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(0.3):
            try:
                client.send(b"G")
            except OSError:
                return

    sender = threading.Thread(target=dribble, daemon=True)
    sender.start()
    serving = threading.Thread(target=supervisor._metrics, args=(metrics,), daemon=True)
    started = time.monotonic()
    serving.start()
    serving.join(8)
    held = time.monotonic() - started
    stop.set()
    client.close()
    serving.join(10)
    sender.join(5)
    control.close()
    metrics.close()
    assert held < 5, "the metrics request held the parent's loop"


def _supervisor(settings: Settings | None = None, *, admin_sock: socket.socket | None = None,
                ) -> tuple[Supervisor, socket.socket, socket.socket]:
    control = socket.create_server(("127.0.0.1", 0))
    metrics = socket.create_server(("127.0.0.1", 0))
    listeners = Listeners([control], metrics=metrics, admin=admin_sock)
    supervisor = Supervisor(ConfigSource(), settings or Settings(), Authenticator(None), listeners,
                            TransferLog(None), metrics=True)
    return supervisor, control, metrics


def _pump(supervisor: Supervisor, until: float) -> None:
    """What the parent's loop does with ready sockets, for ``until`` seconds."""
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        for key, _ in supervisor._selector.select(0.05):
            key.data(key.fileobj)
        supervisor._metrics_server.sweep()


def test_a_silent_scraper_costs_the_parent_nothing_and_a_slow_one_is_still_served() -> None:
    """Accepting a metrics connection returns at once (the old parent read the request with a blocking
    call and waited for it); the request is then read and answered as bytes arrive."""
    supervisor, control, metrics = _supervisor()
    supervisor._selector.register(metrics, selectors.EVENT_READ, supervisor._metrics)
    silent = socket.create_connection(metrics.getsockname())
    slow = socket.create_connection(metrics.getsockname())
    try:
        started = time.monotonic()
        supervisor._metrics(metrics)
        supervisor._metrics(metrics)
        assert time.monotonic() - started < 0.5
        assert len(supervisor._metrics_server.open) == 2
        for piece in (b"GET /metr", b"ics HTTP/1.1\r\nHost: x\r\n", b"\r\n"):
            slow.sendall(piece)
            _pump(supervisor, 0.2)
        slow.settimeout(5)
        answer = slow.recv(65536)
        assert answer.startswith(b"HTTP/1.") and b"200" in answer.split(b"\r\n", 1)[0]
        # the silent one is dropped once its time is up, without having held anything
        for shot in supervisor._metrics_server.open:
            shot.deadline = 0
        _pump(supervisor, 0.1)
        assert not supervisor._metrics_server.open
        silent.settimeout(5)
        assert silent.recv(10) == b""
    finally:
        silent.close()
        slow.close()
        control.close()
        metrics.close()


def test_limits_are_applied_before_forking(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(connections_max=10, connections_max_per_address=2, deny_from=("127.0.0.9",))
    supervisor, control, metrics = _supervisor(settings)
    forks: list[str] = []

    def fake_fork(conn: socket.socket, peer: str, number: int) -> None:
        forks.append(peer)
        conn.close()
        supervisor.children[1000 + number] = Child(1000 + number, socket.socketpair()[0], peer, number)

    monkeypatch.setattr(supervisor, "_fork", fake_fork)
    clients = []
    try:
        for source in ("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.9"):
            client = socket.socket()
            client.bind((source, 0))
            client.connect(control.getsockname())
            client.settimeout(5)
            clients.append(client)
            supervisor._accept(control)
        assert forks == ["127.0.0.1", "127.0.0.1", "127.0.0.2"]
        assert clients[2].recv(200) == \
            b"421 Service not available: too many connections from your address.\r\n"
        assert clients[4].recv(200) == b""  # deny_from: closed without a word
        # a child that exits frees its place
        pid = next(pid for pid, c in supervisor.children.items() if c.peer == "127.0.0.1")
        answers = iter([(pid, 0), (0, 0)])
        monkeypatch.setattr(supervisor_module.os, "waitpid", lambda *_a: next(answers))
        monkeypatch.setattr(supervisor_module.os, "waitstatus_to_exitcode", lambda _s: 0)
        supervisor._reap()
        client = socket.create_connection(control.getsockname())
        clients.append(client)
        supervisor._accept(control)
        assert forks[-1] == "127.0.0.1" and len(forks) == 4
    finally:
        for client in clients:
            client.close()
        control.close()
        metrics.close()


def test_a_child_without_a_login_past_the_deadline_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    supervisor, control, metrics = _supervisor(Settings(preauth_timeout=30))
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(supervisor_module.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    now = time.monotonic()
    fresh = Child(11, socket.socketpair()[0], "127.0.0.1", 1)
    stuck = Child(12, socket.socketpair()[0], "127.0.0.1", 2, started=now - 40)
    working = Child(13, socket.socketpair()[0], "127.0.0.1", 3, started=now - 4000)
    working.session = admin.SessionSnapshot(id="000003", remote="127.0.0.1", opened=0.0, user="alice")
    supervisor.children = {c.pid: c for c in (fresh, stuck, working)}
    try:
        supervisor._expire_logins()
        supervisor._expire_logins()  # once per child
        assert killed == [(12, signal.SIGKILL)]
    finally:
        control.close()
        metrics.close()
