"""`s3dsi serve` as one process (started unprivileged, or as root with allow_root): systemd notification,
`s3dsi status` during a transfer, graceful SIGTERM, SIGHUP reload, map edits, and the refusal to run as
root when sessions could not be switched to their users."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.daemon.conftest import IS_ROOT, SiteConfig, serve, world_tempdir
from tests.functional.daemon.ftp import connect, login, run, try_login
from tests.support.moto_server import MotoS3
from tests.support.programs import need

MiB = 1024 * 1024
PYTHON = [sys.executable, "-m", "s3dsi"]


@pytest.fixture
def site(moto_s3: MotoS3) -> Iterator[SiteConfig]:
    base = world_tempdir("s3dsi-single-")
    home = base / "home"
    (home / ".globus").mkdir(parents=True, mode=0o700)
    map_file = home / ".globus" / "s3"
    map_file.write_text(f"alice;{moto_s3.access_key};{moto_s3.secret_key}\n")
    map_file.chmod(0o600)
    config = SiteConfig(base, moto_s3, gridftp={"allow_root": "1"} if IS_ROOT else {},
                        s3={"s3_map_filename": str(map_file), "shutdown_grace": "30",
                            "state_dir": str(base / "state")},
                        passwords={"alice": "alice password"})
    try:
        yield config.write()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_notify_status_and_a_transfer_that_finishes_during_the_graceful_stop(site: SiteConfig,
                                                                             moto_s3: MotoS3) -> None:
    bucket = moto_s3.create_bucket()
    notify_path = site.root / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(15)
        served = serve(PYTHON, site.args(), site.root / "daemon.log", env={"NOTIFY_SOCKET": str(notify_path)})
        try:
            ready = notify.recv(4096).decode()
            assert "READY=1" in ready and "STATUS=0 sessions, 0 transfers running" in ready
            assert f"MAINPID={served.pid}" in ready

            idle = login(served, "alice", "alice password")
            busy = login(served, "alice", "alice password")
            data = os.urandom(12 * MiB)
            host, port = busy.pasv()
            assert busy.cmd(f"ALLO {len(data)}").code == 200
            busy.send(f"STOR /{bucket}/slow.bin")
            data_conn = socket.create_connection((host, port))
            assert busy.read_reply().code == 150
            data_conn.sendall(data[:3 * MiB])

            deadline = time.monotonic() + 10
            while True:
                status = run([*PYTHON, "status", "--socket", str(site.admin_socket)])
                assert status.returncode == 0, status.stderr
                row = next((line for line in status.stdout.splitlines() if "STOR" in line), None)
                if (row is not None and "MiB/s" in row and "0 B" not in row) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert row is not None, status.stdout
            assert f"/{bucket}/slow.bin" in row and "alice" in row and "MiB" in row

            served.signal(signal.SIGTERM)
            assert idle.read_reply().lines == ["421 Service shutting down."]
            with pytest.raises(OSError):  # no new connections
                connect(served).cmd("NOOP")
            data_conn.sendall(data[3 * MiB:])
            data_conn.close()
            assert busy.read_reply().code == 226
            assert busy.read_reply().code == 421
            assert served.proc.wait(30) == 0
            messages = []
            while True:
                try:
                    messages.append(notify.recv(4096).decode())
                except TimeoutError:
                    break
                if "STOPPING=1" in messages[-1]:
                    break
            assert any("STOPPING=1" in m for m in messages)
        finally:
            served.stop()
    stored = moto_s3.client().get_object(Bucket=bucket, Key="slow.bin")["Body"].read()
    assert stored == data
    assert moto_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_sighup_reloads_the_configuration_and_password_file_and_maps_are_read_per_login(
        site: SiteConfig, moto_s3: MotoS3) -> None:
    served = serve(PYTHON, site.args(), site.root / "daemon.log")
    try:
        assert try_login(served, "bob", "bob password") == 530
        first = connect(served)
        site.passwords["bob"] = "bob password"
        site.gridftp["banner"] = "Reloaded banner"
        site.write()
        map_file = Path(site.s3["s3_map_filename"])
        map_file.write_text(map_file.read_text() + f"bob;{moto_s3.access_key};{moto_s3.secret_key}\n")
        assert try_login(served, "bob", "bob password") == 530  # the password file is read at start and HUP
        served.signal(signal.SIGHUP)
        served.wait_for_log("configuration reloaded")
        assert try_login(served, "bob", "bob password") == 230
        assert "Reloaded banner" in connect(served).greeting.text
        assert "Reloaded banner" not in first.greeting.text
        map_file.write_text(f"bob;{moto_s3.access_key};{moto_s3.secret_key}\n")  # alice removed: next login
        assert try_login(served, "alice", "alice password") == 530
        first.close()
    finally:
        assert served.stop() == 0


def test_a_broken_configuration_on_sighup_keeps_the_running_one(site: SiteConfig) -> None:
    served = serve(PYTHON, site.args(), site.root / "daemon.log")
    try:
        (site.root / "gridftp.d" / "broken").write_text("port not-a-number\n")
        served.signal(signal.SIGHUP)
        served.wait_for_log("reload failed")
        assert try_login(served, "alice", "alice password") == 230
    finally:
        assert served.stop() == 0


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_root_that_cannot_switch_users_refuses_to_start(site: SiteConfig) -> None:
    site.gridftp.pop("allow_root", None)
    site.write()
    setpriv = need("setpriv")
    proc = run([setpriv, "--bounding-set", "-setuid,-setgid", *PYTHON, "serve", *site.args()], timeout=60)
    assert proc.returncode == 2
    assert "refusing to run as root" in proc.stderr and "process_user" in proc.stderr
    assert proc.stdout == ""
