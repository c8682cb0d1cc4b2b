"""The reference C ``globus-gridftp-server`` on 127.0.0.1, as a third-party peer for interop tests.

Started clear-text and anonymous (``-aa``), as in the recorded transcripts, with an empty config file
and config dir so that nothing from /etc/gridftp.conf or /etc/gridftp.d (e.g. a ``load_dsi_module``)
leaks in. Run as root (CI), the server refuses to serve anonymous users as root ("User was mapped as
root but root is not allowed"), so its sessions setuid to the unprivileged ``nobody`` account, and
its file area is a fresh directory owned by that account under the system temp dir (pytest's own
temp dirs are mode 0700, which ``nobody`` cannot traverse). Run as an ordinary user, it serves as
that user. The server forks one child per control connection; ``stop`` ends children and the
listener by PID.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.moto_server import free_port
from tests.support.processes import stop_process

ANONYMOUS_AS_ROOT = "nobody"
_START_TIMEOUT = 20.0
_PORT_ATTEMPTS = 3


class GridFTPServerError(RuntimeError):
    """The C server did not come up; the message carries the tail of its log."""


def server_program() -> str | None:
    return shutil.which("globus-gridftp-server") or shutil.which("globus-gridftp-server",
                                                                  path="/usr/sbin:/usr/local/sbin")


def _answers_220(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4096).startswith(b"220")
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _reachable_by_others(path: Path) -> bool:
    """Every ancestor lets other users traverse it (the server's sessions run as another account)."""
    return all(os.stat(p).st_mode & 0o001 for p in path.parents)


@dataclass
class GridFTPServer:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path  # the server's file area, absolute path as seen by clients too
    log_path: Path
    owner_uid: int
    owner_gid: int

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def url(self, path: str) -> str:
        """ftp:// URL of an absolute server path (anonymous login, as in the transcripts)."""
        return f"ftp://anonymous:x@127.0.0.1:{self.port}{path}"

    def path(self, name: str) -> str:
        return str(self.data_dir / name)

    def write(self, name: str, data: bytes) -> str:
        """A file in the server's area, owned by the account its sessions run as; returns its path."""
        target = self.data_dir / name
        for parent in reversed(target.relative_to(self.data_dir).parents):
            directory = self.data_dir / parent
            directory.mkdir(exist_ok=True)
            os.chown(directory, self.owner_uid, self.owner_gid)
        target.write_bytes(data)
        os.chown(target, self.owner_uid, self.owner_gid)
        return str(target)

    def read(self, name: str) -> bytes:
        return (self.data_dir / name).read_bytes()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Children (one per control connection) first, then the listener; all by PID."""
        if self.process.poll() is None:
            for child in _children(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
            stop_process(self.process)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _session_account() -> tuple[str | None, int, int]:
    """(-anonymous-user value or None, uid, gid) for the server's sessions."""
    if os.geteuid() != 0:
        return None, os.geteuid(), os.getegid()
    try:
        entry = pwd.getpwnam(ANONYMOUS_AS_ROOT)
    except KeyError:
        raise GridFTPServerError(f"running as root needs the unprivileged account {ANONYMOUS_AS_ROOT!r} "
                                 "for the C server's anonymous sessions") from None
    return ANONYMOUS_AS_ROOT, entry.pw_uid, entry.pw_gid


def start_gridftp_server(work_dir: Path, gsi: Mapping[str, str] | None = None,
                         dn: str | None = None) -> GridFTPServer:
    """Start the C server on a free loopback port and wait until it greets with 220.

    ``gsi``: the X509_* environment of a host credential and trust directory (tests/support/pki.py);
    the server then serves gsiftp:// only, mapping ``dn`` to the account that owns its file area."""
    program = server_program()
    if program is None:
        raise GridFTPServerError("globus-gridftp-server is not installed")
    user, uid, gid = _session_account()
    work_dir.mkdir(parents=True, exist_ok=True)
    empty_conf = work_dir / "gridftp.conf"
    empty_conf.write_text("")
    empty_dir = work_dir / "gridftp.d"
    empty_dir.mkdir(exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="s3dsi-gt-")).resolve()
    if user is not None:
        os.chown(data_dir, uid, gid)
        if not _reachable_by_others(data_dir):
            shutil.rmtree(data_dir, ignore_errors=True)
            raise GridFTPServerError(f"{data_dir} is not reachable by {user!r}: set TMPDIR to a directory "
                                     "every user can traverse")
    env = None
    if gsi is not None:
        gridmap = work_dir / "grid-mapfile"
        account = user or pwd.getpwuid(os.geteuid()).pw_name
        gridmap.write_text(f'"{dn}" {account}\n')
        env = {**os.environ, **gsi, "GRIDMAP": str(gridmap)}
    failures: list[str] = []
    for attempt in range(_PORT_ATTEMPTS):
        port = free_port()
        log_path = work_dir / f"gridftp-{port}-{attempt}.log"
        argv = [program, "-p", str(port), "-control-interface", "127.0.0.1",
                "-data-interface", "127.0.0.1", "-c", str(empty_conf), "-C", str(empty_dir),
                "-log-level", "all", "-logfile", str(log_path)]
        if gsi is None:
            # any login name is anonymous: gfal2 sends one user name to both ends of a copy
            argv += ["-aa", "-anonymous-names-allowed", "*"]
            if user is not None:
                argv += ["-anonymous-user", user]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT, cwd=work_dir, env=env)
        server = GridFTPServer(process, port, data_dir, log_path, uid, gid)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _answers_220(port):
                return server
            time.sleep(0.1)
        failures.append(f"port {port} (exit {process.poll()}): {server.log_text()[-2000:]}")
        if process.poll() is None:
            process.kill()
            process.wait(10)
    shutil.rmtree(data_dir, ignore_errors=True)
    raise GridFTPServerError("globus-gridftp-server did not start:\n" + "\n---\n".join(failures))


@contextlib.contextmanager
def gridftp_server(work_dir: Path, gsi: Mapping[str, str] | None = None,
                   dn: str | None = None) -> Iterator[GridFTPServer]:
    server = start_gridftp_server(work_dir, gsi, dn)
    try:
        yield server
    finally:
        server.stop()
