"""Silent clients cannot freeze other users' transfers: a data-inactivity timeout fails a silent
upload or a download nobody reads, and frees its buffers; a stalled transfer that holds memory
another transfer waits for gives it back (``data_pressure_timeout``)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend
from tests.functional.server.conftest import MiB, RunningDaemon
from tests.support.daemon import DaemonThread
from tests.support.daemon import test_settings as settings_for_test
from tests.support.ftp_client import Client


def daemon_with(**overrides: object) -> Iterator[RunningDaemon]:
    backend = MemoryBackend(min_part_size=5 * MiB)
    backend.create_bucket("data")
    d = DaemonThread(settings_for_test(**overrides), SharedBackend(backend)).start()
    try:
        yield RunningDaemon(d, backend)
    finally:
        d.stop()


@pytest.fixture
def pressured() -> Iterator[RunningDaemon]:
    """64 MiB of part buffers; silent holders give them back after 2 s of pressure."""
    yield from daemon_with(memory_budget=64 * MiB, data_pressure_timeout=2, data_idle_timeout=120)


@pytest.fixture
def impatient() -> Iterator[RunningDaemon]:
    yield from daemon_with(data_idle_timeout=2, data_pressure_timeout=0)


def in_use(daemon: RunningDaemon) -> int:
    assert daemon.thread.daemon is not None
    return daemon.thread.daemon.ctx.pool.in_use


def wait_for(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def stall_an_upload(daemon: RunningDaemon, name: str, allo: int) -> tuple[Client, socket.socket]:
    """ALLO a huge file (so each part is large), send one byte, then nothing."""
    c = daemon.client()
    c.sock.settimeout(60)
    assert c.cmd("TYPE I").code == 200
    assert c.cmd(f"ALLO {allo}").code in (200, 202)
    addr = c.pasv()
    c.send(f"STOR /data/{name}")
    assert c.read_reply().code == 150
    data = socket.create_connection(addr, timeout=60)
    data.sendall(b"x")
    return c, data


def upload(daemon: RunningDaemon, name: str, payload: bytes) -> int:
    c = daemon.client()
    c.sock.settimeout(60)
    c.cmd("TYPE I")
    addr = c.pasv()
    c.send(f"STOR /data/{name}")
    assert c.read_reply().code == 150
    with socket.create_connection(addr, timeout=60) as data:
        data.sendall(payload)
    _, final = c.read_final()
    c.close()
    return final.code


def test_stalled_uploads_holding_large_parts_do_not_freeze_another_users_upload(
        pressured: RunningDaemon) -> None:
    stalled = [stall_an_upload(pressured, f"huge-{i}", 300_000_000_000) for i in range(3)]
    assert wait_for(lambda: in_use(pressured) > 32 * MiB)  # the stalled ones hold most of the pool
    payload = os.urandom(24 * MiB)
    started = time.monotonic()
    assert upload(pressured, "victim.bin", payload) == 226
    assert time.monotonic() - started < 45
    assert pressured.read("/data/victim.bin") == payload
    codes = []
    for c, data in stalled:  # the silent ones that held memory were failed, with a reason
        _, final = c.read_final() if wait_for(lambda c=c: _readable(c.sock), 30) else ([], None)
        if final is not None:
            codes.append((final.code, final.text))
        data.close()
        c.close()
    assert codes and all(code == 426 for code, _ in codes), codes
    assert any("waited for the memory" in text for _, text in codes), codes
    assert wait_for(lambda: in_use(pressured) == 0)


def _readable(sock: socket.socket) -> bool:
    import select  # noqa: PLC0415

    return bool(select.select([sock], [], [], 0)[0])


def test_a_silent_upload_times_out_and_frees_its_buffers(impatient: RunningDaemon) -> None:
    c, data = stall_an_upload(impatient, "silent.bin", 50 * MiB)
    assert wait_for(lambda: in_use(impatient) > 0)
    _, final = c.read_final()
    assert final.code == 426 and "No data moved" in final.text, final
    assert wait_for(lambda: in_use(impatient) == 0)
    with pytest.raises(Exception):
        impatient.read("/data/silent.bin")
    assert c.cmd("NOOP").code == 200  # the session goes on
    data.close()
    c.close()


def retr_nobody_reads(daemon: RunningDaemon) -> tuple[Client, socket.socket]:
    """A session whose RETR of /data/big.bin has begun on a data connection that is never read."""
    c = daemon.client()
    c.sock.settimeout(60)
    c.cmd("TYPE I")
    addr = c.pasv()
    c.send("RETR /data/big.bin")
    assert c.read_reply().code == 150
    data = socket.socket()
    data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    data.connect(addr)
    return c, data


def test_a_download_nobody_reads_times_out_and_frees_its_buffers(impatient: RunningDaemon) -> None:
    impatient.backend.put_object("/data/big.bin", memoryview(os.urandom(40 * MiB)))
    c, data = retr_nobody_reads(impatient)
    _, final = c.read_final()
    assert final.code == 426 and "No data moved" in final.text, final
    assert wait_for(lambda: in_use(impatient) == 0)
    assert c.cmd("NOOP").code == 200
    data.close()
    c.close()


def test_downloads_nobody_reads_do_not_freeze_an_upload(pressured: RunningDaemon) -> None:
    pressured.backend.put_object("/data/big.bin", memoryview(os.urandom(80 * MiB)))
    readers: list[tuple[Client, socket.socket]] = []
    for _ in range(4):
        readers.append(retr_nobody_reads(pressured))
    assert wait_for(lambda: in_use(pressured) >= 48 * MiB)
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(upload(pressured, "up.bin", os.urandom(30 * MiB))))
    worker.start()
    worker.join(60)
    assert done == [226]
    for c, data in readers:
        data.close()
        c.close()
