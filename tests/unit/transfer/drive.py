"""Plays the network layer against an UploadEngine: streams of blocks, pauses, waits."""

from __future__ import annotations

import asyncio
import hashlib
import random
import zlib
from collections.abc import Sequence

import crc32c

from s3dsi.transfer.upload import UploadEngine

Block = tuple[int, int]  # (offset, length)


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def reference_digests(data: bytes) -> dict[str, str]:
    return {
        "MD5": hashlib.md5(data).hexdigest(),
        "ADLER32": f"{zlib.adler32(data):08x}",
        "CRC32C": f"{crc32c.crc32c(data):08x}",
    }


def blocks_of(size: int, block: int) -> list[Block]:
    return [(o, min(block, size - o)) for o in range(0, size, block)]


async def feed_block(engine: UploadEngine, data: bytes, offset: int, length: int,
                     recv_max: int | None = None) -> None:
    """One block, received like recv_into would: possibly in several pieces, pausing when told."""
    pos = offset
    end = offset + length
    while pos < end:
        view = engine.get_buffer(pos, end - pos)
        if view is None:
            await engine.wait_for_space(pos)
            continue
        n = len(view) if recv_max is None else min(len(view), recv_max)
        view[:n] = data[pos:pos + n]
        engine.data_received(pos, n)
        pos += n


async def run_streams(engine: UploadEngine, data: bytes, streams: Sequence[Sequence[Block]],
                      recv_max: int | None = None) -> None:
    """Each stream sends its blocks in order; streams interleave at every block."""

    async def one(blocks: Sequence[Block]) -> None:
        for offset, length in blocks:
            await feed_block(engine, data, offset, length, recv_max)
            await asyncio.sleep(0)

    await asyncio.gather(*(one(s) for s in streams))


def deal(blocks: Sequence[Block], n_streams: int, rng: random.Random) -> list[list[Block]]:
    """Blocks handed to whichever stream is 'free' (random), offsets increasing per stream."""
    streams: list[list[Block]] = [[] for _ in range(n_streams)]
    for b in blocks:
        streams[rng.randrange(n_streams)].append(b)
    return streams
