"""Properties of the production MODE E receive path: ``DataConnection`` → ``BlockReader`` →
``BlockDecoder`` (the one codec) → ``EodCounter`` → the sink, driven the way the event loop drives a
``BufferedProtocol`` (``get_buffer`` / ``buffer_updated`` with arbitrary read sizes), with random
block orders, the EOF first, connections that attach late or send before anyone listens, a sink that
pauses streams, and broken EOD counts."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3dsi.protocol.errors import DataChannelError
from s3dsi.protocol.modee import DESC_EOF, data_header, encode_block, encode_header, eod_header, eof_header
from s3dsi.server.data.connection import DataConnection
from s3dsi.server.data.receive import Receive


class FakeTransport:
    """What DataConnection asks of a transport; reading can be paused like a real one."""

    def __init__(self) -> None:
        self.reading = True
        self.closed = False

    def set_write_buffer_limits(self, high: int = 0, low: int = 0) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class PausingSink:
    """An upload sink over a bytearray that refuses room now and then (the stream must pause)."""

    def __init__(self, size: int, rng: random.Random, pause_rate: float) -> None:
        self.data = bytearray(size)
        self.seen = bytearray(size)  # 1 where a byte was written
        self.rng = rng
        self.pause_rate = pause_rate
        self.granted: set[int] = set()

    def get_buffer(self, offset: int, max_len: int) -> memoryview | None:
        if offset not in self.granted and self.rng.random() < self.pause_rate:
            return None
        self.granted.discard(offset)
        end = min(len(self.data), offset + max_len)
        return memoryview(self.data)[offset:end]

    def data_received(self, offset: int, nbytes: int) -> None:
        self.seen[offset:offset + nbytes] = b"\x01" * nbytes

    async def wait_for_space(self, offset: int) -> None:
        await asyncio.sleep(0)
        self.granted.add(offset)

    def is_stalled(self) -> bool:
        return False


class Wire:
    """One connection's bytes, delivered in random read sizes while its transport reads."""

    def __init__(self, stream: bytes) -> None:
        self.conn = DataConnection()
        self.transport = FakeTransport()
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]
        self.transport.reading = True  # uvloop reads right after connection_made whatever it asked
        self.pending = memoryview(stream)

    def step(self, rng: random.Random) -> bool:
        """Deliver one read if the transport reads and bytes are left; True if something moved."""
        if not self.pending or not self.transport.reading or self.transport.closed:
            return False
        buf = self.conn.get_buffer(-1)
        n = min(len(buf), len(self.pending), rng.choice([1, 3, 17, 100, 4096, 1 << 20]))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.conn.buffer_updated(n)
        return True


def streams_for(data: bytes, block: int, connections: int, rng: random.Random, *,
                eof_count: int | None = None, eof_first: bool = False) -> list[bytes]:
    blocks = [(o, data[o:o + block]) for o in range(0, len(data), block)]
    rng.shuffle(blocks)
    streams = [bytearray() for _ in range(connections)]
    for offset, chunk in blocks:
        streams[rng.randrange(connections)] += encode_block(offset, chunk)
    for _ in range(rng.randrange(3)):
        streams[rng.randrange(connections)] += data_header(rng.randrange(len(data) + 1), 0)
    eof_on = rng.randrange(connections)
    if eof_first:  # the EOF|EOD on a connection that carries nothing else
        streams.append(bytearray())
        eof_on = len(streams) - 1
    count = len(streams) if eof_count is None else eof_count
    for index in range(len(streams)):
        streams[index] += eof_header(count) if index == eof_on else eod_header()
    if eof_first:
        streams.insert(0, streams.pop())
    return [bytes(s) for s in streams]


async def drive(streams: list[bytes], sink: PausingSink, rng: random.Random, *,
                late: int = 0) -> Receive:
    """Connections attach in order, ``late`` of them only after the others delivered some bytes;
    some deliver bytes before they are attached (a client that sends as soon as it connects)."""
    receive = Receive(sink, mode_e=True)
    receive.done.add_done_callback(lambda f: f.cancelled() or f.exception())  # the test reads it
    wires = [Wire(s) for s in streams]
    attached: list[Wire] = []
    waiting = list(wires)
    for wire in waiting[:len(wires) - late]:
        if rng.random() < 0.3:
            wire.step(rng)  # early bytes, held by the connection until a reader attaches
        receive.attach(wire.conn)
        attached.append(wire)
    waiting = waiting[len(wires) - late:]
    for _ in range(100_000):
        if receive.done.done():
            break
        moved = [w for w in attached if w.step(rng)] if rng.random() < 0.9 else []
        if waiting and (not moved or rng.random() < 0.05):
            wire = waiting.pop(0)
            wire.step(rng)
            receive.attach(wire.conn)
            attached.append(wire)
        await asyncio.sleep(0)  # paused readers' wait_for_space tasks run
        if not moved and not waiting and not any(w.pending for w in attached):
            for _ in range(5):
                await asyncio.sleep(0)
            if receive.done.done() or not any(w.transport.reading is False for w in attached):
                break
    return receive


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=6000), block=st.integers(1, 900),
       connections=st.integers(1, 5), late=st.integers(0, 4), eof_first=st.booleans(),
       pause_rate=st.sampled_from([0.0, 0.2, 0.6]), rng=st.randoms(use_true_random=False))
def test_any_order_any_split_reassembles_byte_exact(data: bytes, block: int, connections: int, late: int,
                                                    eof_first: bool, pause_rate: float,
                                                    rng: random.Random) -> None:
    streams = streams_for(data, block, connections, rng, eof_first=eof_first)
    sink = PausingSink(len(data), rng, pause_rate)

    async def go() -> Receive:
        receive = await drive(streams, sink, rng, late=min(late, len(streams) - 1))
        receive.detach_all()
        return receive

    receive = run(go())
    assert receive.done.done() and receive.done.exception() is None
    assert bytes(sink.data) == data
    assert sink.seen == b"\x01" * len(data)
    assert receive.eods.complete and receive.eods.received == len(streams)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=2000), connections=st.integers(2, 4),
       short=st.integers(1, 3), rng=st.randoms(use_true_random=False))
def test_eof_announcing_fewer_connections_than_send_eods_fails(data: bytes, connections: int, short: int,
                                                                 rng: random.Random) -> None:
    count = max(1, connections - short)
    streams = streams_for(data, 300, connections, rng, eof_count=count)
    receive = run(drive(streams, PausingSink(len(data), rng, 0.0), rng))
    # the sender is broken: either more EODs than announced arrived before the count was reached (the
    # transfer fails), or the announced count was reached first (it ends there, as the reference's)
    assert receive.done.done()
    assert receive.eods.received >= count
    failure = receive.done.exception()
    assert failure is None or (isinstance(failure, DataChannelError) and "EOD" in str(failure))


@pytest.mark.parametrize("stream", [
    eof_header(1).replace(b"\x00" * 7 + b"\x01", b"\x00" * 8),  # EOF announcing zero connections
    encode_header(DESC_EOF, 5, 1) + b"12345",  # an EOF block that carries data
    encode_header(0x04, 0, 0) + encode_block(0, b"late"),  # data after CLOSE
])
def test_broken_streams_fail_the_transfer(stream: bytes) -> None:
    rng = random.Random(1)
    receive = run(drive([stream], PausingSink(16, rng, 0.0), rng))
    assert isinstance(receive.done.exception(), DataChannelError)


def test_two_eofs_that_disagree_fail_the_transfer() -> None:
    rng = random.Random(2)
    streams = [encode_block(0, b"ab") + eof_header(2), encode_block(2, b"cd") + eof_header(3)]
    receive = run(drive(streams, PausingSink(4, rng, 0.0), rng))
    assert isinstance(receive.done.exception(), DataChannelError)


def test_more_connections_than_announced_never_complete_early() -> None:
    """EOF says 3, only 2 connections ever send EOD: the transfer waits (a third may still connect)."""
    rng = random.Random(3)
    streams = [encode_block(0, b"ab") + eof_header(3), encode_block(2, b"cd") + eod_header()]
    receive = run(drive(streams, PausingSink(4, rng, 0.0), rng))
    assert not receive.done.done()
    assert receive.eods.received == 2 and receive.eods.expected == 3
