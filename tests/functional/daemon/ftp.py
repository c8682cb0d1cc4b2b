"""Small control-channel helpers over tests.support.ftp_client for the daemon-process tests."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from collections.abc import Sequence

from tests.functional.daemon.conftest import Served
from tests.support.ftp_client import Client, recv_all


def connect(served: Served) -> Client:
    return Client(served.host, served.port, timeout=30)


def try_login(served: Served, user: str, password: str) -> int:
    """The reply code of PASS (230 or 530); the connection is closed again."""
    c = connect(served)
    try:
        assert c.cmd(f"USER {user}").code == 331
        return c.cmd(f"PASS {password}").code
    finally:
        c.close()


def login(served: Served, user: str, password: str) -> Client:
    c = connect(served)
    c.login(user, password)
    assert c.cmd("TYPE I").code == 200
    return c


def stor(c: Client, path: str, data: bytes) -> int:
    host, port = c.pasv()
    assert c.cmd(f"ALLO {len(data)}").code == 200
    c.send(f"STOR {path}")
    with socket.create_connection((host, port)) as s:
        first = c.read_reply()
        assert first.code == 150, first
        s.sendall(data)
    return c.read_final()[1].code


def retr(c: Client, path: str) -> bytes:
    host, port = c.pasv()
    c.send(f"RETR {path}")
    with socket.create_connection((host, port)) as s:
        first = c.read_reply()
        assert first.code == 150, first
        data = recv_all(s)
    final = c.read_final()[1]
    assert final.code == 226, final
    return data


def run(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, cwd="/")


def http_get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return str(response.read().decode())


def metric(text: str, series: str) -> float:
    """The value of one series (``name{labels}`` exactly as exposed) in a Prometheus text exposition."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"{series} not exposed")
