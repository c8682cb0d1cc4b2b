"""A set of asyncio tasks owned by one object, cancelled together: the one place that keeps the
"strong reference until done" rule (the event loop only holds weak references to tasks)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def pending(self) -> set[asyncio.Task[Any]]:
        return {t for t in self._tasks if not t.done()}

    def cancel(self) -> list[asyncio.Task[Any]]:
        """Cancel every task; returns them, for a caller that must wait until they have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks

    async def cancel_and_wait(self) -> None:
        tasks = self.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
