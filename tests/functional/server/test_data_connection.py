"""DataConnection on loopback, under asyncio and uvloop: bytes and EOF that arrive before a reader is
attached (a client that sends as soon as it has connected) are held and handed to the reader."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from s3dsi.server.data.connection import DataConnection

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


class Collect:
    """A ConnectionReader that takes everything into a bytearray, ``chunk`` bytes per buffer."""

    def __init__(self, chunk: int = 1000) -> None:
        self.data = bytearray()
        self.eof = asyncio.get_running_loop().create_future()
        self._buf = bytearray(chunk)
        self.lost: list[BaseException | None] = []

    def bind(self, conn: DataConnection) -> None:
        pass

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buf)

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self._buf[:nbytes]

    def eof_received(self) -> None:
        if not self.eof.done():
            self.eof.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


def run(loop_name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> list[dict[str, Any]]:
    """Run ``main`` on a fresh loop of that kind; returns what the loop's exception handler saw."""
    seen: list[dict[str, Any]] = []
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.get_loop().set_exception_handler(lambda _loop, context: seen.append(context))
        runner.run(main())
    return seen


async def _accepted_after_client_sent(payload: bytes, *, close: bool) -> tuple[DataConnection, socket.socket]:
    loop = asyncio.get_running_loop()
    accepted: asyncio.Queue[DataConnection] = asyncio.Queue()
    server = await loop.create_server(lambda: DataConnection(accepted.put_nowait), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(payload)
    if close:
        client.shutdown(socket.SHUT_WR)
    conn = await asyncio.wait_for(accepted.get(), 10)
    await asyncio.sleep(0.2)  # let the loop read whatever it reads before anyone attaches
    server.close()
    return conn, client


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_data_and_eof_before_attach_reach_the_reader(loop_name: str) -> None:
    payload = bytes(range(256)) * 300  # more than the 64 KiB held at first

    async def main() -> None:
        conn, client = await _accepted_after_client_sent(payload, close=True)
        reader = Collect()
        conn.attach(reader)
        await asyncio.wait_for(reader.eof, 10)
        assert bytes(reader.data) == payload
        conn.close()
        client.close()

    assert run(loop_name, main) == []


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_early_bytes_then_more_after_attach_keep_order(loop_name: str) -> None:
    first, second = b"A" * 5000, b"B" * 300_000

    async def main() -> None:
        conn, client = await _accepted_after_client_sent(first, close=False)
        reader = Collect(chunk=4096)
        conn.attach(reader)
        await asyncio.get_running_loop().run_in_executor(None, client.sendall, second)
        client.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(reader.eof, 10)
        assert bytes(reader.data) == first + second
        conn.close()
        client.close()

    assert run(loop_name, main) == []


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_peer_close_on_a_connection_nobody_reads_is_quiet(loop_name: str) -> None:
    """A MODE E sender's cached connection: the client closes it; no 'Fatal error on transport'."""

    async def main() -> None:
        conn, client = await _accepted_after_client_sent(b"", close=False)
        client.close()
        await asyncio.sleep(0.2)  # uvloop reads (and sees the EOF) even though nobody attached
        conn.close()
        await asyncio.wait_for(asyncio.shield(conn.lost), 10)

    assert run(loop_name, main) == []


def _read_until_closed(sock: socket.socket) -> bytes:
    out = bytearray()
    try:
        while chunk := sock.recv(1 << 20):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return bytes(out)


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_cancelled_send_never_sends_that_memory_later(loop_name: str) -> None:
    """ABOR or a failed MODE E stream cancels a send whose bytes the transport still holds; the chunk's
    pool buffer is then lent to another transfer. uvloop keeps references to written buffers, so the
    connection must not go on sending from that memory: whatever was interrupted is dropped."""

    async def main() -> None:
        conn, client = await _accepted_after_client_sent(b"", close=False)
        client.settimeout(3)
        buf = bytearray(b"A" * (32 << 20))  # more than loopback socket buffers hold
        sending = asyncio.ensure_future(conn.send((memoryview(buf),)))
        await asyncio.sleep(0.2)
        assert not sending.done()  # the client reads nothing yet: the transport holds the rest
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        buf[:] = b"X" * len(buf)  # the pool lends the memory to someone else
        received = await asyncio.get_running_loop().run_in_executor(None, _read_until_closed, client)
        assert b"X" not in received
        assert conn.transport is not None and conn.transport.is_closing()
        assert not conn.reusable
        client.close()

    run(loop_name, main)
