"""Root with process_user: bind, read the root-only password file, drop to the service account for good;
sessions, SIGHUP reload (password file and log files through the root helper), map edits, status,
metrics, logs, and the restart journal under a root-owned state_dir."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

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
from tests.functional.daemon.ftp import connect, http_get, login, metric, retr, run, stor, try_login
from tests.support.moto_server import MotoS3

pytestmark = needs_root
MiB = 1024 * 1024


def eventually(probe: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Workers report to their parent once a second: what status and metrics show may lag by that."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_service_user_model(local_users: LocalUsers, moto_s3: MotoS3, s3dsi_for_any_user: list[str],
                            workers: str) -> None:
    service = local_users.create()
    keys = (moto_s3.access_key, moto_s3.secret_key)
    service.write_map({"alice": keys})
    bucket = moto_s3.create_bucket()
    base = world_tempdir("s3dsi-svc-")
    count = int(workers)
    try:
        (base / "log").mkdir()
        metrics_port = free_port()
        transfer_log = base / "log" / "transfer.log"
        config = SiteConfig(base, moto_s3, gridftp={"process_user": service.name, "workers": workers,
                                                    "log_transfer": str(transfer_log)},
                            s3={"metrics_listen": f"127.0.0.1:{metrics_port}"},
                            passwords={"alice": "alice password"}).write()
        served = serve(s3dsi_for_any_user, config.args(), base / "daemon.log")
        try:
            # the daemon (and each worker) runs as the service account, with no way back (no capabilities)
            eventually(lambda: len(children_of(served.pid)) == 1 + (count if count > 1 else 0), "the workers")
            children = children_of(served.pid)
            helpers = [pid for pid in children if process_credentials(pid)["Uid"] == [0] * 4]
            assert len(helpers) == 1  # the pw_file reader
            for pid in [served.pid, *(c for c in children if c not in helpers)]:
                creds = process_credentials(pid)
                assert creds["Uid"] == [service.uid] * 4
                assert creds["Gid"] == [service.gid] * 4
                assert creds["Groups"] == [service.gid]
                assert creds["CapEff"] == [0]
            info = config.admin_socket.stat()
            assert (info.st_uid, info.st_mode & 0o777) == (service.uid, 0o660)

            # a session: the map is read (as the service account) at login, S3 works
            c = login(served, "alice", "alice password")
            assert c.cmd("SITE TASKID svc-task-1").code == 250
            data = os.urandom(MiB)
            assert stor(c, f"/{bucket}/one.bin", data) == 226
            assert retr(c, f"/{bucket}/one.bin") == data

            def status_text() -> str:
                status = run([*s3dsi_for_any_user, "status", "--socket", str(config.admin_socket)])
                assert status.returncode == 0, status.stderr
                return status.stdout

            eventually(lambda: "alice" in status_text(), "the session in the status")
            text = status_text()
            assert "service-user process model" in text and f"running as {service.name}" in text
            assert "alice" in text and "idle" in text
            assert (f"{count} workers" in text) == (count > 1)

            def metrics() -> str:
                return http_get(f"http://127.0.0.1:{metrics_port}/metrics")

            eventually(lambda: metric(metrics(), 's3dsi_transfer_bytes_total{direction="out"}') == MiB,
                       "the transfer counters")
            text = metrics()
            assert metric(text, 's3dsi_transfer_bytes_total{direction="in"}') == MiB
            assert metric(text, 's3dsi_s3_requests_total{operation="PutObject",status="200"}') >= 1
            assert metric(text, "s3dsi_sessions") == 1
            assert metric(text, "s3dsi_sessions_opened_total") == 1

            lines = transfer_log.read_text().splitlines()
            assert [line.split(" TYPE=")[1] for line in lines] == ["STOR CODE=226 TASKID=svc-task-1",
                                                                    "RETR CODE=226 TASKID=svc-task-1"]
            assert f"USER=alice FILE=/{bucket}/one.bin" in lines[0]

            # SIGHUP re-reads the root-only password file (through the helper) and the configuration, in
            # every worker
            assert try_login(served, "bob", "bob password") == 530
            config.passwords["bob"] = "bob password"
            config.write_passwords()
            info = config.password_file.stat()
            assert (info.st_uid, info.st_mode & 0o777) == (0, 0o600)  # root's alone
            service.write_map({"alice": keys, "bob": keys})
            served.signal(signal.SIGHUP)
            reloads = 1 + (count if count > 1 else 0)
            eventually(lambda: served.log().count("configuration reloaded") >= reloads, "every reload")
            held = connect(served)  # the other worker than c's: each worker gets one bob login
            assert held.cmd("USER bob").code == 331 and held.cmd("PASS bob password").code == 230
            assert try_login(served, "bob", "bob password") == 230
            held.close()

            # a map edit counts from the next login, without a restart; running sessions go on
            service.write_map({"bob": keys})
            assert try_login(served, "alice", "alice password") == 530
            assert c.cmd("NOOP").code == 200
            c.close()
        finally:
            code = served.stop()
        assert code == 0, served.log()[-3000:]
        deadline = time.monotonic() + 5
        while any(os.path.exists(f"/proc/{pid}") for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(os.path.exists(f"/proc/{pid}") for pid in children), "a child outlived the daemon"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def wait_for(path: Path, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        assert time.monotonic() < deadline, f"{text!r} not in {path}:\n{content[-3000:]}"
        time.sleep(0.05)


def owner_and_mode(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_mode & 0o777


def reloaded(path: Path, processes: int) -> str:
    """Once every process (the daemon and each worker) logged its reload into ``path``."""
    deadline = time.monotonic() + 15
    while True:
        content = path.read_text(errors="replace") if path.exists() else ""
        if content.count("configuration reloaded") >= processes:
            return content
        assert time.monotonic() < deadline, f"{processes} reloads not in {path}:\n{content[-3000:]}"
        time.sleep(0.05)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_reloads_reopen_root_only_logs_and_the_journal_lives_in_a_root_state_dir(
        local_users: LocalUsers, moto_s3: MotoS3, s3dsi_for_any_user: list[str], workers: str) -> None:
    processes = 1 + (int(workers) if int(workers) > 1 else 0)
    service = local_users.create()
    service.write_map({"alice": (moto_s3.access_key, moto_s3.secret_key)})
    bucket = moto_s3.create_bucket()
    base = world_tempdir("s3dsi-svc-logs-")
    try:
        logs, state = base / "log", base / "state"
        logs.mkdir(mode=0o750)  # the unit's LogsDirectory: root's alone
        state.mkdir(mode=0o755)  # the unit's StateDirectory
        main_log, transfer_log, debug_log = logs / "s3dsi.log", logs / "transfer.log", logs / "s3.log"
        gridftp = {"process_user": service.name, "workers": workers, "log_level": "ERROR,WARN",
                   "log_single": str(main_log),
                   "log_transfer": str(transfer_log), "$GLOBUS_S3_DEBUG": f"1023,{debug_log}"}
        config = SiteConfig(base, moto_s3, gridftp=gridftp, s3={"state_dir": str(state)},
                            passwords={"alice": "alice password"}).write()
        served = serve(s3dsi_for_any_user, config.args(), base / "daemon.log")
        try:
            # root made the journal directory the account's before dropping; state_dir stays root's
            assert owner_and_mode(state) == (0, 0o755)
            assert owner_and_mode(state / "uploads") == (service.uid, 0o700)
            c = login(served, "alice", "alice password")
            assert stor(c, f"/{bucket}/one.bin", b"x" * 1000) == 226
            wait_for(debug_log, "PutObject")
            wait_for(transfer_log, "TYPE=STOR")

            # rotation by rename, level and GLOBUS_S3_DEBUG changes: the reload applies all of them
            transfer_log.rename(logs / "transfer.log.1")
            config.gridftp.update({"log_level": "ERROR,WARN,INFO", "$GLOBUS_S3_DEBUG": "0"})
            config.write()
            served.signal(signal.SIGHUP)
            text = reloaded(main_log, processes)  # INFO lines: the new level is in force
            assert "log file not opened" not in text and "Permission denied" not in text
            debug_size = debug_log.stat().st_size
            assert stor(c, f"/{bucket}/two.bin", b"y" * 1000) == 226
            wait_for(transfer_log, "FILE=/" + bucket + "/two.bin")  # a new file, opened by the root helper
            assert debug_log.stat().st_size == debug_size  # S3 debugging is off
            assert "two.bin" not in (logs / "transfer.log.1").read_text()
            assert owner_and_mode(transfer_log) == (0, 0o600)

            # a new log file in the root-only directory: opened by the helper too
            new_log = logs / "moved.log"
            config.gridftp["log_single"] = str(new_log)
            config.write()
            served.signal(signal.SIGHUP)
            assert "log file not opened" not in reloaded(new_log, processes)
            assert owner_and_mode(new_log) == (0, 0o600)
            assert "janitor failed" not in main_log.read_text() + served.log()
            c.close()
        finally:
            code = served.stop()
        assert code == 0, served.log()[-3000:]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_state_dir_the_account_cannot_enter_stops_the_start(local_users: LocalUsers, moto_s3: MotoS3,
                                                              s3dsi_for_any_user: list[str]) -> None:
    service = local_users.create()
    base = world_tempdir("s3dsi-svc-state-")
    try:
        state = base / "state"
        state.mkdir(mode=0o750)  # as StateDirectoryMode=0750 made /var/lib/s3dsi
        config = SiteConfig(base, moto_s3, gridftp={"process_user": service.name},
                            s3={"state_dir": str(state)}).write()
        proc = run([*s3dsi_for_any_user, "serve", *config.args()], timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert f"state_dir: {state}: {service.name} cannot enter it" in proc.stderr
        assert proc.stdout == ""  # never listened
        check = run([*s3dsi_for_any_user, "check-config", *config.args()[:-2]])
        assert check.returncode == 1 and f"{service.name} cannot enter it" in check.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
