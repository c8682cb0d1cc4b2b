"""ABOR sent as TCP urgent data: the control socket keeps urgent bytes inline, so the line still ends.

Python's ftplib sends the whole ``ABOR\\r\\n`` with MSG_OOB (the LF is the urgent byte); the Globus
client marks the Telnet DM that follows IAC IP. Without SO_OOBINLINE the kernel drops the urgent byte
from the stream: ftplib's ABOR then never gets its LF and the session hangs.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest

from tests.functional.server.conftest import MiB, RunningDaemon
from tests.support.ftp_client import Client


def _start_upload(c: Client, path: str) -> socket.socket:
    host, port = c.pasv()
    c.send(f"STOR {path}")
    s = socket.create_connection((host, port))
    r = c.read_reply()
    assert r.code == 150, r
    return s


def _ftplib_style(sock: socket.socket) -> None:
    sock.sendall(b"ABOR\r\n", socket.MSG_OOB)


def _globus_style(sock: socket.socket) -> None:
    sock.sendall(b"\xff\xf4")
    sock.sendall(b"\xff\xf2", socket.MSG_OOB)
    sock.sendall(b"ABOR\r\n")


@pytest.mark.parametrize("send_abor", [_ftplib_style, _globus_style], ids=["ftplib", "globus"])
def test_urgent_abor_during_upload(memory_daemon: RunningDaemon,
                                   send_abor: Callable[[socket.socket], None]) -> None:
    b = memory_daemon.backend
    b.put_object("/data/urgent.bin", memoryview(b"original"))
    c = memory_daemon.client()
    c.sock.settimeout(10)
    s = _start_upload(c, "/data/urgent.bin")
    s.sendall(os.urandom(7 * MiB))
    send_abor(c.sock)
    r1 = c.read_reply()
    r2 = c.read_reply()
    assert r1.code == 426, r1
    assert r2.lines == ["226 Abort successful"]
    s.close()
    assert c.cmd("NOOP").code == 200
    deadline = time.monotonic() + 10
    while b.list_uploads("/data/urgent.bin"):
        assert time.monotonic() < deadline, "multipart upload left behind"
        time.sleep(0.05)
    assert memory_daemon.read("/data/urgent.bin") == b"original"
    c.close()


def test_urgent_abor_with_nothing_running(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    c.sock.settimeout(10)
    _ftplib_style(c.sock)
    assert c.read_reply().lines == ["226 Abort successful"]
    assert c.cmd("NOOP").code == 200
    c.close()
