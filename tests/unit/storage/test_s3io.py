"""The zero-copy body helpers: MemoryviewBody for uploads, read_body_into for downloads."""

from __future__ import annotations

import io
import os

import crc32c

from s3dsi.storage.s3io import MemoryviewBody, crc32c_base64, crc32c_of, read_body_into


def test_crc32c_header_form() -> None:
    assert crc32c_base64(0x364B3FB7) == "Nks/tw=="
    assert crc32c_of(memoryview(b"abc")) == crc32c.crc32c(b"abc") == 0x364B3FB7


def test_memoryview_body_reads_large_slices_without_copying() -> None:
    data = bytearray(os.urandom(3 * 1024 * 1024 + 5))
    body = MemoryviewBody(memoryview(data))
    assert len(body) == len(data)
    assert body.seekable()
    assert body.readable()
    chunk = body.read(16384)
    assert isinstance(chunk, memoryview)
    assert len(chunk) == 1024 * 1024
    data[0] ^= 0xFF
    assert chunk[0] == data[0]  # a view of the caller's buffer, not a copy
    rest = []
    while piece := body.read(16384):
        rest.append(bytes(piece))
    assert bytes(chunk) + b"".join(rest) == bytes(data)
    assert body.tell() == len(data)


def test_memoryview_body_seek_and_read_all_for_retries() -> None:
    body = MemoryviewBody(memoryview(b"0123456789"))
    assert bytes(body.read()) == b"0123456789"
    assert body.seek(0) == 0
    assert bytes(body.read(-1)) == b"0123456789"
    assert body.seek(-3, io.SEEK_END) == 7
    assert bytes(body.read()) == b"789"
    assert body.seek(100) == 10
    assert bytes(body.read()) == b""
    body.seek(2)
    target = bytearray(3)
    assert body.readinto(target) == 3
    assert bytes(target) == b"234"


def test_memoryview_body_accepts_non_byte_formats() -> None:
    words = memoryview(bytearray(8)).cast("I")
    assert len(MemoryviewBody(words)) == 8


class _FallbackBody:
    """A body without urllib3 underneath: read_body_into must use the public readinto."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def readinto(self, view: memoryview) -> int:
        return self._stream.readinto(view[:3])  # short reads on purpose


def test_read_body_into_falls_back_to_public_readinto() -> None:
    buffer = bytearray(10)
    assert read_body_into(_FallbackBody(b"abcdefgh"), memoryview(buffer)) == 8
    assert bytes(buffer[:8]) == b"abcdefgh"
