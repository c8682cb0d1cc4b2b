"""The daemon's shared context: the namespace pool follows the threads rule, and the session hook."""

from __future__ import annotations

import asyncio

import pytest

from s3dsi.config.settings import Settings
from s3dsi.identity.auth import Authenticator
from s3dsi.server.app import Daemon
from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend


def daemon(settings: Settings) -> Daemon:
    return Daemon(settings, authenticator=Authenticator(None), backends=SharedBackend(MemoryBackend()))


@pytest.mark.parametrize(("threads", "pool"), [(1, 2), (2, 2), (5, 5)])
def test_the_namespace_pool_runs_at_least_two_threads(threads: int, pool: int) -> None:
    d = daemon(Settings(threads=threads))
    try:
        assert d.ctx.namespace_pool._max_workers == pool
    finally:
        d.ctx.workers.shutdown()
        d.ctx.namespace_pool.shutdown()


async def test_every_session_served_calls_the_session_hook() -> None:
    d = daemon(Settings(port=0, control_interface="127.0.0.1", connections_max=1))
    opened: list[None] = []
    d.ctx.on_session_opened = lambda: opened.append(None)
    host, port = (await d.start())[0]
    try:
        reader, writer = await asyncio.open_connection(host, port)
        assert (await reader.readline()).startswith(b"220")
        refused_reader, refused_writer = await asyncio.open_connection(host, port)  # over connections_max
        assert (await refused_reader.readline()).startswith(b"421")
        refused_writer.close()
        assert len(opened) == 1
        writer.write(b"QUIT\r\n")
        await writer.drain()
        await reader.read()
        writer.close()
    finally:
        await d.stop()
