"""The process's bounded thread pools for part work: blocking Backend calls and hashing.

Two executors so a burst of slow part uploads can never queue the in-order hashing behind it (a
part's buffer is only freed once it is hashed): ``run`` for I/O, ``run_cpu`` for digests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class PartWorkers:
    """One instance per process, shared by all transfers."""

    def __init__(self, n_threads: int, *, cpu_threads: int | None = None) -> None:
        if n_threads < 1:
            raise ValueError("need at least one part worker thread")
        self.n_threads = n_threads
        self.cpu_threads = cpu_threads or max(1, min(4, os.cpu_count() or 1))
        self._io = cf.ThreadPoolExecutor(n_threads, thread_name_prefix="s3dsi-part")
        self._cpu = cf.ThreadPoolExecutor(self.cpu_threads, thread_name_prefix="s3dsi-hash")

    def submit(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> cf.Future[T]:
        return self._io.submit(fn, *args)

    def submit_cpu(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> cf.Future[T]:
        return self._cpu.submit(fn, *args)

    async def run(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """Run a blocking call (a Backend method) on the I/O pool."""
        return await asyncio.wrap_future(self._io.submit(fn, *args))

    async def run_cpu(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """Run CPU work (hashing; hashlib, zlib and crc32c release the GIL) on the hash pool."""
        return await asyncio.wrap_future(self._cpu.submit(fn, *args))

    def shutdown(self, wait: bool = True) -> None:
        self._io.shutdown(wait=wait, cancel_futures=True)
        self._cpu.shutdown(wait=wait, cancel_futures=True)
