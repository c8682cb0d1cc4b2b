"""Run the daemon for tests: in a background thread (memory or S3 back end) or as a subprocess."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from s3dsi.config.settings import Settings
from s3dsi.server.app import Daemon
from s3dsi.server.context import BackendProvider
from tests.support.processes import stop_process

TEST_USER = "alice"
TEST_PASSWORD = "correct horse battery staple"


class StaticAuthenticator:
    """``users`` name -> password; ``anonymous`` names log in with any password as ``anonymous_user``."""

    def __init__(self, users: Mapping[str, str], anonymous: tuple[str, ...] = (),
                 anonymous_user: str = TEST_USER) -> None:
        self.users = dict(users)
        self.anonymous = anonymous
        self.anonymous_user = anonymous_user

    def authenticate(self, user: str, password: str) -> str | None:
        if user in self.anonymous:
            return self.anonymous_user
        return user if self.users.get(user) == password else None

    def is_anonymous(self, user: str) -> bool:
        return user in self.anonymous


_made_state_dirs: set[str] = set()  # by test_settings; removed by DaemonThread.stop (or at exit)


def test_settings(**overrides: object) -> Settings:
    """Settings for a test daemon; without a ``state_dir`` override, a fresh temporary one that
    DaemonThread.stop removes."""
    if "state_dir" in overrides:
        state_dir = overrides["state_dir"]
    else:
        state_dir = tempfile.mkdtemp(prefix="s3dsi-state-")
        _made_state_dirs.add(state_dir)
    base = Settings(port=0, control_interface="127.0.0.1", data_interface="127.0.0.1",
                    part_size_min=5 * 1024 * 1024, part_size_max=64 * 1024 * 1024,
                    memory_budget=64 * 1024 * 1024, part_workers=4, threads=4)
    return replace(base, **{**overrides, "state_dir": state_dir})  # type: ignore[arg-type]


def remove_state_dir(settings: Settings) -> None:
    """Remove ``settings.state_dir`` if test_settings made it (a caller's own directory stays)."""
    path = settings.state_dir
    if path is not None and path in _made_state_dirs:
        _made_state_dirs.discard(path)
        shutil.rmtree(path, ignore_errors=True)


@atexit.register
def _remove_forgotten_state_dirs() -> None:
    for path in list(_made_state_dirs):
        shutil.rmtree(path, ignore_errors=True)
    _made_state_dirs.clear()


class DaemonThread:
    """The daemon on its own event loop in a thread; blocking clients drive it from the test."""

    def __init__(self, settings: Settings, backends: BackendProvider,
                 users: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.backends = backends
        self.authenticator = StaticAuthenticator(users or {TEST_USER: TEST_PASSWORD})
        self.loop = asyncio.new_event_loop()
        self.daemon: Daemon | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="s3dsi-test-daemon", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.daemon = Daemon(self.settings, authenticator=self.authenticator, backends=self.backends,
                                 stdout=open(os.devnull, "w"))  # noqa: SIM115
            addresses = self.loop.run_until_complete(self.daemon.start())
            self.host, self.port = addresses[0]
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    def start(self) -> DaemonThread:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def call(self, coro_fn: object) -> object:
        future = asyncio.run_coroutine_threadsafe(coro_fn, self.loop)  # type: ignore[arg-type]
        return future.result(60)

    def stop(self) -> None:
        if self.daemon is not None:
            with contextlib.suppress(Exception):
                self.call(self.daemon.stop(grace=0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()
        remove_state_dir(self.settings)


@dataclass
class ProcessDaemon:
    process: subprocess.Popen[str]
    host: str
    port: int
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process, 30)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_process_daemon(args: list[str], *, log_path: Path, env: Mapping[str, str] | None = None,
                         timeout: float = 30.0, prefix: Sequence[str] = (),
                         drop_env: Sequence[str] = ()) -> ProcessDaemon:
    """``s3dsi serve ARGS -p 0``; waits for the ``listening on HOST:PORT`` line. ``prefix``: a command
    that runs the daemon by ``exec`` (so that the process started is the daemon), e.g. ``unshare``.
    ``drop_env``: prefixes of inherited environment variables the daemon must not see (``AWS_``)."""
    full_env = {k: v for k, v in os.environ.items() if not (drop_env and k.startswith(tuple(drop_env)))}
    full_env.update(env or {})
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "s3dsi", "serve", *args], stdout=subprocess.PIPE,
                            stderr=log, text=True, env=full_env)
    line = ""
    result: dict[str, str] = {}

    def read_first() -> None:
        assert proc.stdout is not None
        result["line"] = proc.stdout.readline()

    reader = threading.Thread(target=read_first, daemon=True)
    reader.start()
    reader.join(timeout)
    line = result.get("line", "")
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"daemon did not start: {line!r}\n{log_path.read_text(errors='replace')}")
    hostport = line.split("listening on ", 1)[1].strip()
    host, _, port = hostport.rpartition(":")
    # keep draining stdout so the daemon never blocks on a full pipe
    threading.Thread(target=lambda: proc.stdout and proc.stdout.read(), daemon=True).start()
    return ProcessDaemon(proc, host.strip("[]"), int(port), log_path)


@contextlib.contextmanager
def daemon_thread(settings: Settings, backends: BackendProvider) -> Iterator[DaemonThread]:
    d = DaemonThread(settings, backends).start()
    try:
        yield d
    finally:
        d.stop()
