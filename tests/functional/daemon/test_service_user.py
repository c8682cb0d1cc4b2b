"""Root with process_user: bind, read the root-only password file, drop to the service account for good;
sessions, SIGHUP reload (password file through the root helper), map edits, status, metrics, logs."""

from __future__ import annotations

import os
import shutil
import signal
import time

from tests.functional.daemon.conftest import (
    LocalUsers,
    SiteConfig,
    children_of,
    free_port,
    needs_root,
    process_credentials,
    serve,
    world_tempdir,
)
from tests.functional.daemon.ftp import http_get, login, metric, retr, run, stor, try_login
from tests.support.moto_server import MotoS3

pytestmark = needs_root
MiB = 1024 * 1024


def test_service_user_model(local_users: LocalUsers, moto_s3: MotoS3, s3dsi_for_any_user: list[str]) -> None:
    service = local_users.create()
    keys = (moto_s3.access_key, moto_s3.secret_key)
    service.write_map({"alice": keys})
    bucket = moto_s3.create_bucket()
    base = world_tempdir("s3dsi-svc-")
    try:
        (base / "log").mkdir()
        metrics_port = free_port()
        transfer_log = base / "log" / "transfer.log"
        config = SiteConfig(base, moto_s3, gridftp={"process_user": service.name,
                                                    "log_transfer": str(transfer_log)},
                            s3={"metrics_listen": f"127.0.0.1:{metrics_port}"},
                            passwords={"alice": "alice password"}).write()
        served = serve(s3dsi_for_any_user, config.args(), base / "daemon.log")
        try:
            # the daemon runs as the service account, with no way back (no capabilities left)
            creds = process_credentials(served.pid)
            assert creds["Uid"] == [service.uid] * 4
            assert creds["Gid"] == [service.gid] * 4
            assert creds["Groups"] == [service.gid]
            assert creds["CapEff"] == [0]
            helpers = children_of(served.pid)
            assert len(helpers) == 1 and process_credentials(helpers[0])["Uid"] == [0] * 4  # pw_file reader
            info = config.admin_socket.stat()
            assert (info.st_uid, info.st_mode & 0o777) == (service.uid, 0o660)

            # a session: the map is read (as the service account) at login, S3 works
            c = login(served, "alice", "alice password")
            assert c.cmd("SITE TASKID svc-task-1").code == 250
            data = os.urandom(MiB)
            assert stor(c, f"/{bucket}/one.bin", data) == 226
            assert retr(c, f"/{bucket}/one.bin") == data

            status = run([*s3dsi_for_any_user, "status", "--socket", str(config.admin_socket)])
            assert status.returncode == 0, status.stderr
            assert "service-user process model" in status.stdout
            assert f"running as {service.name}" in status.stdout
            assert "alice" in status.stdout and "idle" in status.stdout

            metrics = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert metric(metrics, 's3dsi_transfer_bytes_total{direction="in"}') == MiB
            assert metric(metrics, 's3dsi_transfer_bytes_total{direction="out"}') == MiB
            assert metric(metrics, 's3dsi_s3_requests_total{operation="PutObject",status="200"}') >= 1
            assert metric(metrics, "s3dsi_sessions") == 1

            lines = transfer_log.read_text().splitlines()
            assert [line.split(" TYPE=")[1] for line in lines] == ["STOR CODE=226 TASKID=svc-task-1",
                                                                    "RETR CODE=226 TASKID=svc-task-1"]
            assert f"USER=alice FILE=/{bucket}/one.bin" in lines[0]

            # SIGHUP re-reads the root-only password file (through the helper) and the configuration
            assert try_login(served, "bob", "bob password") == 530
            config.passwords["bob"] = "bob password"
            config.write_passwords()
            info = config.password_file.stat()
            assert (info.st_uid, info.st_mode & 0o777) == (0, 0o600)  # root's alone
            service.write_map({"alice": keys, "bob": keys})
            served.signal(signal.SIGHUP)
            served.wait_for_log("configuration reloaded")
            assert try_login(served, "bob", "bob password") == 230

            # a map edit counts from the next login, without a restart; running sessions go on
            service.write_map({"bob": keys})
            assert try_login(served, "alice", "alice password") == 530
            assert c.cmd("NOOP").code == 200
            c.close()
        finally:
            code = served.stop()
        assert code == 0, served.log()[-3000:]
        deadline = time.monotonic() + 5
        while any(os.path.exists(f"/proc/{pid}") for pid in helpers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(os.path.exists(f"/proc/{pid}") for pid in helpers), "the helper outlived the daemon"
    finally:
        shutil.rmtree(base, ignore_errors=True)
