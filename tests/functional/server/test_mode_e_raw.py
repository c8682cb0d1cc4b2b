"""MODE E at the block level with a hand-driven client: ordering, EOF accounting, reuse, memory."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time

import pytest

from s3dsi.server.data.channels import MAX_ACCEPTED
from tests.functional.server.conftest import MiB, RunningDaemon
from tests.support.ftp_client import (
    Client,
    ModeEReceiver,
    accept_mode_e,
    assemble,
    block,
    closed_by_peer,
    connect_many,
    eod_block,
    eof_block,
)


def _mode_e(c: Client) -> None:
    assert c.cmd("TYPE I").code == 200
    assert c.cmd("MODE E").code == 200


def test_out_of_order_blocks_eof_first_and_late_connection(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(12 * MiB + 333)
    c = memory_daemon.client()
    _mode_e(c)
    addr = c.pasv()
    c.send("STOR /data/ooo.bin")
    first = c.read_reply()
    assert first.code == 150
    conn1 = socket.create_connection(addr)
    # EOF (announcing 3 streams) arrives before any data, on the first connection
    conn1.sendall(eof_block(3))
    blocks = [(off, data[off:off + 256 * 1024]) for off in range(0, len(data), 256 * 1024)]
    odd, even = blocks[1::2], blocks[0::2]
    conn2 = socket.create_connection(addr)
    for off, payload in reversed(odd):  # backwards within a connection too
        conn2.sendall(block(off, payload))
    conn2.sendall(eod_block())
    time.sleep(0.3)
    prelim_seen: list[str] = []
    # third, late connection carries the rest
    conn3 = socket.create_connection(addr)
    for off, payload in even:
        conn3.sendall(block(off, payload))
    conn3.sendall(eod_block())
    prelim, final = c.read_final()
    prelim_seen = [r.lines[0] for r in prelim]
    assert final.lines == ["226 Transfer Complete."], final
    assert prelim_seen[0].startswith("112-Perf Marker")
    ranges = [r for r in prelim if r.code == 111]
    assert ranges and ranges[-1].lines[0].startswith("111 Range Marker")
    covered = set()
    for r in ranges:
        for part in r.lines[0].split()[-1].split(","):
            a, b = (int(x) for x in part.split("-"))
            covered.add((a, b))
    assert sum(b - a for a, b in covered) == len(data)
    assert memory_daemon.read("/data/ooo.bin") == data
    for s in (conn1, conn2, conn3):
        s.close()
    c.close()


def test_connections_are_reused_with_125(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    _mode_e(c)
    addr = c.pasv()
    conns = connect_many(addr, 2)
    c.send("STOR /data/r1.bin")
    assert c.read_reply().code == 150
    conns[1].sendall(block(5, b"56789"))
    conns[0].sendall(block(0, b"01234") + eof_block(2))
    conns[1].sendall(eod_block())
    _, final = c.read_final()
    assert final.code == 226
    c.send("STOR /data/r2.bin")
    assert c.read_reply().lines == ["125 Beginning transfer; reusing existing data connection."]
    conns[0].sendall(block(0, b"again") + eod_block())
    conns[1].sendall(eof_block(2))
    _, final = c.read_final()
    assert final.code == 226
    assert memory_daemon.read("/data/r1.bin") == b"0123456789"
    assert memory_daemon.read("/data/r2.bin") == b"again"
    c.close()


def test_connection_closed_before_eod_fails_and_session_survives(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    _mode_e(c)
    addr = c.pasv()
    c.send("STOR /data/broken.bin")
    assert c.read_reply().code == 150
    s = socket.create_connection(addr)
    s.sendall(block(0, b"x" * 1000))
    s.close()
    _, final = c.read_final()
    assert final.code >= 400
    assert c.cmd("NOOP").code == 200
    assert not memory_daemon.backend.list_uploads("/data/broken.bin")
    c.close()


def test_mode_e_direction_rules(memory_daemon: RunningDaemon) -> None:
    memory_daemon.backend.put_object("/data/h.txt", memoryview(b"hello"))
    c = memory_daemon.client()
    _mode_e(c)
    c.pasv()
    r = c.cmd("RETR /data/h.txt")
    assert r.code == 500, r  # MODE E downloads need PORT: the sender connects
    lsock, port_cmd = c.port_listener()
    assert c.cmd(port_cmd).code == 200
    r = c.cmd("STOR /data/x.bin")
    assert r.code == 500, r  # MODE E uploads need PASV
    lsock.close()
    c.close()


def test_mode_e_download_parallel_eret_and_rest(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(9 * MiB + 77)
    memory_daemon.backend.put_object("/data/big.bin", memoryview(data))
    c = memory_daemon.client()
    _mode_e(c)
    assert c.cmd("OPTS RETR Parallelism=3,3,3;").code == 200
    lsock, port_cmd = c.port_listener()
    assert c.cmd(port_cmd).code == 200
    sink = ModeEReceiver(lsock)

    def fetch(cmd: str, expect: str) -> list:
        result: dict[str, list] = {}
        t = threading.Thread(target=lambda: result.setdefault("s", sink.receive()))
        t.start()
        c.send(cmd)
        first = c.read_reply()
        assert first.lines[0].startswith(expect), first
        _, final = c.read_final()
        assert final.code == 226, final
        t.join(30)
        return result["s"]

    streams = fetch("RETR /data/big.bin", "150")
    assert len(streams) == 3
    assert [s.eof_count for s in streams if s.eof_count is not None] == [3]
    assert assemble(streams) == data
    # cached connections: the next transfer reuses them (125); ERET offsets start at 0
    streams = fetch("ERET P 1000 5000 /data/big.bin", "125")
    assert assemble(streams) == data[1000:6000]
    assert c.cmd("REST 0-1000000,2000000-9000000").code == 350
    streams = fetch("RETR /data/big.bin", "125")
    got = {off: payload for st in streams for _d, off, payload in st.blocks}
    assert sum(len(p) for p in got.values()) == 1000000 + len(data) - 9000000
    for off, payload in got.items():
        assert payload == data[off:off + len(payload)]
        assert 1000000 <= off < 2000000 or off >= 9000000
    sink.close()
    c.close()


def test_stalled_stream_cannot_push_memory_past_budget(memory_daemon: RunningDaemon) -> None:
    """Blocks far beyond the window: the daemon pauses that stream (payload stays in the kernel),
    never buffers past its budget, and fails the transfer as too far out of order."""
    pool = memory_daemon.thread.daemon.ctx.pool if memory_daemon.thread.daemon else None
    assert pool is not None
    budget = memory_daemon.thread.settings.memory_budget
    c = memory_daemon.client()
    _mode_e(c)
    addr = c.pasv()
    assert c.cmd(f"ALLO {200 * MiB}").code == 200
    c.send("STOR /data/stall.bin")
    assert c.read_reply().code == 150
    s = socket.create_connection(addr)
    s.setblocking(True)
    payload = b"z" * MiB
    peak = 0
    stop = threading.Event()

    def writer() -> None:
        # skip part 1 entirely; send everything after it
        try:
            for off in range(100 * MiB, 200 * MiB, MiB):
                if stop.is_set():
                    return
                s.sendall(block(off, payload))
        except OSError:
            return

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    replies: dict[str, object] = {}
    reader = threading.Thread(target=lambda: replies.setdefault("r", c.read_final()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 25
    while reader.is_alive() and time.monotonic() < deadline:
        peak = max(peak, pool.in_use)
        time.sleep(0.01)
    stop.set()
    s.close()
    assert "r" in replies, "the daemon neither failed nor finished the stalled transfer"
    _, final = replies["r"]  # type: ignore[misc]
    assert final.code >= 400
    assert "out of order" in final.text
    assert peak <= budget
    assert c.cmd("NOOP").code == 200
    c.close()


def test_mode_e_listing(memory_daemon: RunningDaemon) -> None:
    memory_daemon.backend.put_object("/data/l/a.txt", memoryview(b"a"))
    c = memory_daemon.client()
    _mode_e(c)
    lsock, port_cmd = c.port_listener()
    assert c.cmd(port_cmd).code == 200
    result: dict[str, list] = {}
    t = threading.Thread(target=lambda: result.setdefault("s", accept_mode_e(lsock, 1)))
    t.start()
    c.send("MLSD /data/l")
    _, final = c.read_final()
    assert final.code == 226
    t.join(30)
    text = assemble(result["s"]).decode()
    assert text.endswith("\r\n")
    assert " a.txt\r\n" in text
    lsock.close()
    c.close()


_ = struct  # keep the import for readers building headers by hand


@pytest.mark.timeout(20)
def test_eod_and_close_on_a_block_that_carries_data(memory_daemon: RunningDaemon) -> None:
    """A sender may mark its last data block itself with EOD (or EOD|CLOSE) instead of sending an empty
    EOD block after it: that connection's EOD counts once the block's payload is in."""
    c = memory_daemon.client()
    c.sock.settimeout(10)
    _mode_e(c)
    addr = c.pasv()
    conns = connect_many(addr, 2)
    c.send("STOR /data/eodblock.bin")
    assert c.read_reply().code == 150
    conns[0].sendall(block(0, b"01234") + eof_block(2))
    conns[1].sendall(block(5, b"567") + block(8, b"89", desc=0x08 | 0x04))
    _, final = c.read_final()
    assert final.code == 226, final
    assert memory_daemon.read("/data/eodblock.bin") == b"0123456789"
    for s in conns:
        s.close()
    c.close()


def test_restart_marker_block_payload_is_not_file_data(memory_daemon: RunningDaemon) -> None:
    """GFD.020 says not to send restart markers (0x10) in MODE E; one that comes anyway carries marker
    text, never bytes of the file: it must not be written into the object."""
    c = memory_daemon.client()
    c.sock.settimeout(10)
    _mode_e(c)
    addr = c.pasv()
    s = socket.create_connection(addr)
    c.send("STOR /data/marker.bin")
    assert c.read_reply().code == 150
    s.sendall(block(0, b"0123456789") + block(2, b"XY", desc=0x10) + eof_block(1))
    _, final = c.read_final()
    assert final.code == 226, final
    assert memory_daemon.read("/data/marker.bin") == b"0123456789"
    s.close()
    c.close()


def _closed_among(socks: list[socket.socket], wait: float) -> set[socket.socket]:
    readable, _, _ = select.select(socks, [], [], wait)
    return {s for s in readable if closed_by_peer(s)}


def test_data_connections_per_setup_are_capped(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    _mode_e(c)
    addr = c.pasv()
    socks = connect_many(addr, MAX_ACCEPTED + 20)
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + 10
    while len(closed) < 20 and time.monotonic() < deadline:
        closed |= _closed_among(socks, 0.5)  # only closed connections become readable
    closed |= _closed_among(socks, 0.5)  # and no more than the 20 over the cap
    assert len(closed) == 20
    for s in socks:
        s.close()
    assert c.cmd("NOOP").code == 200
    c.close()
