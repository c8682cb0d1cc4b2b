"""MODE E (extended block mode): the one codec of the daemon's data path, sans-IO.

Header: descriptor byte, then big-endian u64 byte count and u64 offset (``HEADER``). The EOF header
reuses the offset field for the EOD count (the number of data connections the sender used); GT sends
it combined with EOD (0x48) with count 0 and no payload.

``BlockDecoder`` is the only parser of received blocks, one per data connection, and it lends memory
instead of copying: between blocks it lends its own 17-byte header buffer (``header_space``); inside a
block it says where the payload belongs (``payload_offset``, ``payload_remaining``) and the caller
receives those bytes into memory of its choosing (a view into the right S3 part buffer), then reports
how many arrived (``header_received`` / ``payload_received``). ``feed`` drives the same state machine
from a byte string, for tests and for byte sources that cannot receive in place.

``EodCounter`` is the completion rule shared by all connections of one transfer: done when the number
of EODs equals the count the EOF announced (the EOF may come first, on any connection).

The rules, in one place:
* a block's EOF/EOD/CLOSE flags take effect after its payload (a sender may flag its last data block);
* zero-length data blocks are allowed and mean nothing;
* a restart-marker block (0x10, which GFD.020 says not to use in MODE E) carries marker text, not file
  data: its payload is consumed and dropped (``payload_is_data`` is False);
* the 0x20 "suspected errors" and 0x80 EOR bits are ignored;
* errors (``ModeEDecodeError``): an EOF header with a non-zero byte count (its offset field is the EOD
  count, it cannot place data), a block reaching beyond 2**64, any byte after a CLOSE header, an EOF
  announcing zero connections, two EOFs that disagree, more EODs than announced.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

HEADER: Final = struct.Struct(">BQQ")
HEADER_SIZE: Final = HEADER.size
_U64_LIMIT: Final = 1 << 64

DESC_EOR: Final = 0x80
DESC_EOF: Final = 0x40
DESC_ERRORS: Final = 0x20
DESC_RESTART: Final = 0x10
DESC_EOD: Final = 0x08
DESC_CLOSE: Final = 0x04


class ModeEDecodeError(Exception):
    """The peer sent a byte stream that is not valid MODE E."""


@dataclass(frozen=True)
class BlockHeader:
    descriptor: int
    count: int
    offset: int

    @property
    def is_eof(self) -> bool:
        return bool(self.descriptor & DESC_EOF)

    @property
    def is_eod(self) -> bool:
        return bool(self.descriptor & DESC_EOD)

    @property
    def is_close(self) -> bool:
        return bool(self.descriptor & DESC_CLOSE)

    @property
    def is_restart(self) -> bool:
        return bool(self.descriptor & DESC_RESTART)

    @property
    def eod_count(self) -> int | None:
        """The announced number of EODs for an EOF header, else None."""
        return self.offset if self.is_eof else None

    @property
    def payload_length(self) -> int:
        """Bytes that follow this header on the wire (EOF headers carry none)."""
        return 0 if self.is_eof else self.count


# -- encoding --------------------------------------------------------------------------------------

def encode_header(descriptor: int, count: int, offset: int) -> bytes:
    if not 0 <= descriptor <= 0xFF:
        raise ValueError(f"descriptor out of range: {descriptor}")
    if not (0 <= count < _U64_LIMIT and 0 <= offset < _U64_LIMIT):
        raise ValueError("count and offset must fit in an unsigned 64-bit integer")
    return HEADER.pack(descriptor, count, offset)


def decode_header(buf: bytes | bytearray | memoryview) -> BlockHeader:
    """The header in the first 17 bytes of ``buf``."""
    if len(buf) < HEADER_SIZE:
        raise ValueError(f"need {HEADER_SIZE} bytes, got {len(buf)}")
    descriptor, count, offset = HEADER.unpack_from(buf)
    return BlockHeader(descriptor, count, offset)


def data_header(offset: int, count: int) -> bytes:
    """The header of a data block (the sender's hot path: no range checks beyond struct's own)."""
    return HEADER.pack(0, count, offset)


def eof_header(eod_count: int) -> bytes:
    """EOF combined with EOD (0x48), count 0, offset = number of connections used, as GT sends it."""
    if eod_count < 1:
        raise ValueError("the EOD count is at least 1")
    return encode_header(DESC_EOF | DESC_EOD, 0, eod_count)


def eod_header() -> bytes:
    """Bare EOD (0x08) for every connection other than the one that carried the EOF."""
    return encode_header(DESC_EOD, 0, 0)


def close_header(*, eod: bool = False) -> bytes:
    """CLOSE (0x04), or EOD|CLOSE (0x0C) when the connection's last transfer ends with it."""
    return encode_header(DESC_CLOSE | (DESC_EOD if eod else 0), 0, 0)


def encode_block(offset: int, payload: bytes | bytearray | memoryview) -> bytes:
    """One data block: header and payload."""
    return data_header(offset, len(payload)) + bytes(payload)


def iter_blocks(data: bytes | bytearray | memoryview, *, offset: int = 0,
                block_size: int = 256 * 1024) -> Iterator[bytes]:
    """``data`` (file bytes starting at ``offset``) as encoded data blocks of at most ``block_size``."""
    if block_size < 1:
        raise ValueError("block_size must be positive")
    view = memoryview(data)
    for start in range(0, len(view), block_size):
        chunk = view[start:start + block_size]
        yield data_header(offset + start, len(chunk)) + bytes(chunk)


# -- decoding --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataBlock:
    """Payload bytes at a file offset (``feed`` only: in-place receiving reports no data events)."""

    offset: int
    payload: bytes


@dataclass(frozen=True)
class Eof:
    eod_count: int


@dataclass(frozen=True)
class Eod:
    pass


@dataclass(frozen=True)
class Close:
    pass


BlockEvent = DataBlock | Eof | Eod | Close
_NONE: Final[tuple[BlockEvent, ...]] = ()
_EOD: Final = Eod()
_CLOSE: Final = Close()


class BlockDecoder:
    """The decoder of one data connection's MODE E byte stream (see the module docstring)."""

    __slots__ = ("_closed", "_descriptor", "_eof_count", "_header", "_hpos", "_hview", "_position",
                 "_remaining")

    def __init__(self) -> None:
        self._header = bytearray(HEADER_SIZE)
        self._hview = memoryview(self._header)
        self._hpos = 0
        self._remaining = 0  # payload bytes left in the current block
        self._position = 0  # file offset of the next payload byte
        self._descriptor = 0
        self._eof_count = 0
        self._closed = False

    # -- where the next bytes go ---------------------------------------------------------------
    @property
    def in_payload(self) -> bool:
        return self._remaining > 0

    @property
    def payload_offset(self) -> int:
        """File offset of the next payload byte (valid while ``in_payload``)."""
        return self._position

    @property
    def payload_remaining(self) -> int:
        return self._remaining

    @property
    def payload_is_data(self) -> bool:
        """False for the payload of a restart-marker block: marker text, to be dropped."""
        return not self._descriptor & DESC_RESTART

    def header_space(self) -> memoryview:
        """The rest of the header buffer, to receive into (valid while not ``in_payload``)."""
        if self._closed:
            raise ModeEDecodeError("data after a CLOSE header")
        return self._hview[self._hpos:]

    @property
    def at_boundary(self) -> bool:
        """True between blocks: a TCP close here is clean, anywhere else it truncated a block."""
        return self._hpos == 0 and self._remaining == 0

    @property
    def closed(self) -> bool:
        """A CLOSE header was received: the sender will close this connection."""
        return self._closed

    # -- bytes arrived -------------------------------------------------------------------------
    def header_received(self, n: int) -> tuple[BlockEvent, ...]:
        """``n`` bytes landed in ``header_space()``; the events of a block without payload, if any."""
        self._hpos += n
        if self._hpos < HEADER_SIZE:
            return _NONE
        self._hpos = 0
        descriptor, count, offset = HEADER.unpack(self._header)
        self._descriptor = descriptor
        if descriptor & DESC_EOF:
            if count:
                raise ModeEDecodeError("EOF block with a non-zero byte count")
            self._eof_count = offset
            return self._end_of_block()
        if offset + count > _U64_LIMIT:
            raise ModeEDecodeError("block extends beyond 2**64")
        if count:
            self._remaining = count
            self._position = offset
            return _NONE
        return self._end_of_block()

    def payload_received(self, n: int) -> tuple[BlockEvent, ...]:
        """``n`` payload bytes arrived (where ``payload_offset`` said); the block's events at its end."""
        if n > self._remaining:
            raise ValueError("more payload than the block holds")
        self._remaining -= n
        self._position += n
        return _NONE if self._remaining else self._end_of_block()

    def _end_of_block(self) -> tuple[BlockEvent, ...]:
        descriptor = self._descriptor
        if not descriptor & (DESC_EOF | DESC_EOD | DESC_CLOSE):
            return _NONE
        events: list[BlockEvent] = []
        if descriptor & DESC_EOF:
            events.append(Eof(self._eof_count))
        if descriptor & DESC_EOD:
            events.append(_EOD)
        if descriptor & DESC_CLOSE:
            events.append(_CLOSE)
            self._closed = True
        return tuple(events)

    def feed(self, data: bytes | bytearray | memoryview) -> list[BlockEvent]:
        """Decode any split of the stream; payload comes out as ``DataBlock`` copies."""
        events: list[BlockEvent] = []
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._remaining:
                take = min(self._remaining, n - i)
                if self.payload_is_data:
                    events.append(DataBlock(self._position, bytes(view[i:i + take])))
                i += take
                events += self.payload_received(take)
                continue
            space = self.header_space()
            take = min(len(space), n - i)
            space[:take] = view[i:i + take]
            i += take
            events += self.header_received(take)
        return events


class EodCounter:
    """Completion of one MODE E receive: done when #EOD equals the count announced by EOF.

    Shared by all connections of a transfer. More EODs than announced, an EOF announcing none, or two
    EOFs that disagree mean the sender is broken (ModeEDecodeError).
    """

    __slots__ = ("expected", "received")

    def __init__(self) -> None:
        self.expected: int | None = None
        self.received = 0

    def on_event(self, event: BlockEvent) -> None:
        if isinstance(event, Eof):
            self.on_eof(event.eod_count)
        elif isinstance(event, Eod):
            self.on_eod()

    def on_eof(self, eod_count: int) -> None:
        if eod_count < 1:
            raise ModeEDecodeError("EOF announced zero data connections")
        if self.expected is not None and self.expected != eod_count:
            raise ModeEDecodeError("conflicting EOF counts from the sender")
        self.expected = eod_count
        self._check()

    def on_eod(self) -> None:
        self.received += 1
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.received > self.expected:
            raise ModeEDecodeError(f"{self.received} EODs but the EOF announced {self.expected}")

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.received == self.expected
