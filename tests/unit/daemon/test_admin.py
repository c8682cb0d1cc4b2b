"""The admin socket protocol, the client, where `s3dsi status` looks, and its table."""

from __future__ import annotations

import argparse
import io
import json
import os
import pwd
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.cli import status as status_cli
from s3dsi.cli.main import build_parser
from s3dsi.daemon import admin, sockets
from s3dsi.daemon.sockets import AdminSocketError, bind_admin

NOW = 1_700_000_000.0
STATUS = admin.DaemonStatus(
    pid=42, version="0.1.0", model="service-user", started=NOW - 3725, account="globus-s3",
    addresses=("127.0.0.1:2811",),
    sessions=(admin.SessionSnapshot(id="000002", remote="192.0.2.1", opened=NOW - 10, user="bob", pid=42),
              admin.SessionSnapshot(id="000001", remote="192.0.2.9", opened=NOW - 60, user="alice", pid=42,
                                    kind="STOR", path="/lab/run.tar", nbytes=3 * 1024 ** 3,
                                    transfer_started=NOW - 30)))


@pytest.fixture
def socket_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        yield os.path.join(directory, "admin.sock")


def serve_once(server: socket.socket) -> threading.Thread:
    def run() -> None:
        conn, _ = server.accept()
        with conn:
            assert admin.peer_uid(conn) in admin.allowed_uids()
            conn.sendall(admin.answer(conn.recv(admin.MAX_REQUEST), lambda: STATUS))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_status_round_trip_over_a_private_socket(socket_path: str) -> None:
    with bind_admin(socket_path, owner=None) as server:
        assert (os.stat(socket_path).st_mode & 0o777) == 0o600
        thread = serve_once(server)
        assert admin.query(socket_path) == STATUS
        thread.join(5)


def test_a_live_socket_is_not_taken_over_and_a_stale_one_is(socket_path: str) -> None:
    with bind_admin(socket_path, owner=None), pytest.raises(AdminSocketError, match="another daemon"):
        bind_admin(socket_path, owner=None)
    assert os.path.exists(socket_path)  # closed, file left behind: stale
    bind_admin(socket_path, owner=None).close()


def test_too_long_a_path_is_explained() -> None:
    with pytest.raises(AdminSocketError, match="shorter path"):
        bind_admin("/tmp/" + "x" * 120 + "/admin.sock", owner=None)


def test_query_errors_are_readable(socket_path: str) -> None:
    with pytest.raises(admin.AdminError, match="is the daemon running"):
        admin.query(socket_path)
    Path(socket_path).touch()
    with pytest.raises(admin.AdminError, match=r"connection refused|not running"):
        admin.query(socket_path)


def test_unknown_requests_get_an_error() -> None:
    answer = json.loads(admin.answer(b"shutdown\n", lambda: STATUS))
    assert "unknown request" in answer["error"]


def test_status_table() -> None:
    text = status_cli.render(STATUS, now=NOW)
    lines = text.splitlines()
    assert lines[0] == ("s3dsi 0.1.0, pid 42, service-user process model, running as globus-s3, up 1h02m, "
                        "2 sessions, listening on 127.0.0.1:2811")
    assert lines[1].split() == ["SESSION", "USER", "REMOTE", "PID", "STATE", "FILE", "BYTES", "RATE"]
    assert lines[2].split()[:6] == ["000001", "alice", "192.0.2.9", "42", "STOR", "/lab/run.tar"]
    assert "3.0 GiB" in lines[2]
    assert lines[3].split() == ["000002", "bob", "192.0.2.1", "42", "idle"]


def test_rate_is_bytes_over_elapsed_time() -> None:
    snapshot = admin.SessionSnapshot(id="1", remote="r", opened=0, kind="RETR", nbytes=1000,
                                     transfer_started=time.time() - 10)
    assert snapshot.rate == pytest.approx(100, rel=0.05)


def test_status_command_reports_an_absent_daemon(socket_path: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(socket=socket_path, json=False)
    assert status_cli.run(args, out=out, err=err) == 1
    assert "s3dsi status:" in err.getvalue()


def test_status_command_json(socket_path: str) -> None:
    with bind_admin(socket_path, owner=None) as server:
        thread = serve_once(server)
        out = io.StringIO()
        assert status_cli.run(argparse.Namespace(socket=socket_path, json=True), out=out) == 0
        thread.join(5)
    assert json.loads(out.getvalue())["sessions"][1]["path"] == "/lab/run.tar"


@pytest.fixture
def site() -> Iterator[Path]:
    """A configuration readable by every user, whose daemon would run as root with process_user nobody."""
    base = Path(tempfile.mkdtemp(prefix="s3dsi-status-", dir="/tmp"))
    base.chmod(0o755)
    (base / "gridftp.d").mkdir(mode=0o755)
    (base / "gridftp.d" / "s3").write_text("process_user nobody\n")
    (base / "s3.conf").write_text("host_name = http://127.0.0.1:9\n")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def status_args(base: Path, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["status", "-c", "/dev/null", "-C", str(base / "gridftp.d"),
                                      "--s3-conf", str(base / "s3.conf"), *extra])


def test_the_daemons_account_finds_the_socket_a_root_daemon_chose(site: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`sudo -u globus-s3 s3dsi status`: process_user means a root daemon, listening on /run/s3dsi."""
    run_dir = site / "run"
    run_dir.mkdir()
    monkeypatch.setattr(sockets, "ROOT_ADMIN_SOCKET", str(run_dir / "admin.sock"))
    monkeypatch.setattr(os, "geteuid", lambda: 65534)
    monkeypatch.setenv("HOME", str(site / "home"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    own = site / "home" / ".local" / "state" / "s3dsi" / "admin.sock"
    assert sockets.admin_socket_candidates(status_cli.settings_from_args(status_args(site))) == \
        [str(run_dir / "admin.sock"), str(own)]
    with bind_admin(str(run_dir / "admin.sock"), owner=None) as server:
        thread = serve_once(server)
        out, err = io.StringIO(), io.StringIO()
        assert status_cli.run(status_args(site), out=out, err=err) == 0, err.getvalue()
        thread.join(5)
    assert "running as globus-s3" in out.getvalue()
    (run_dir / "admin.sock").unlink()
    err = io.StringIO()
    assert status_cli.run(status_args(site), out=io.StringIO(), err=err) == 1
    assert f"{run_dir / 'admin.sock'}: no such socket" in err.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the client as another user: needs root")
def test_a_socket_the_caller_may_not_reach_is_permission_denied(site: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = site / "run"
    run_dir.mkdir(mode=0o700)  # root's alone, as /run/s3dsi was (RuntimeDirectoryMode=0750)
    monkeypatch.setattr(sockets, "ROOT_ADMIN_SOCKET", str(run_dir / "admin.sock"))
    nobody = pwd.getpwnam("nobody")
    with bind_admin(str(run_dir / "admin.sock"), owner=None):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, as nobody
            code = 0
            try:
                os.close(read)
                os.setgroups([])
                os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
                os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
                os.environ.update(HOME="/nonexistent")
                os.environ.pop("XDG_RUNTIME_DIR", None)
                err = io.StringIO()
                code = status_cli.run(status_args(site), out=io.StringIO(), err=err)
                os.write(write, err.getvalue().encode())
            except BaseException as exc:
                os.write(write, repr(exc).encode())
                code = 99
            os._exit(code)
        os.close(write)
        message = b""
        while chunk := os.read(read, 4096):
            message += chunk
        os.close(read)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1, message
    assert f"{run_dir / 'admin.sock'}: permission denied".encode() in message
