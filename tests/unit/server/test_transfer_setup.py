"""Transfer set-up steps of the handlers, with stand-ins for the session and its data channels."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s3dsi.protocol.replies import Reply
from s3dsi.server.data.channels import DataChannels
from s3dsi.server.data.paths import StreamPath


class FakeConnection:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class FakeChannels:
    is_delayed = False
    is_passive = False  # PORT: we connect first, then announce 150

    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn

    async def stream_connection(self) -> FakeConnection:
        return self.conn


async def reply_cancelled(reply: Reply) -> None:
    """A 150 reply that is interrupted (ABOR or control EOF while the reply drains)."""
    raise asyncio.CancelledError


async def test_active_connection_is_not_leaked_when_the_150_reply_is_interrupted() -> None:
    conn = FakeConnection()
    channels: Any = FakeChannels(conn)
    with pytest.raises(asyncio.CancelledError):
        async with StreamPath(channels, reply_cancelled).sending(1):
            pass
    assert conn.aborted  # nobody else holds it: the set-up was consumed


async def test_mode_e_connections_made_before_an_abort_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """ABOR (or control EOF) while the parallel streams of a MODE E send are being opened: the
    connections that were already made belong to nobody and must be closed."""
    made: list[FakeConnection] = []
    hanging = asyncio.Event()

    async def connect(self: DataChannels, address: tuple[str, int]) -> FakeConnection:
        if address[1] == 2:
            hanging.set()
            await asyncio.sleep(3600)  # a peer that does not answer
        conn = FakeConnection()
        made.append(conn)
        return conn

    monkeypatch.setattr(DataChannels, "_connect", connect)
    channels = DataChannels(data_host="127.0.0.1", port_range=None)
    channels.active([("127.0.0.1", 1), ("127.0.0.1", 2)])
    opening = asyncio.ensure_future(channels.mode_e_senders(2))
    await asyncio.wait_for(hanging.wait(), 5)
    await asyncio.sleep(0.01)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    await asyncio.sleep(0.01)
    assert len(made) == 2 and all(c.aborted for c in made)
