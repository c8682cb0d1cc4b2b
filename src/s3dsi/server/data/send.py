"""Sending data (file contents or listings) over stream-mode or MODE E data connections.

A ``ChunkSource`` hands out chunks in offset order; in MODE E every connection runs its own sender
loop pulling from the same source, so blocks leave on all streams at once, each framed with its
offset. At the end one connection carries EOF (with the number of connections as EOD count) and every
other one a bare EOD; connections stay open for reuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from s3dsi.protocol.modee import data_header, eod_header, eof_header
from s3dsi.server.data.connection import DataConnection


def _noop() -> None:
    return None


@dataclass
class Chunk:
    offset: int
    data: memoryview | bytes
    release: Callable[[], None] = _noop


class ChunkLike(Protocol):
    @property
    def offset(self) -> int: ...

    @property
    def data(self) -> memoryview | bytes: ...

    def release(self) -> None: ...


class ChunkSource(Protocol):
    async def next_chunk(self) -> ChunkLike | None: ...


class Progress:
    """Bytes handed to the kernel, for perf markers and transfer logs."""

    def __init__(self) -> None:
        self.nbytes = 0


class BytesSource:
    """Chunks from an async iterator of byte strings (listings), offsets counted from 0."""

    def __init__(self, pages: AsyncIterator[bytes]) -> None:
        self._pages = pages
        self._offset = 0
        self._lock = asyncio.Lock()

    async def next_chunk(self) -> Chunk | None:
        async with self._lock:
            while True:
                try:
                    data = await self._pages.__anext__()
                except StopAsyncIteration:
                    return None
                if data:
                    chunk = Chunk(self._offset, data)
                    self._offset += len(data)
                    return chunk


async def send_stream(conn: DataConnection, source: ChunkSource, progress: Progress) -> None:
    """Stream mode: payload bytes in order, then close (EOF marks the end of the file)."""
    while True:
        chunk = await source.next_chunk()
        if chunk is None:
            break
        try:
            await conn.send((chunk.data,))
            progress.nbytes += len(chunk.data)
        finally:
            chunk.release()
    await conn.finish_stream()


async def send_mode_e(conns: Sequence[DataConnection], source: ChunkSource, progress: Progress,
                      *, offset_shift: int = 0) -> None:
    """MODE E: all connections send blocks concurrently; then EOF on one, EOD on the others."""

    async def pump(conn: DataConnection) -> None:
        while True:
            chunk = await source.next_chunk()
            if chunk is None:
                return
            try:
                await conn.send((data_header(chunk.offset - offset_shift, len(chunk.data)), chunk.data))
                progress.nbytes += len(chunk.data)
            finally:
                chunk.release()

    tasks = [asyncio.ensure_future(pump(c)) for c in conns]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    await conns[0].send((eof_header(len(conns)),))
    for conn in conns[1:]:
        await conn.send((eod_header(),))
