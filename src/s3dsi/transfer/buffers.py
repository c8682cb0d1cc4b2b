"""The process-wide pool of part buffers: a hard byte budget, buffer reuse, and the progress rule.

Progress rule (why concurrent transfers sharing one budget cannot deadlock):

* Every transfer opens a ``PoolAccount``. It names its *priority key* (the part it needs to move
  forward: an upload's lowest unfinished part, a download's next read when it holds nothing) and,
  while that part has no buffer, *reserves* its size.
* A request for the priority key is granted whenever the bytes handed out plus the request fit in
  the budget. Any other request must also leave free the sum of all accounts' reserves (its own
  included). So no mix of transfers can fill the budget with higher parts while a lowest part waits,
  and once in-flight parts drain every transfer gets the buffer it needs to move.
* Waiters are served first-come first-served within each class, priority requests first; a
  synchronous ``try_acquire`` never overtakes a queued waiter of the same or a higher class.

* Deadlock breaker: transfers can still hold the whole budget in parts none of them can finish (each
  holds a higher part filled half-way by a stream that ran ahead, while its lowest part waits for a
  buffer; a sender that writes its streams in turn then blocks on the paused one). When requests have
  waited ``overdraft_after`` seconds and no buffer came back meanwhile, the oldest waiter gets its
  buffer beyond the budget: one buffer at a time, so memory stays within budget + one part, and the
  transfer that got it can finish its lowest part and give buffers back.

Freed buffers are kept for reuse (no re-allocation, no page faults); idle ones are dropped when a
request of another size needs the room, so allocated bytes stay ≤ budget. Buffers are anonymous
mmaps rather than bytearrays: a dropped one goes back to the kernel at once, whereas malloc'd part
buffers of mixed sizes (8 MiB uploads next to 32 MiB downloads) fragmented the heap and left the
RSS up to ~50% above the budget (bench/transfer_bench.py, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import itertools
import mmap
import threading
import time
from collections import deque
from dataclasses import dataclass, field

OVERDRAFT_AFTER = 2.0  # seconds of waiting with no buffer coming back before the deadlock breaker lends


class PartBuffer:
    """``size`` bytes of memory lent by the pool; ``view`` is their writable memoryview."""

    __slots__ = ("_data", "account", "overdraft", "size", "view")

    def __init__(self, data: mmap.mmap, account: PoolAccount | None) -> None:
        self._data = data
        self.size = len(data)
        self.view = memoryview(data)
        self.account = account
        self.overdraft = False  # lent beyond the budget to break a deadlock


class PoolAccount:
    """One transfer's standing with the pool (see the progress rule in the module doc)."""

    __slots__ = ("_pool", "closed", "held", "name", "priority_key", "reserve")

    def __init__(self, pool: BufferPool, name: str) -> None:
        self._pool = pool
        self.name = name
        self.priority_key: int | None = None
        self.reserve = 0
        self.held = 0
        self.closed = False

    def set_priority(self, key: int | None, reserve: int) -> None:
        """The key whose request is a priority one, and the bytes to keep free for it (0 if it holds one)."""
        self._pool._set_priority(self, key, reserve)

    def close(self) -> None:
        self._pool._close_account(self)


@dataclass(eq=False)
class _Waiter:
    size: int
    account: PoolAccount | None
    key: int | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[PartBuffer] = field(repr=False)
    since: float = field(default_factory=time.monotonic)

    def is_priority(self) -> bool:
        return self.account is not None and self.key is not None and self.key == self.account.priority_key


class BufferPool:
    """Hands out part buffers within ``budget_bytes``; thread-safe, waiters live on event loops."""

    def __init__(self, budget_bytes: int, *, overdraft_after: float = OVERDRAFT_AFTER) -> None:
        if budget_bytes <= 0:
            raise ValueError("budget must be positive")
        self.budget = budget_bytes
        self.overdraft_after = overdraft_after
        self._overdraft = 0  # bytes lent beyond the budget (one buffer at the most)
        self._released_at = time.monotonic()
        self.overdrafts = 0  # how often the deadlock breaker lent (metrics, tests)
        self._lock = threading.Lock()
        self._in_use = 0
        self._cached = 0
        self._free: dict[int, list[mmap.mmap]] = {}
        self._accounts: set[PoolAccount] = set()
        self._reserved = 0
        self._waiters: deque[_Waiter] = deque()
        self._names = itertools.count(1)
        self.peak_in_use = 0

    # -- metrics -----------------------------------------------------------------------------------
    @property
    def in_use(self) -> int:
        """Bytes of buffers currently lent out."""
        return self._in_use

    @property
    def cached(self) -> int:
        """Bytes of idle buffers kept for reuse (allocated: in_use + cached ≤ budget)."""
        return self._cached

    # -- accounts ----------------------------------------------------------------------------------
    def open_account(self, name: str | None = None) -> PoolAccount:
        account = PoolAccount(self, name or f"transfer-{next(self._names)}")
        with self._lock:
            self._accounts.add(account)
        return account

    def _set_priority(self, account: PoolAccount, key: int | None, reserve: int) -> None:
        with self._lock:
            if account.closed:
                return
            self._reserved += reserve - account.reserve
            account.reserve = reserve
            account.priority_key = key
            self._dispatch_locked()

    def _close_account(self, account: PoolAccount) -> None:
        with self._lock:
            if account.closed:
                return
            account.closed = True
            self._reserved -= account.reserve
            account.reserve = 0
            account.priority_key = None
            self._accounts.discard(account)
            self._dispatch_locked()

    # -- lending -----------------------------------------------------------------------------------
    def try_acquire(self, size: int, *, account: PoolAccount | None = None,
                    key: int | None = None) -> PartBuffer | None:
        """A buffer of exactly ``size`` bytes now, or None (budget, reserves or queued waiters)."""
        priority = account is not None and key is not None and key == account.priority_key
        with self._lock:
            if self._waiters and (not priority or any(w.is_priority() for w in self._waiters)):
                return None
            if not self._grantable(size, priority):
                return None
            return self._lend_locked(size, account)

    async def acquire(self, size: int, *, account: PoolAccount | None = None,
                      key: int | None = None) -> PartBuffer:
        """Wait for a buffer. Fails with the exception given to ``fail_waiters`` for its account."""
        if size > self.budget:
            raise ValueError(f"a {size}-byte buffer can never fit the {self.budget}-byte budget")
        buf = self.try_acquire(size, account=account, key=key)
        if buf is not None:
            return buf
        loop = asyncio.get_running_loop()
        waiter = _Waiter(size, account, key, loop, loop.create_future())
        with self._lock:
            self._waiters.append(waiter)
            self._dispatch_locked()
        try:
            while True:
                done, _ = await asyncio.wait({waiter.future}, timeout=self.overdraft_after)
                if done:
                    return waiter.future.result()
                buf = self._overdraw(waiter)
                if buf is not None:
                    return buf
        except BaseException:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result())  # delivered, then our task was cancelled: give it back
            raise

    def _overdraw(self, waiter: _Waiter) -> PartBuffer | None:
        """The deadlock breaker (module docstring): lend past the budget to the oldest of the waiters
        when nothing came back for ``overdraft_after`` seconds, one buffer at a time."""
        with self._lock:
            if waiter not in self._waiters or self._overdraft:
                return None
            if time.monotonic() - self._released_at < self.overdraft_after:
                return None
            if min(w.since for w in self._waiters if not w.future.done()) < waiter.since:
                return None  # an older request goes first
            self._waiters.remove(waiter)
            buf = self._lend_locked(waiter.size, waiter.account, beyond_budget=True)
            buf.overdraft = True
            self._overdraft = buf.size
            self.overdrafts += 1
            return buf

    def release(self, buf: PartBuffer) -> None:
        with self._lock:
            self._released_at = time.monotonic()
            if buf.overdraft:
                buf.overdraft = False
                self._overdraft -= buf.size
            self._in_use -= buf.size
            if buf.account is not None:
                buf.account.held -= buf.size
            buf.account = None
            self._free.setdefault(buf.size, []).append(buf._data)
            self._cached += buf.size
            self._dispatch_locked()

    def waiting_since(self, *, exclude: PoolAccount | None = None) -> float | None:
        """When the longest-waiting request of another transfer began (``time.monotonic``), or None
        when nobody else waits: how long memory pressure has lasted, for holders that stopped moving."""
        with self._lock:
            times = [w.since for w in self._waiters if w.account is not exclude and not w.future.done()]
        return min(times) if times else None

    def fail_waiters(self, account: PoolAccount, exc: BaseException) -> None:
        """Wake this account's waiters with ``exc`` (the transfer is being aborted)."""
        with self._lock:
            mine = [w for w in self._waiters if w.account is account]
            for waiter in mine:
                self._waiters.remove(waiter)
                waiter.loop.call_soon_threadsafe(_fail_future, waiter.future, exc)

    # -- internals (lock held) ---------------------------------------------------------------------
    def _grantable(self, size: int, priority: bool) -> bool:
        if self._in_use + size > self.budget:
            return False
        return priority or self._in_use + size + self._reserved <= self.budget

    def _lend_locked(self, size: int, account: PoolAccount | None, *,
                     beyond_budget: bool = False) -> PartBuffer:
        free = self._free.get(size)
        if free:
            data = free.pop()
            self._cached -= size
        else:
            # idle buffers go first, so that allocated memory stays within the budget (+ one overdraft)
            allowed = self.budget + (size if beyond_budget else 0)
            self._evict_locked(self._in_use + self._cached + size - allowed)
            # private anonymous memory (Python's default would be MAP_SHARED: shmem, and shared with
            # any child forked later), zero-filled; unmapped when the last view of it is gone
            data = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._in_use += size
        self.peak_in_use = max(self.peak_in_use, self._in_use)
        if account is not None:
            account.held += size
        return PartBuffer(data, account)

    def _evict_locked(self, excess: int) -> None:
        for size in sorted(self._free, reverse=True):
            free = self._free[size]
            while free and excess > 0:
                free.pop()
                self._cached -= size
                excess -= size
            if not free:
                del self._free[size]
            if excess <= 0:
                return

    def _dispatch_locked(self) -> None:
        if not self._waiters:
            return
        for want_priority in (True, False):
            for waiter in list(self._waiters):
                if waiter.future.done():
                    self._waiters.remove(waiter)
                    continue
                priority = waiter.is_priority()
                if priority != want_priority:
                    continue
                if not self._grantable(waiter.size, priority):
                    if priority:
                        continue
                    return  # keep first-come first-served among ordinary requests
                self._waiters.remove(waiter)
                buf = self._lend_locked(waiter.size, waiter.account)
                waiter.loop.call_soon_threadsafe(self._deliver, waiter.future, buf)

    def _deliver(self, future: asyncio.Future[PartBuffer], buf: PartBuffer) -> None:
        if future.done():  # the waiter gave up meanwhile: the buffer goes straight back
            self.release(buf)
        else:
            future.set_result(buf)


def _fail_future(future: asyncio.Future[PartBuffer], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
