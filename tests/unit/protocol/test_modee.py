from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3dsi.protocol.modee import (
    DESC_CLOSE,
    DESC_EOD,
    DESC_EOF,
    DESC_RESTART,
    HEADER_SIZE,
    BlockDecoder,
    BlockEvent,
    BlockHeader,
    Close,
    DataBlock,
    Eod,
    EodCounter,
    Eof,
    ModeEDecodeError,
    close_header,
    data_header,
    decode_header,
    encode_block,
    encode_header,
    eod_header,
    eof_header,
    iter_blocks,
)


def test_header_layout_is_big_endian() -> None:
    assert HEADER_SIZE == 17
    assert data_header(offset=262144, count=262144) == b"\x00" + (262144).to_bytes(8, "big") * 2
    assert eof_header(3) == b"\x48" + bytes(8) + (3).to_bytes(8, "big")  # GT: desc=0x48 count=0 offset=3
    assert eod_header() == b"\x08" + bytes(16)
    assert close_header() == b"\x04" + bytes(16)
    assert close_header(eod=True)[0] == 0x0C
    header = decode_header(eof_header(5) + b"trailing bytes ignored")
    assert header == BlockHeader(0x48, 0, 5)
    assert header.is_eof
    assert header.is_eod
    assert not header.is_close
    assert header.eod_count == 5
    assert header.payload_length == 0
    assert BlockHeader(0, 10, 7).eod_count is None
    assert BlockHeader(0, 10, 7).payload_length == 10


@pytest.mark.parametrize(("descriptor", "count", "offset"),
                         [(256, 0, 0), (-1, 0, 0), (0, 1 << 64, 0), (0, 0, -1)])
def test_encode_header_rejects_out_of_range(descriptor: int, count: int, offset: int) -> None:
    with pytest.raises(ValueError):
        encode_header(descriptor, count, offset)


def test_decode_header_needs_17_bytes() -> None:
    with pytest.raises(ValueError):
        decode_header(b"\x00" * 16)
    with pytest.raises(ValueError):
        eof_header(0)


def test_decoder_gt_sequence() -> None:
    # RETR small.bin in GT's MODE E with Parallelism=3: one data block then EOF|EOD on conn 1.
    payload = bytes(range(256)) * 10
    stream = encode_block(0, payload) + eof_header(3)
    events = BlockDecoder().feed(stream)
    assert events == [DataBlock(0, payload), Eof(3), Eod()]


def test_decoder_flags_and_zero_length_blocks() -> None:
    decoder = BlockDecoder()
    events = decoder.feed(data_header(5, 0) + encode_block(10, b"abc") + eod_header())
    assert events == [DataBlock(10, b"abc"), Eod()]
    assert decoder.at_boundary
    assert not decoder.closed
    assert decoder.feed(close_header(eod=True)) == [Eod(), Close()]
    assert decoder.closed
    with pytest.raises(ModeEDecodeError):
        decoder.feed(b"\x00")


def test_restart_marker_payload_is_dropped() -> None:
    events = BlockDecoder().feed(encode_header(DESC_RESTART, 4, 0) + b"1234" + encode_block(0, b"x"))
    assert events == [DataBlock(0, b"x")]


def test_decoder_errors() -> None:
    with pytest.raises(ModeEDecodeError):
        BlockDecoder().feed(encode_header(DESC_EOF, 5, 1))
    with pytest.raises(ModeEDecodeError):
        BlockDecoder().feed(encode_header(0, 10, (1 << 64) - 5))


def test_truncated_block_is_not_at_a_boundary() -> None:
    decoder = BlockDecoder()
    decoder.feed(encode_block(0, b"abcdef")[:-2])
    assert not decoder.at_boundary
    decoder = BlockDecoder()
    decoder.feed(eod_header()[:5])
    assert not decoder.at_boundary


def test_large_count_is_streamed_not_buffered() -> None:
    decoder = BlockDecoder()
    events = decoder.feed(data_header(0, 1 << 40) + b"x" * 1000)
    assert events == [DataBlock(0, b"x" * 1000)]
    assert decoder.feed(b"y") == [DataBlock(1000, b"y")]


def test_iter_blocks() -> None:
    data = bytes(range(100))
    blocks = list(iter_blocks(data, offset=1000, block_size=30))
    assert len(blocks) == 4
    assert [decode_header(b).offset for b in blocks] == [1000, 1030, 1060, 1090]
    assert b"".join(b[HEADER_SIZE:] for b in blocks) == data
    with pytest.raises(ValueError):
        list(iter_blocks(b"x", block_size=0))


def test_eod_counter() -> None:
    counter = EodCounter()
    counter.on_eod()
    assert not counter.complete  # EOF not seen yet: more connections may still arrive
    counter.on_eof(2)
    counter.on_eod()
    assert counter.complete
    with pytest.raises(ModeEDecodeError):
        counter.on_eod()
    with pytest.raises(ModeEDecodeError):
        EodCounter().on_eof(0)
    disagree = EodCounter()
    disagree.on_eof(2)
    with pytest.raises(ModeEDecodeError):
        disagree.on_eof(3)


# -- property: a multi-connection MODE E transfer reassembles byte-exact ---------------------------

def _split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=5000),
    block_size=st.integers(1, 700),
    connections=st.integers(1, 5),
    rng=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(0, 10**6), max_size=30),
    zero_blocks=st.integers(0, 3),
)
def test_reassembly_is_byte_exact(data: bytes, block_size: int, connections: int, rng: random.Random,
                                  cuts: list[int], zero_blocks: int) -> None:
    blocks = [(offset, data[offset:offset + block_size]) for offset in range(0, len(data), block_size)]
    rng.shuffle(blocks)
    streams = [bytearray() for _ in range(connections)]
    for offset, chunk in blocks:
        streams[rng.randrange(connections)] += encode_block(offset, chunk)
    for _ in range(zero_blocks):
        streams[rng.randrange(connections)] += data_header(rng.randrange(10**6), 0)
    eof_on = rng.randrange(connections)
    for index in range(connections):
        streams[index] += eof_header(connections) if index == eof_on else eod_header()

    received = bytearray(len(data))
    seen = 0
    counter = EodCounter()
    order: list[tuple[int, BlockEvent]] = []
    decoders = [BlockDecoder() for _ in streams]
    pieces = [(i, piece) for i, stream in enumerate(streams) for piece in _split(bytes(stream), cuts)]
    # Interleave the connections' reads in a random order, keeping each connection's own order.
    queues = [[p for i2, p in pieces if i2 == i] for i in range(connections)]
    while any(queues):
        i = rng.choice([k for k, q in enumerate(queues) if q])
        for event in decoders[i].feed(queues[i].pop(0)):
            order.append((i, event))
            if isinstance(event, DataBlock):
                received[event.offset:event.offset + len(event.payload)] = event.payload
                seen += len(event.payload)
            elif isinstance(event, Eof):
                counter.on_eof(event.eod_count)
            elif isinstance(event, Eod):
                counter.on_eod()
    assert bytes(received) == data
    assert seen == len(data)
    assert counter.complete
    assert counter.received == connections
    assert all(d.at_boundary and not d.closed for d in decoders)
    assert sum(isinstance(e, Eof) for _, e in order) == 1
    assert not any(isinstance(e, Close) for _, e in order)


@given(st.lists(st.tuples(st.sampled_from([0, DESC_EOD, DESC_CLOSE | DESC_EOD, DESC_EOF | DESC_EOD]),
                          st.binary(max_size=50), st.integers(0, 2**40)), max_size=8),
       st.lists(st.integers(0, 10**5), max_size=10))
def test_decoder_split_invariance(blocks: list[tuple[int, bytes, int]], cuts: list[int]) -> None:
    stream = bytearray()
    for descriptor, payload, offset in blocks:
        if descriptor & DESC_EOF:
            stream += encode_header(descriptor, 0, offset or 1)
        elif descriptor & DESC_CLOSE:
            stream += encode_header(descriptor, 0, 0)
            break
        else:
            stream += encode_header(descriptor, len(payload), offset) + payload
    whole = BlockDecoder().feed(bytes(stream))
    decoder = BlockDecoder()
    pieces: list[BlockEvent] = []
    for piece in _split(bytes(stream), cuts):
        pieces += decoder.feed(piece)

    assert _summary(pieces) == _summary(whole)
    assert decoder.at_boundary


def _summary(events: list[BlockEvent]) -> tuple[dict[int, int], list[BlockEvent]]:
    """Bytes by file offset, and the non-data events in order: what must not depend on the split."""
    data: dict[int, int] = {}
    others: list[BlockEvent] = []
    for event in events:
        if isinstance(event, DataBlock):
            data.update((event.offset + k, byte) for k, byte in enumerate(event.payload))
        else:
            others.append(event)
    return data, others
