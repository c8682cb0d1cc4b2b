"""``workers 2``: one daemon, two session-serving processes behind one acceptor (daemon/workers.py).

Sessions spread over both (checked by PID in ``s3dsi status``), each worker with half the memory budget
and its own part of ``port_range``; the guarantees of the single-process daemon hold across workers:
an interrupted upload leaves nothing (its client killed: aborted at once; its worker killed: replaced, and
the janitor finds the upload from its record), the connection limits and the login throttle count over
both, SIGTERM lets running transfers finish within ``shutdown_grace``, SIGHUP reaches every worker
(tests/functional/daemon/test_service_user.py runs the service-user model with workers too).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.daemon.conftest import (
    IS_ROOT,
    Served,
    SiteConfig,
    children_of,
    free_port,
    serve,
    world_tempdir,
)
from tests.functional.daemon.ftp import connect, http_get, login, metric, run, stor
from tests.support.ftp_client import Client
from tests.support.moto_server import MotoS3

MiB = 1024 * 1024
PYTHON = [sys.executable, "-m", "s3dsi"]
BUDGET = 64 * MiB
PORTS = (52100, 52139)


@pytest.fixture
def site(moto_s3: MotoS3) -> Iterator[SiteConfig]:
    base = world_tempdir("s3dsi-workers-")
    home = base / "home"
    (home / ".globus").mkdir(parents=True, mode=0o700)
    map_file = home / ".globus" / "s3"
    map_file.write_text(f"alice;{moto_s3.access_key};{moto_s3.secret_key}\n")
    map_file.chmod(0o600)
    gridftp = {"workers": "2", "port_range": f"{PORTS[0]},{PORTS[1]}"}
    if IS_ROOT:
        gridftp["allow_root"] = "1"
    config = SiteConfig(base, moto_s3, gridftp=gridftp,
                        s3={"s3_map_filename": str(map_file), "shutdown_grace": "30",
                            "state_dir": str(base / "state"), "memory_budget": "64M",
                            "metrics_listen": f"127.0.0.1:{free_port()}"},
                        passwords={"alice": "alice password"})
    try:
        yield config.write()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def status(site: SiteConfig) -> dict[str, Any]:
    proc = run([*PYTHON, "status", "--json", "--socket", str(site.admin_socket)])
    assert proc.returncode == 0, proc.stderr
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def eventually(probe: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Workers report to their parent once a second: status and metrics may lag by that."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def sessions_by_pid(site: SiteConfig) -> dict[str, int]:
    return {s["id"]: s["pid"] for s in status(site)["sessions"]}


def metrics(site: SiteConfig) -> str:
    return http_get(f"http://{site.s3['metrics_listen']}/metrics")


def metric_is(site: SiteConfig, series: str, value: float) -> bool:
    try:
        return metric(metrics(site), series) == value
    except AssertionError:  # not exposed yet
        return False


def pending(moto_s3: MotoS3, bucket: str) -> list[str]:
    return [u["Key"] for u in moto_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def start_upload(c: Client, path: str, size: int) -> socket.socket:
    """A stream-mode STOR with ALLO: the data connection, once 150 came."""
    host, port = c.pasv()
    assert c.cmd(f"ALLO {size}").code == 200
    c.send(f"STOR {path}")
    data = socket.create_connection((host, port))
    assert c.read_reply().code == 150
    return data


def test_sessions_spread_over_both_workers_with_their_own_shares(site: SiteConfig, moto_s3: MotoS3) -> None:
    bucket = moto_s3.create_bucket()
    served = serve(PYTHON, site.args(), site.root / "daemon.log")
    try:
        clients = [login(served, "alice", "alice password") for _ in range(4)]
        eventually(lambda: len(status(site)["sessions"]) == 4, "four sessions in the status")
        document = status(site)
        workers = document["workers"]
        pids = {w["pid"] for w in workers}
        assert len(workers) == 2 and len(pids) == 2 and served.pid not in pids
        assert pids <= set(children_of(served.pid))
        by_session = {s["id"]: s["pid"] for s in document["sessions"]}
        assert set(by_session.values()) == pids, "every worker serves sessions"
        assert sorted(w["sessions"] for w in workers) == [2, 2]
        # the memory budget is split: the workers together never lend more than memory_budget
        assert [w["buffer_budget"] for w in workers] == [BUDGET // 2, BUDGET // 2]
        # each worker its own passive ports: client i is session i
        index_of = {w["pid"]: w["index"] for w in workers}
        half = (PORTS[1] - PORTS[0] + 1) // 2
        for number, c in enumerate(clients, start=1):
            _, port = c.pasv()
            index = index_of[by_session[f"{number:06d}"]]
            assert PORTS[0] + index * half <= port < PORTS[0] + (index + 1) * half, (number, index, port)

        # uploads on both workers at once; memory stays within the budget
        data = [os.urandom(12 * MiB), os.urandom(12 * MiB)]
        conns = [start_upload(clients[i], f"/{bucket}/w{i}.bin", len(data[i])) for i in (0, 1)]
        for i in (0, 1):
            conns[i].sendall(data[i][:6 * MiB])
        eventually(lambda: sum(w["transfers"] for w in status(site)["workers"]) == 2, "two transfers")
        assert sum(w["buffer_in_use"] for w in status(site)["workers"]) <= BUDGET
        for i in (0, 1):
            conns[i].sendall(data[i][6 * MiB:])
            conns[i].close()
            assert clients[i].read_final()[1].code == 226
        for i in (0, 1):
            assert moto_s3.client().get_object(Bucket=bucket, Key=f"w{i}.bin")["Body"].read() == data[i]

        eventually(lambda: metric_is(site, 's3dsi_transfer_bytes_total{direction="in"}', 24 * MiB),
                   "the workers' counters, added up")
        text = metrics(site)
        assert metric(text, "s3dsi_buffer_budget_bytes") == BUDGET
        assert metric(text, "s3dsi_sessions") == 4
        assert metric(text, "s3dsi_sessions_opened_total") == 4
        assert metric(text, 's3dsi_worker_sessions{worker="0"}') == 2
        assert metric(text, 's3dsi_worker_sessions{worker="1"}') == 2
        assert metric(text, 's3dsi_worker_cpu_seconds_total{worker="1"}') > 0
        for c in clients:
            c.close()
    finally:
        assert served.stop() == 0, served.log()[-3000:]


def test_an_interrupted_upload_leaves_nothing_whichever_worker_served_it(site: SiteConfig,
                                                                          moto_s3: MotoS3) -> None:
    bucket = moto_s3.create_bucket()
    served = serve(PYTHON, site.args(), site.root / "daemon.log")
    try:
        first = login(served, "alice", "alice password")
        second = login(served, "alice", "alice password")
        eventually(lambda: len(set(sessions_by_pid(site).values())) == 2, "one session on each worker")
        pids = sessions_by_pid(site)

        # the client dies mid-upload: its multipart upload is aborted at once
        conn = start_upload(second, f"/{bucket}/dropped.bin", 20 * MiB)
        conn.sendall(os.urandom(12 * MiB))
        eventually(lambda: bool(pending(moto_s3, bucket)), "the multipart upload")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        second.close()
        eventually(lambda: not pending(moto_s3, bucket), "the upload to be aborted")

        # the worker dies mid-upload (SIGKILL): it is replaced, and the janitor finds what it left
        conn = start_upload(first, f"/{bucket}/killed.bin", 20 * MiB)
        conn.sendall(os.urandom(12 * MiB))
        eventually(lambda: bool(pending(moto_s3, bucket)), "the multipart upload")
        victim = pids["000001"]
        os.kill(victim, signal.SIGKILL)
        conn.close()
        first.close()
        eventually(lambda: len(status(site)["workers"]) == 2 and victim not in
                   {w["pid"] for w in status(site)["workers"]}, "a replacement worker")
        assert [w["sessions"] for w in status(site)["workers"]] == [0, 0], "the lost session was released"
        janitor = run([*PYTHON, "janitor", *site.args()[:-2], "--max-age", "0"])
        assert janitor.returncode == 0, janitor.stdout + janitor.stderr
        assert pending(moto_s3, bucket) == []
        assert moto_s3.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0

        # and the daemon serves on, on both workers
        again = [login(served, "alice", "alice password") for _ in range(2)]
        assert stor(again[1], f"/{bucket}/after.bin", b"x" * MiB) == 226
        for c in again:
            c.close()
    finally:
        assert served.stop() == 0, served.log()[-3000:]


def test_limits_and_login_delays_count_over_both_workers(site: SiteConfig) -> None:
    site.gridftp["connections_max_per_address"] = "3"
    site.write()
    served = serve(PYTHON, site.args(), site.root / "daemon.log")
    try:
        held = [connect(served) for _ in range(3)]
        assert all(c.greeting.code == 220 for c in held)
        refused = connect(served)
        assert refused.greeting.code == 421 and "from your address" in refused.greeting.text
        refused.close()
        held.pop().close()  # its worker tells the parent, which counts it no more

        def admitted() -> bool:
            probe = connect(served)
            probe.close()
            return probe.greeting.code == 220

        eventually(admitted, "the released slot")
        for c in held:
            c.close()
        eventually(lambda: sum(w["sessions"] for w in status(site)["workers"]) == 0, "every slot released")

        # a failed login on one worker slows the next PASS on the other
        wrong, right = connect(served), connect(served)
        assert wrong.cmd("USER alice").code == 331
        assert wrong.cmd("PASS not the password").code == 530
        started = time.monotonic()
        assert right.cmd("USER alice").code == 331 and right.cmd("PASS alice password").code == 230
        assert time.monotonic() - started >= 0.9  # one counted failure: every reply waits 1 s
        eventually(lambda: len(sessions_by_pid(site)) == 2, "the sessions in the status")
        assert len(set(sessions_by_pid(site).values())) == 2, "the two logins ran on different workers"
        wrong.close()
        right.close()
    finally:
        assert served.stop() == 0, served.log()[-3000:]


def test_sigterm_lets_transfers_finish_on_every_worker(site: SiteConfig, moto_s3: MotoS3) -> None:
    bucket = moto_s3.create_bucket()
    served = serve(PYTHON, site.args(), site.root / "daemon.log")
    try:
        busy = [login(served, "alice", "alice password") for _ in range(2)]
        idle = [login(served, "alice", "alice password") for _ in range(2)]
        eventually(lambda: sorted(w["sessions"] for w in status(site)["workers"]) == [2, 2], "the sessions")
        data = [os.urandom(9 * MiB), os.urandom(9 * MiB)]
        conns = [start_upload(busy[i], f"/{bucket}/graceful{i}.bin", len(data[i])) for i in (0, 1)]
        for i in (0, 1):
            conns[i].sendall(data[i][:3 * MiB])
        served.signal(signal.SIGTERM)
        for c in idle:
            assert c.read_reply().lines == ["421 Service shutting down."]
        with pytest.raises(OSError):  # no new connections
            connect(served).cmd("NOOP")
        for i in (0, 1):
            conns[i].sendall(data[i][3 * MiB:])
            conns[i].close()
            assert busy[i].read_reply().code == 226
            assert busy[i].read_reply().code == 421
        assert served.proc.wait(30) == 0
    finally:
        served.stop()
    for i in (0, 1):
        assert moto_s3.client().get_object(Bucket=bucket, Key=f"graceful{i}.bin")["Body"].read() == data[i]
    assert pending(moto_s3, bucket) == []


def test_a_reload_reaches_every_worker(site: SiteConfig) -> None:
    served: Served = serve(PYTHON, site.args(), site.root / "daemon.log")
    try:
        before = connect(served)
        site.gridftp["banner"] = "Reloaded banner"
        site.passwords["bob"] = "bob password"
        site.write()
        map_file = Path(site.s3["s3_map_filename"])
        map_file.write_text(map_file.read_text() + map_file.read_text().replace("alice;", "bob;"))
        served.signal(signal.SIGHUP)
        eventually(lambda: served.log().count("configuration reloaded") >= 3, "the parent's and both reloads")
        after = [connect(served), connect(served)]  # one on each worker (the first holds `before`'s)
        for c in after:
            assert "Reloaded banner" in c.greeting.text
            c.login("bob", "bob password")
        eventually(lambda: len(sessions_by_pid(site)) == 3, "the sessions in the status")
        assert len(set(sessions_by_pid(site).values())) == 2
        assert "Reloaded banner" not in before.greeting.text
        for c in (before, *after):
            c.close()
    finally:
        assert served.stop() == 0, served.log()[-3000:]
