"""Two MODE E uploads whose streams ran ahead can hold the whole memory budget in parts neither can
finish (each holds a half-filled higher part, each lowest part waits for a buffer): the pool's
deadlock breaker lends one buffer beyond the budget, and both complete."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend
from tests.functional.server.conftest import MiB, RunningDaemon
from tests.support.daemon import DaemonThread
from tests.support.daemon import test_settings as settings_for_test
from tests.support.ftp_client import Client, block, eod_block, eof_block

PART = 5 * MiB


@pytest.fixture
def tight() -> Iterator[RunningDaemon]:
    backend = MemoryBackend(min_part_size=5 * MiB)
    backend.create_bucket("data")
    settings = settings_for_test(memory_budget=2 * PART, part_size_min=PART, part_size_max=PART,
                                 data_pressure_timeout=0)
    d = DaemonThread(settings, SharedBackend(backend)).start()
    try:
        yield RunningDaemon(d, backend)
    finally:
        d.stop()


def start(daemon: RunningDaemon, name: str) -> tuple[Client, list[socket.socket]]:
    c = daemon.client()
    c.sock.settimeout(60)
    assert c.cmd("TYPE I").code == 200 and c.cmd("MODE E").code == 200
    assert c.cmd(f"ALLO {4 * PART}").code in (200, 202)
    addr = c.pasv()
    c.send(f"STOR /data/{name}")
    assert c.read_reply().code == 150
    return c, [socket.create_connection(addr, timeout=60) for _ in range(2)]


def test_two_uploads_that_hold_the_budget_in_parts_they_cannot_finish_complete(tight: RunningDaemon) -> None:
    data = {name: os.urandom(4 * PART) for name in ("a.bin", "b.bin")}
    transfers = {name: start(tight, name) for name in data}
    for name, (_, conns) in transfers.items():  # each: a stream ran ahead into part 2, half of it
        conns[1].sendall(block(PART, data[name][PART:PART + PART // 2]))
    for name, (_, conns) in transfers.items():  # then everything else, in order, on the first stream
        payload = data[name]
        conns[0].sendall(block(0, payload[:PART]))
    for name, (_, conns) in transfers.items():
        payload = data[name]
        conns[1].sendall(block(PART + PART // 2, payload[PART + PART // 2:2 * PART]) + eod_block())
        conns[0].sendall(block(2 * PART, payload[2 * PART:]) + eof_block(2))
    for name, (c, conns) in transfers.items():
        _, final = c.read_final()
        assert final.code == 226, final
        assert tight.read(f"/data/{name}") == data[name]
        for s in conns:
            s.close()
        c.close()
    assert tight.thread.daemon is not None
    pool = tight.thread.daemon.ctx.pool
    assert pool.overdrafts >= 1
    assert pool.peak_in_use <= pool.budget + PART
