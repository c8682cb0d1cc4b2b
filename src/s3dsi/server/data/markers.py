"""Periodic 112 perf markers and 111 range markers while a transfer runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from s3dsi.protocol.markers import perf_marker, range_marker
from s3dsi.protocol.replies import Reply

Send = Callable[[Reply], Awaitable[None]]


class MarkerTicker:
    """Sends perf markers every ``perf_interval`` s and range markers every ``range_interval`` s."""

    def __init__(self, send: Send, *, bytes_done: Callable[[], int],
                 perf_interval: float | None,
                 ranges: Callable[[], Awaitable[list[tuple[int, int]]]] | None = None,
                 range_interval: float | None = None) -> None:
        self._send = send
        self._bytes = bytes_done
        self._perf_interval = perf_interval
        self._ranges = ranges
        self._range_interval = range_interval
        self._task: asyncio.Task[None] | None = None

    async def perf_now(self) -> None:
        await self._send(perf_marker(time.time(), self._bytes()))

    async def ranges_now(self) -> None:
        if self._ranges is None:
            return
        reply = range_marker(await self._ranges())
        if reply is not None:
            await self._send(reply)

    def start(self) -> None:
        if self._perf_interval or (self._ranges is not None and self._range_interval):
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_perf = now + self._perf_interval if self._perf_interval else None
        next_range = now + self._range_interval if self._range_interval and self._ranges else None
        while True:
            due = [t for t in (next_perf, next_range) if t is not None]
            if not due:
                return
            await asyncio.sleep(max(0.0, min(due) - loop.time()))
            now = loop.time()
            if next_perf is not None and now >= next_perf:
                await self.perf_now()
                next_perf = now + (self._perf_interval or 5.0)
            if next_range is not None and now >= next_range:
                await self.ranges_now()
                next_range = now + (self._range_interval or 5.0)
