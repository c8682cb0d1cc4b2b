"""MODE E (extended block mode) framing: the 17-byte header, an incremental decoder, encoders.

Header: descriptor byte, then big-endian u64 byte count and u64 offset. The EOF header reuses the
offset field for the EOD count (the number of data connections the sender used); GT sends it
combined with EOD (0x48) with count 0 and no payload. A receiver is done when it has seen as many
EODs (a 0x48 counts as one) as the EOF announced — ``EodCounter`` keeps that account.

Decoder choices: data payloads are emitted as they arrive, possibly split into several
``DataBlock`` events with consecutive offsets, so memory stays bounded whatever the count field
says; zero-length data blocks produce no event; payloads of restart-marker blocks (0x10, which
GFD.020 says not to use in MODE E) are consumed and dropped; the 0x20 "suspected errors" and 0x80
EOR bits are ignored; an EOF header with a non-zero count, bytes after a CLOSE, and an offset+count
beyond 2**64 are errors (``ModeEDecodeError``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

HEADER_SIZE: Final = 17
_HEADER = struct.Struct(">BQQ")
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


def encode_header(descriptor: int, count: int, offset: int) -> bytes:
    if not 0 <= descriptor <= 0xFF:
        raise ValueError(f"descriptor out of range: {descriptor}")
    if not (0 <= count < _U64_LIMIT and 0 <= offset < _U64_LIMIT):
        raise ValueError("count and offset must fit in an unsigned 64-bit integer")
    return _HEADER.pack(descriptor, count, offset)


def decode_header(buf: bytes | bytearray | memoryview) -> BlockHeader:
    """The header in the first 17 bytes of ``buf``."""
    if len(buf) < HEADER_SIZE:
        raise ValueError(f"need {HEADER_SIZE} bytes, got {len(buf)}")
    descriptor, count, offset = _HEADER.unpack_from(buf)
    return BlockHeader(descriptor, count, offset)


def data_header(offset: int, count: int) -> bytes:
    return encode_header(0, count, offset)


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


class BlockDecoder:
    """Incremental decoder for one data connection: ``feed`` any split of the stream, get events."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._current: BlockHeader | None = None
        self._remaining = 0
        self._position = 0  # file offset of the next payload byte of the current block
        self._closed = False

    @property
    def at_boundary(self) -> bool:
        """True between blocks: a TCP close here is clean, anywhere else it truncated a block."""
        return not self._header and self._current is None

    @property
    def closed(self) -> bool:
        """A CLOSE header was received: the sender will close this connection."""
        return self._closed

    def feed(self, data: bytes | bytearray | memoryview) -> list[BlockEvent]:
        events: list[BlockEvent] = []
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._closed:
                raise ModeEDecodeError("data after a CLOSE header")
            if self._current is None:
                take = min(HEADER_SIZE - len(self._header), n - i)
                self._header += view[i:i + take]
                i += take
                if len(self._header) == HEADER_SIZE:
                    header = decode_header(self._header)
                    self._header.clear()
                    self._start(header, events)
                continue
            take = min(self._remaining, n - i)
            if not self._current.is_restart:
                events.append(DataBlock(self._position, bytes(view[i:i + take])))
            i += take
            self._position += take
            self._remaining -= take
            if self._remaining == 0:
                self._finish(self._current, events)
        return events

    def _start(self, header: BlockHeader, events: list[BlockEvent]) -> None:
        if header.is_eof and header.count:
            raise ModeEDecodeError("EOF header with a non-zero byte count")
        if header.offset + header.payload_length > _U64_LIMIT:
            raise ModeEDecodeError("block extends beyond 2**64")
        if header.payload_length:
            self._current = header
            self._remaining = header.payload_length
            self._position = header.offset
            return
        self._finish(header, events)

    def _finish(self, header: BlockHeader, events: list[BlockEvent]) -> None:
        self._current = None
        if header.is_eof:
            events.append(Eof(header.offset))
        if header.is_eod:
            events.append(Eod())
        if header.is_close:
            events.append(Close())
            self._closed = True


class EodCounter:
    """Completion of one MODE E receive: done when #EOD equals the count announced by EOF.

    Shared by all connections of a transfer (and stripe). More EODs than announced, or two EOFs
    that disagree, mean the sender is broken (ModeEDecodeError).
    """

    def __init__(self) -> None:
        self.expected: int | None = None
        self.received = 0

    def on_eof(self, eod_count: int) -> None:
        if eod_count < 1:
            raise ModeEDecodeError("EOF announced zero data connections")
        if self.expected is not None and self.expected != eod_count:
            raise ModeEDecodeError("two EOF blocks with different EOD counts")
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
