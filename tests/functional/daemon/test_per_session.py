"""Root without process_user: one forked process per connection, which becomes the logged-in user
before reading that user's own ~/.globus/s3. Sessions of different users cannot see each other's
credentials; SIGTERM stops the session processes (a running upload aborted: nothing left behind)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import time

from tests.functional.daemon.conftest import (
    LocalUser,
    LocalUsers,
    SiteConfig,
    children_of,
    needs_root,
    process_credentials,
    serve,
    world_tempdir,
)
from tests.functional.daemon.ftp import login, retr, run, stor, try_login
from tests.support.moto_server import MotoS3

pytestmark = needs_root
MiB = 1024 * 1024


def can_open_as(user: LocalUser, path: str) -> int:
    """0 if a process with ``user``'s identity can open ``path``, else the errno (checked in a fork)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setresgid(user.gid, user.gid, user.gid)
            os.setresuid(user.uid, user.uid, user.uid)
            os.close(os.open(path, os.O_RDONLY))
        except OSError as err:
            code = err.errno or 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def session_processes(supervisor: int, expected: int, timeout: float = 10.0) -> dict[int, list[int]]:
    """pid -> Uid line of the supervisor's children once ``expected`` of them dropped privileges."""
    deadline = time.monotonic() + timeout
    while True:
        found = {pid: process_credentials(pid)["Uid"] for pid in children_of(supervisor)}
        if sum(1 for uids in found.values() if uids[0] != 0) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_sessions_run_as_their_users_with_their_own_maps(local_users: LocalUsers, moto_s3: MotoS3,
                                                         s3dsi_for_any_user: list[str]) -> None:
    ann, ben = local_users.create(), local_users.create()
    keys = (moto_s3.access_key, moto_s3.secret_key)
    ann_map = ann.write_map({ann.name: keys})
    ben_map = ben.write_map({ben.name: keys, ann.name: keys})  # an entry for ann that she must never use
    bucket = moto_s3.create_bucket()
    base = world_tempdir("s3dsi-fork-")
    try:
        config = SiteConfig(base, moto_s3, s3={"shutdown_grace": "1"},
                            passwords={ann.name: "ann password", ben.name: "ben password",
                                       "ghost": "ghost password"}).write()
        served = serve(s3dsi_for_any_user, config.args(), base / "daemon.log")
        try:
            assert process_credentials(served.pid)["Uid"] == [0] * 4  # the parent only accepts and forks
            a = login(served, ann.name, "ann password")
            b = login(served, ben.name, "ben password")
            processes = session_processes(served.pid, 2)
            assert sorted(uids[0] for uids in processes.values()) == sorted([ann.uid, ben.uid])
            for pid, uids in processes.items():
                creds = process_credentials(pid)
                owner = ann if uids[0] == ann.uid else ben
                assert creds["Uid"] == [owner.uid] * 4 and creds["Gid"] == [owner.gid] * 4
                assert creds["Groups"] == [owner.gid] and creds["CapEff"] == [0]
            # with ann's identity, ben's map cannot even be opened (and the reverse)
            assert can_open_as(ann, str(ben_map)) == errno.EACCES
            assert can_open_as(ben, str(ann_map)) == errno.EACCES
            assert can_open_as(ann, str(ann_map)) == 0

            data = os.urandom(MiB)
            assert stor(a, f"/{bucket}/ann.bin", data) == 226
            assert retr(b, f"/{bucket}/ann.bin") == data

            deadline = time.monotonic() + 10  # session processes report once a second
            while True:
                status = run([*s3dsi_for_any_user, "status", "--socket", str(config.admin_socket)])
                assert status.returncode == 0, status.stderr
                assert "per-session process model" in status.stdout
                if (ann.name in status.stdout and ben.name in status.stdout) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert ann.name in status.stdout and ben.name in status.stdout

            # ann's sessions read ann's map only: without her entry there, ben's entry for her is no help
            ann.write_map({})
            assert try_login(served, ann.name, "ann password") == 530
            assert try_login(served, "ghost", "ghost password") == 530  # no local account to become
            assert "no local account" in served.log()
            # failed-login delays grow across session processes, as in one process: 0.5 s, then 1 s
            assert "delay=0.5" in served.log() and "delay=1.0" in served.log()
            assert a.cmd("NOOP").code == 200  # the running session keeps the credentials it started with

            # SIGTERM with an upload in flight: after shutdown_grace the child aborts it
            host, port = a.pasv()
            assert a.cmd(f"ALLO {20 * MiB}").code == 200
            a.send(f"STOR /{bucket}/cut.bin")
            data_conn = socket.create_connection((host, port))
            assert a.read_reply().code == 150
            data_conn.sendall(os.urandom(7 * MiB))
            served.signal(signal.SIGTERM)
            assert served.proc.wait(30) == 0
            data_conn.close()
            b.close()
            a.close()
        finally:
            served.stop()
        s3 = moto_s3.client()
        keys_left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert keys_left == ["ann.bin"]
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert not children_of(served.pid)
    finally:
        shutil.rmtree(base, ignore_errors=True)
