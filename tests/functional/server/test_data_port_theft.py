"""A stranger on another address (127.0.0.2) cannot attach to a session's passive data port: not to
read a download, not to replace an upload's content, not to add MODE E blocks or an early EOF.
Listeners stop accepting once their transfer has its connections, and SPOR cannot fan out."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from s3dsi.protocol.parsing import MAX_SPOR_ADDRESSES
from s3dsi.server.data.channels import MAX_PARALLELISM
from tests.functional.server.conftest import MiB, RunningDaemon
from tests.support.ftp_client import block, closed_by_peer, eod_block, eof_block, recv_all

THIEF = "127.0.0.2"


def steal(addr: tuple[str, int]) -> socket.socket:
    """Connect to the victim's passive port from another address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((THIEF, 0))
    sock.connect(addr)
    return sock


def refused_within(addr: tuple[str, int], timeout: float) -> bool:
    """True once a connection to ``addr`` is refused, polling until ``timeout`` (a busy daemon may
    take a moment to see the connection that closes its listener)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(addr, timeout=10).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.1)
    return False


def test_a_thief_connecting_first_gets_nothing_of_a_download(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(60_000)
    memory_daemon.backend.put_object("/data/secret.bin", memoryview(data))
    c = memory_daemon.client()
    c.cmd("TYPE I")
    addr = c.pasv()
    thief = steal(addr)  # first, before the victim
    time.sleep(0.2)
    c.send("RETR /data/secret.bin")
    victim = socket.create_connection(addr, timeout=10)
    got = recv_all(victim)
    _, final = c.read_final()
    assert final.code == 226, final
    assert got == data
    assert closed_by_peer(thief)  # closed at once, never attached: not one byte
    thief.close()
    c.close()


def test_a_thief_cannot_replace_the_content_of_an_upload(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(200_000)
    c = memory_daemon.client()
    c.cmd("TYPE I")
    addr = c.pasv()
    thief = steal(addr)
    try:
        thief.sendall(b"thief's content" * 1000)
    except OSError:
        pass
    time.sleep(0.2)
    c.send("STOR /data/upload.bin")
    assert c.read_reply().code == 150
    victim = socket.create_connection(addr, timeout=10)
    victim.sendall(data)
    victim.close()
    _, final = c.read_final()
    assert final.code == 226, final
    assert memory_daemon.read("/data/upload.bin") == data
    thief.close()
    c.close()


def test_a_thief_cannot_add_mode_e_blocks_or_an_early_eof(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(6 * MiB)
    c = memory_daemon.client()
    assert c.cmd("TYPE I").code == 200 and c.cmd("MODE E").code == 200
    addr = c.pasv()
    c.send("STOR /data/modee.bin")
    assert c.read_reply().code == 150
    thief = steal(addr)
    try:  # its own bytes at offset 0, and an EOF announcing a single connection
        thief.sendall(block(0, b"X" * 4096) + eof_block(1))
    except OSError:
        pass
    time.sleep(0.2)
    conns = [socket.create_connection(addr, timeout=10) for _ in range(2)]
    half = len(data) // 2
    conns[0].sendall(block(0, data[:half]) + eof_block(2))
    conns[1].sendall(block(half, data[half:]) + eod_block())
    _, final = c.read_final()
    assert final.code == 226, final
    assert memory_daemon.read("/data/modee.bin") == data
    assert closed_by_peer(thief)
    for s in (thief, *conns):
        s.close()
    c.close()


def test_a_stream_listener_stops_accepting_once_its_connection_arrived(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    c.cmd("TYPE I")
    addr = c.pasv()
    first = socket.create_connection(addr, timeout=10)
    assert refused_within(addr, 5.0)
    first.close()
    c.close()


def test_a_mode_e_listener_stops_accepting_once_the_eof_count_is_reached(
        memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    assert c.cmd("TYPE I").code == 200 and c.cmd("MODE E").code == 200
    addr = c.pasv()
    c.send("STOR /data/two.bin")
    assert c.read_reply().code == 150
    a = socket.create_connection(addr, timeout=10)
    a.sendall(block(0, b"a" * 10) + eof_block(2))
    b = socket.create_connection(addr, timeout=10)
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(addr, timeout=10).close()
    b.sendall(block(10, b"b" * 10) + eod_block())
    _, final = c.read_final()
    assert final.code == 226, final
    assert memory_daemon.read("/data/two.bin") == b"a" * 10 + b"b" * 10
    a.close()
    b.close()
    c.close()


def test_spor_cannot_fan_out(memory_daemon: RunningDaemon) -> None:
    """15 addresses × Parallelism=64 used to open 960 connections; the cap is MAX_PARALLELISM in all."""
    memory_daemon.backend.put_object("/data/fan.bin", memoryview(os.urandom(2 * MiB)))
    c = memory_daemon.client()
    assert c.cmd("TYPE I").code == 200 and c.cmd("MODE E").code == 200
    assert c.cmd("OPTS RETR Parallelism=64,64,64;").code == 200
    listeners = []
    for _ in range(15):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(128)
        listeners.append(ls)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept(ls: socket.socket) -> None:
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = ls.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            threading.Thread(target=recv_all, args=(conn,), daemon=True).start()

    threads = [threading.Thread(target=accept, args=(ls,), daemon=True) for ls in listeners]
    for t in threads:
        t.start()
    numbers = [ls.getsockname()[1] for ls in listeners]
    ports = " ".join(f"127,0,0,1,{n // 256},{n % 256}" for n in numbers)
    assert c.cmd(f"SPOR {ports}").code == 200
    c.send("RETR /data/fan.bin")
    _, final = c.read_final()
    stop.set()
    for t in threads:
        t.join()
    assert final.code == 226, final
    assert 15 <= len(accepted) <= MAX_PARALLELISM
    too_many = " ".join(["127,0,0,1,4,1"] * (MAX_SPOR_ADDRESSES + 1))
    assert c.cmd(f"SPOR {too_many}").code == 501
    for s in (*accepted, *listeners):
        s.close()
    c.close()
