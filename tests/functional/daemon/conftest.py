"""Fixtures for running `s3dsi serve` for real: configuration trees, daemon processes, throwaway local
users (root only), and an s3dsi that other users can run (the Debian package, when this Python lives
where they cannot read it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import s3dsi
from s3dsi.identity.passwords import hash_password
from tests.support.moto_server import MotoS3

REPO = Path(__file__).resolve().parents[3]
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="creates local users and drops privileges: run as root "
                                                    "(CI does)")


DEMO_BANNER_END = "Stop with Ctrl-C"


def read_demo_banner(proc: subprocess.Popen[str], timeout: float) -> list[str]:
    """Follow a demo's stdout in a thread; return its lines (still growing) once the banner has ended,
    the output closed or ``timeout`` passed."""
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(DEMO_BANNER_END):
                done.set()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def world_tempdir(prefix: str) -> Path:
    """A temp dir every local user can traverse (pytest's own are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def _readable_by_anyone(path: Path) -> bool:
    current = path.resolve()
    for parent in [*reversed(current.parents), current]:
        mode = parent.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(current.stat().st_mode & stat.S_IROTH)


def python_readable_by_anyone() -> bool:
    """Whether a process that dropped to another user can still import what this interpreter imports."""
    paths = [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
             os.path.dirname(s3dsi.__file__)]
    return all(_readable_by_anyone(Path(p)) for p in paths)


# -- the Debian package (built once per test session) ----------------------------------------------
@pytest.fixture(scope="session")
def deb_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    proc = subprocess.run([str(REPO / "packaging" / "build-deb.sh"), str(out)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"build-deb.sh failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    deb = Path(proc.stdout.strip().splitlines()[-1])
    assert deb.is_file(), proc.stdout
    return deb


@pytest.fixture(scope="session")
def installed_tree(deb_package: Path) -> Iterator[Path]:
    """The package's files unpacked into a throwaway root (dpkg -x), readable by every user."""
    root = world_tempdir("s3dsi-pkg-")
    subprocess.run(["dpkg", "-x", str(deb_package), str(root)], check=True, timeout=120)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3dsi_for_any_user(request: pytest.FixtureRequest) -> list[str]:
    """The command that runs s3dsi such that it keeps working after dropping to another user."""
    if python_readable_by_anyone():
        return [sys.executable, "-m", "s3dsi"]
    tree: Path = request.getfixturevalue("installed_tree")
    return [str(tree / "opt" / "s3dsi" / "bin" / "s3dsi")]


# -- local users ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalUser:
    name: str
    uid: int
    gid: int
    home: Path

    def write_map(self, entries: Mapping[str, tuple[str, str]], path: Path | None = None) -> Path:
        """``~/.globus/s3`` (or ``path``) owned by this user, 0600 in a 0700 directory."""
        target = path or self.home / ".globus" / "s3"
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.chown(target.parent, self.uid, self.gid)
        target.write_text("".join(f"{user};{key};{secret}\n" for user, (key, secret) in entries.items()))
        os.chown(target, self.uid, self.gid)
        target.chmod(0o600)
        return target


class LocalUsers:
    """Creates users with useradd (homes in a world-traversable temp dir) and deletes them again."""

    def __init__(self) -> None:
        self.base = world_tempdir("s3dsi-users-")
        self.created: list[LocalUser] = []

    def create(self) -> LocalUser:
        name = f"s3t{uuid.uuid4().hex[:9]}"
        home = self.base / name
        subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin",
                        "--user-group", name], check=True, capture_output=True, timeout=30)
        info = home.stat()
        user = LocalUser(name, info.st_uid, info.st_gid, home)
        self.created.append(user)
        return user

    def cleanup(self) -> None:
        for user in self.created:
            subprocess.run(["userdel", "--force", "--remove", user.name], capture_output=True, timeout=30,
                           check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def local_users() -> Iterator[LocalUsers]:
    if not IS_ROOT:
        pytest.skip("creating local users needs root (CI runs as root)")
    users = LocalUsers()
    try:
        yield users
    finally:
        users.cleanup()


# -- configuration and daemon processes -------------------------------------------------------------------
@dataclass
class SiteConfig:
    """A gridftp.d directory, an S3 conf and a password file under ``root``, pointing at moto."""

    root: Path
    moto: MotoS3
    gridftp: dict[str, str] = field(default_factory=dict)
    s3: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def password_file(self) -> Path:
        return self.root / "passwd"

    @property
    def admin_socket(self) -> Path:
        return self.root / "admin.sock"

    def write(self) -> SiteConfig:
        conf_dir = self.root / "gridftp.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        self.write_passwords()
        options = {"load_dsi_module": "s3", "threads": "4", "control_interface": "127.0.0.1",
                   "data_interface": "127.0.0.1", "pw_file": str(self.password_file), "log_level": "ALL"}
        options.update(self.gridftp)
        (conf_dir / "gridftp-s3").write_text("".join(f'{k} "{v}"\n' for k, v in options.items()))
        s3 = {"host_name": self.moto.endpoint, "region": "us-east-1", "addressing_style": "path",
              "part_size_min": "5M", "memory_budget": "64M", "admin_socket": str(self.admin_socket)}
        s3.update(self.s3)
        (self.root / "s3.conf").write_text("".join(f"{k} = {v}\n" for k, v in s3.items()))
        return self

    def write_passwords(self) -> None:
        self.password_file.write_text("".join(f"{u}:{hash_password(p, time_cost=1, memory_cost=8192)}\n"
                                              for u, p in self.passwords.items()))
        self.password_file.chmod(0o600)

    def args(self) -> list[str]:
        return ["-c", "/dev/null", "-C", str(self.root / "gridftp.d"),
                "--s3-conf", str(self.root / "s3.conf"), "-p", "0"]


@dataclass
class Served:
    proc: subprocess.Popen[str]
    host: str
    port: int
    log_path: Path
    output: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{self.log()[-3000:]}"
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def serve(command: Sequence[str], args: Sequence[str], log_path: Path, *,
          env: Mapping[str, str] | None = None, timeout: float = 30.0) -> Served:
    """``s3dsi serve ARGS``; returns once the daemon printed ``listening on HOST:PORT``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NOTIFY_SOCKET"))}
    full_env.update(env or {})
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*command, "serve", *args], stdout=subprocess.PIPE, stderr=log, text=True,
                                env=full_env, cwd="/")
    output: list[str] = []
    first = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line.rstrip("\n"))
            first.set()
        first.set()

    threading.Thread(target=drain, daemon=True).start()
    first.wait(timeout)
    if not output or not output[0].startswith("listening on "):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)
        log_text = log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"daemon did not start: {output!r}\n{log_text}")
    host, _, port = output[0].split("listening on ", 1)[1].strip().rpartition(":")
    return Served(proc, host.strip("[]"), int(port), log_path, output)


def process_credentials(pid: int) -> dict[str, list[int]]:
    """The Uid, Gid and Groups lines of /proc/PID/status."""
    result: dict[str, list[int]] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            result[key] = [int(v) for v in value.split()]
        if key == "CapEff":
            result[key] = [int(value.strip(), 16)]
    return result


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)
