"""Where password hashes are checked: a small pool of threads of its own, never the namespace pool.

An argon2id verification takes tens of milliseconds and 64 MiB. On the namespace pool a crowd sending
PASS would make every user's CWD and LIST wait behind it, and unbounded it would take 64 MiB per
concurrent attempt. So verifications run on ``LOGIN_WORKERS`` threads of their own; further attempts
wait their turn. In the per-session model each session process has its own pool, so the bound must hold
across processes: there ``ProcessSlots`` (POSIX record locks on a file the parent opened before forking)
lets only ``LOGIN_WORKERS`` processes verify at once. A lock dies with its process, so a killed session
never keeps a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
LOGIN_WORKERS = 2


class ProcessSlots:
    """``count`` slots shared by a process and the children it forks afterwards (one byte-range lock
    each on an unlinked file). Locks belong to processes, so each session process holds at most one."""

    def __init__(self, count: int = LOGIN_WORKERS) -> None:
        self.count = count
        try:
            self._fd = os.memfd_create("s3dsi-login-slots", os.MFD_CLOEXEC)  # no file system needed
        except (AttributeError, OSError):
            self._fd = os.dup(tempfile.TemporaryFile().fileno())  # noqa: SIM115 - unlinked, kept open by the dup
        os.ftruncate(self._fd, count)

    def fileno(self) -> int:
        return self._fd

    @contextlib.contextmanager
    def held(self) -> Iterator[int]:
        """Blocks (in the calling thread) until a slot is free; yields its number."""
        fd = self._fd
        if fd < 0:  # given up after this process's login: a retried login of its own user goes ahead
            yield -1
            return
        slot = None
        for candidate in range(self.count):
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, candidate)
            except OSError:
                continue
            slot = candidate
            break
        if slot is None:
            slot = os.getpid() % self.count
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, slot)
        try:
            yield slot
        finally:
            with contextlib.suppress(OSError):  # closed meanwhile: its locks went with it
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, slot)

    def close(self) -> None:
        """Give up the slots (a session process once logged in: it verifies no more passwords)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class LoginPool:
    def __init__(self, workers: int = LOGIN_WORKERS, slots: ProcessSlots | None = None) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="s3dsi-login")
        self.slots = slots

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.slots is None:
            return fn(*args)
        with self.slots.held():
            return fn(*args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a login thread (holding a process slot when there are any)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self._call(fn, *args))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
