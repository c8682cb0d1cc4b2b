"""Fixtures: the daemon in a thread over an in-memory back end (fast) and over the moto S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend
from tests.support.daemon import TEST_PASSWORD, TEST_USER, DaemonThread, test_settings
from tests.support.ftp_client import Client

MiB = 1024 * 1024


@dataclass
class RunningDaemon:
    thread: DaemonThread
    backend: MemoryBackend

    @property
    def address(self) -> tuple[str, int]:
        return self.thread.host, self.thread.port

    def read(self, path: str) -> bytes:
        info = self.backend.head_object(path)
        buf = bytearray(info.size)
        if info.size:
            self.backend.read_range(info, 0, memoryview(buf))
        return bytes(buf)

    def client(self, login: bool = True) -> Client:
        c = Client(*self.address)
        if login:
            c.login(TEST_USER, TEST_PASSWORD)
        return c


@pytest.fixture
def memory_daemon() -> Iterator[RunningDaemon]:
    backend = MemoryBackend(min_part_size=5 * MiB)
    backend.create_bucket("data")
    d = DaemonThread(test_settings(), SharedBackend(backend)).start()
    try:
        yield RunningDaemon(d, backend)
    finally:
        d.stop()
