"""Micro-benchmark of the transfer engines with a null back end (no network, no storage).

Pushes SIZE bytes through UploadEngine as N interleaved streams of 1 MiB blocks (the copy into the
part buffer stands in for the kernel's recv_into) and pulls them through DownloadEngine with N
senders; prints MiB/s and process CPU seconds (all threads). Also measures the raw digest speeds.

    .venv/bin/python bench/engine_micro.py [--size-mib 1024] [--streams 8] [--part-mib 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import crc32c

from s3dsi.protocol.entries import Entry
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.download import DownloadEngine
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.upload import UploadEngine
from s3dsi.transfer.workers import PartWorkers

MiB = 1024 * 1024
NOW = datetime(2024, 1, 1, tzinfo=UTC)


class NullBackend:
    """Accepts every write instantly and serves reads of SIZE bytes without touching the buffer."""

    def __init__(self, size: int) -> None:
        self.size = size

    def stat(self, path: str) -> Entry:
        raise NotImplementedError

    def list_pages(self, path: str) -> Iterator[list[Entry]]:
        raise NotImplementedError

    def mkdir(self, path: str) -> None:
        raise NotImplementedError

    def rmdir(self, path: str) -> None:
        raise NotImplementedError

    def delete(self, path: str) -> None:
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def head_object(self, path: str) -> ObjectInfo:
        return ObjectInfo(path, self.size, '"etag"', NOW)

    def read_range(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        return min(len(into), self.size - start)

    def get_tags(self, path: str) -> dict[str, str]:
        return {}

    def set_tags(self, path: str, tags: Mapping[str, str]) -> bool:
        return True

    def check_writable(self, path: str) -> None:
        return None

    def put_object(self, path: str, data: memoryview, *, crc32c: int | None = None,
                   tags: Mapping[str, str] | None = None) -> ObjectInfo:
        return ObjectInfo(path, len(data), '"etag"', NOW)

    def create_upload(self, path: str) -> str:
        return "upload"

    def upload_part(self, path: str, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        return f'"part{number}"'

    def complete_upload(self, path: str, upload_id: str, parts: list[tuple[int, str]]) -> ObjectInfo:
        return ObjectInfo(path, self.size, '"etag-1"', NOW)

    def abort_upload(self, path: str, upload_id: str) -> None:
        return None

    def list_uploads(self, path: str) -> list[UploadInfo]:
        return []

    def list_parts(self, path: str, upload_id: str) -> list[PartInfo]:
        return []


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(label: str, size: int, fn: Callable[[], None]) -> None:
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    fn()
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    print(f"{label:<44} {size / MiB / wall:9.0f} MiB/s  wall {wall:6.2f} s  cpu {cpu:6.2f} s")


def digest_speeds(sample: bytes) -> None:
    funcs: dict[str, Callable[[bytes], object]] = {
        "MD5": lambda d: hashlib.md5(d).digest(),
        "SHA1": lambda d: hashlib.sha1(d).digest(),
        "SHA256": lambda d: hashlib.sha256(d).digest(),
        "SHA512": lambda d: hashlib.sha512(d).digest(),
        "ADLER32": zlib.adler32,
        "CRC32C": crc32c.crc32c,
    }
    for name, fn in funcs.items():
        measure(f"digest {name} (one thread)", len(sample), lambda fn=fn: fn(sample))  # type: ignore[misc]


async def upload_once(size: int, streams: int, part: int, budget: int, workers: PartWorkers,
                      checksums: tuple[str, ...], recv: int = MiB) -> None:
    source = memoryview(os.urandom(MiB))
    pool = BufferPool(budget)
    engine = UploadEngine(NullBackend(size), "/b/k", plan=PartPlan.uniform(part), pool=pool,
                          workers=workers, checksums=checksums)
    await engine.open()
    next_block = 0

    async def stream() -> None:
        nonlocal next_block
        while next_block < size:
            offset = next_block
            next_block += MiB  # blocks go to whichever stream is free, like the GT sender
            end = min(size, offset + MiB)
            pos = offset
            while pos < end:
                view = engine.get_buffer(pos, end - pos)
                if view is None:
                    await engine.wait_for_space(pos)
                    continue
                n = min(len(view), recv)
                view[:n] = source[pos - offset:pos - offset + n]
                engine.data_received(pos, n)
                pos += n
            await asyncio.sleep(0)

    await asyncio.gather(*(stream() for _ in range(streams)))
    await engine.finish()
    assert pool.peak_in_use <= budget


async def download_once(size: int, streams: int, part: int, budget: int, workers: PartWorkers) -> None:
    engine = DownloadEngine(NullBackend(size), "/b/k", pool=BufferPool(budget), workers=workers,
                            part_size=part)
    await engine.open()
    sink = bytearray(MiB)

    async def sender() -> None:
        while (chunk := await engine.next_chunk()) is not None:
            sink[:len(chunk.data)] = chunk.data  # stands in for the socket send copy
            chunk.release()
            await asyncio.sleep(0)

    await asyncio.gather(*(sender() for _ in range(streams)))
    await engine.close()
    assert engine.bytes_sent == size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--budget-mib", type=int, default=160)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--recv-kib", type=int, default=64, help="bytes per recv_into (kernel hand-off)")
    parser.add_argument("--only", choices=["all", "digests", "upload", "download"], default="all")
    args = parser.parse_args()
    size, part, budget = args.size_mib * MiB, args.part_mib * MiB, args.budget_mib * MiB
    workers = PartWorkers(args.threads)
    print(f"{os.cpu_count()} CPUs; {args.size_mib} MiB, {args.streams} streams, {args.part_mib} MiB parts, "
          f"{args.budget_mib} MiB budget")
    recv = args.recv_kib * 1024
    if args.only in ("all", "upload"):
        for checksums in [(), ("ADLER32", "CRC32C"), ("MD5", "ADLER32", "CRC32C")]:
            label = f"upload [{','.join(checksums) or 'part CRC32C only'}]"
            measure(label, size, lambda c=checksums: asyncio.run(  # type: ignore[misc]
                upload_once(size, args.streams, part, budget, workers, c, recv)))
        print(f"max RSS after uploads {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.only in ("all", "download"):
        measure("download", size,
                lambda: asyncio.run(download_once(size, args.streams, part, budget, workers)))
    if args.only in ("all", "digests"):
        digest_speeds(os.urandom(128 * MiB))
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    workers.shutdown()


if __name__ == "__main__":
    main()
