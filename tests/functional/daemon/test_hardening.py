"""Real daemon processes against the hardening rules: the per-session parent limits connections before it
forks and ends children that never log in; a session process holds no other user's password hash once
logged in and never dumps core; the daemon refuses an insecure credential map at login; the admin socket
is never handed over in a directory the service account could change."""

from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.functional.daemon.conftest import (
    LocalUsers,
    SiteConfig,
    children_of,
    needs_root,
    process_credentials,
    serve,
    world_tempdir,
)
from tests.functional.daemon.ftp import login, try_login
from tests.support.moto_server import MotoS3

pytestmark = needs_root
CORE_UNLIMITED = ["prlimit", "--core=unlimited:unlimited"]  # so that "no core dumps" is the daemon's doing


def greeting(served_host: str, port: int, source: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection((served_host, port), timeout=10, source_address=(source, 0))
    return sock, sock.recv(200)


def core_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return " ".join(line.split()[4:6])
    raise AssertionError("no core limit line")


def wait_children(pid: int, count: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        found = children_of(pid)
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_the_parent_limits_connections_before_forking_and_ends_children_without_a_login(
        moto_s3: MotoS3, s3dsi_for_any_user: list[str]) -> None:
    base = world_tempdir("s3dsi-limits-")
    try:
        limits = {"connections_max": "3", "connections_max_per_address": "2", "control_preauth_timeout": "3"}
        config = SiteConfig(base, moto_s3, gridftp=limits).write()
        served = serve([*CORE_UNLIMITED, *s3dsi_for_any_user], config.args(), base / "daemon.log")
        sockets: list[socket.socket] = []
        try:
            for source, expected in (("127.0.0.1", b"220"), ("127.0.0.1", b"220"),
                                     ("127.0.0.1", b"421 Service not available: too many connections from"),
                                     ("127.0.0.2", b"220"),
                                     ("127.0.0.3", b"421 Service not available: too many connections.")):
                sock, first = greeting(served.host, served.port, source)
                sockets.append(sock)
                assert first.startswith(expected), (source, first)
            children = wait_children(served.pid, 3)
            assert len(children) == 3  # one per admitted connection: the refused ones cost no fork
            assert core_limit(served.pid) == "0 0"
            assert all(core_limit(pid) == "0 0" for pid in children)
            # the pre-login deadline: every admitted connection is told and closed, its process ends
            for sock in (sockets[0], sockets[1], sockets[3]):
                sock.settimeout(15)
                rest = b""
                while chunk := sock.recv(200):
                    rest += chunk
                assert b"421 Idle Timeout" in rest
            assert wait_children(served.pid, 0) == []
            sock, first = greeting(served.host, served.port, "127.0.0.1")  # room again
            sockets.append(sock)
            assert first.startswith(b"220")
        finally:
            for sock in sockets:
                sock.close()
            served.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def process_memory(pid: int) -> bytes:
    """Every readable mapping of a process (read as root)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    return b"".join(chunks)


def test_a_logged_in_session_process_holds_no_other_users_hash(local_users: LocalUsers, moto_s3: MotoS3,
                                                               s3dsi_for_any_user: list[str]) -> None:
    ann, ben = local_users.create(), local_users.create()
    ann.write_map({ann.name: (moto_s3.access_key, moto_s3.secret_key)})
    base = world_tempdir("s3dsi-hashes-")
    try:
        passwords = {ann.name: "ann password", ben.name: "ben password"}
        config = SiteConfig(base, moto_s3, passwords=passwords).write()
        stored = dict(line.split(":", 1) for line in config.password_file.read_text().splitlines())
        # the digest part of each argon2id hash: unique random bytes that only the hash contains
        ann_digest = stored[ann.name].rsplit("$", 1)[1].encode()
        ben_digest = stored[ben.name].rsplit("$", 1)[1].encode()
        served = serve([*CORE_UNLIMITED, *s3dsi_for_any_user], config.args(), base / "daemon.log")
        try:
            c = login(served, ann.name, "ann password")
            deadline = time.monotonic() + 10
            session = None
            while session is None and time.monotonic() < deadline:
                session = next((pid for pid in children_of(served.pid)
                                if process_credentials(pid)["Uid"][0] == ann.uid), None)
                time.sleep(0.05)
            assert session is not None
            memory = process_memory(session)
            assert ann_digest in memory  # the scan sees what the process holds: its own user's hash
            assert ben_digest not in memory, "another user's password hash is still in the session process"
            assert core_limit(session) == "0 0"
            # ann may retry a login in her own process (after a map problem); nobody else can log in there
            assert c.cmd("NOOP").code == 200
            c.close()
            assert try_login(served, ben.name, "ben password") == 530  # no map for ben, but checked
            assert "no usable S3 credentials" in served.log()
        finally:
            served.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_an_insecure_map_is_refused_at_login(moto_s3: MotoS3, s3dsi_for_any_user: list[str]) -> None:
    base = world_tempdir("s3dsi-map-")
    try:
        globus = base / "dotglobus"
        globus.mkdir(mode=0o700)
        map_file = globus / "s3"
        map_file.write_text(f"alice;{moto_s3.access_key};{moto_s3.secret_key}\n")
        map_file.chmod(0o640)
        config = SiteConfig(base, moto_s3, gridftp={"allow_root": "1"}, s3={"s3_map_filename": str(map_file)},
                            passwords={"alice": "alice password"}).write()
        served = serve(s3dsi_for_any_user, config.args(), base / "daemon.log")
        try:
            assert try_login(served, "alice", "alice password") == 530
            log = served.log()
            assert "credential map unusable" in log and "too open" in log
            assert moto_s3.secret_key not in log
            map_file.chmod(0o600)  # read again at the next login
            assert try_login(served, "alice", "alice password") == 230
        finally:
            served.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_admin_socket_is_not_handed_over_in_a_directory_the_service_account_owns(
        local_users: LocalUsers, moto_s3: MotoS3, s3dsi_for_any_user: list[str]) -> None:
    service = local_users.create()
    service.write_map({})
    base = world_tempdir("s3dsi-admin-")
    try:
        theirs = base / "svc-state"
        theirs.mkdir(mode=0o700)
        shutil.chown(theirs, service.name, service.name)
        config = SiteConfig(base, moto_s3, gridftp={"process_user": service.name},
                            s3={"admin_socket": str(theirs / "admin.sock")}).write()
        with pytest.raises(RuntimeError) as caught:
            serve(s3dsi_for_any_user, config.args(), base / "daemon.log")
        assert re.search(r"admin_socket: .*svc-state: the admin socket must be in a directory only root may "
                         r"change", str(caught.value)), str(caught.value)
        assert not (theirs / "admin.sock").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
