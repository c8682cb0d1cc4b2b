"""What every session shares: settings, authentication, the back-end provider, thread pools, buffers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from s3dsi.config.settings import Settings
from s3dsi.server.security import SecurityServices
from s3dsi.storage.backend import Backend
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.journal import UploadJournal
from s3dsi.transfer.workers import PartWorkers

T = TypeVar("T")


class Authenticator(Protocol):
    def authenticate(self, user: str, password: str) -> str | None:
        """The local user whose credentials the session uses, or None."""
        ...


class BackendProvider(Protocol):
    def backend_for(self, local_user: str) -> Backend:
        """Blocking: the back end bound to ``local_user``'s credentials (raises DsiError)."""
        ...


class LoginThrottle:
    """A delay before answering a failed login that grows with repeated failures from one address."""

    def __init__(self, base: float = 0.5, cap: float = 8.0, forget_after: float = 900.0) -> None:
        self.base = base
        self.cap = cap
        self.forget_after = forget_after
        self._failures: dict[str, tuple[int, float]] = {}

    def delay_for(self, address: str) -> float:
        now = time.monotonic()
        count, last = self._failures.get(address, (0, now))
        if now - last > self.forget_after:
            count = 0
        count += 1
        self._failures[address] = (count, now)
        if len(self._failures) > 10000:
            self._failures = {a: v for a, v in self._failures.items() if now - v[1] <= self.forget_after}
        return float(min(self.cap, self.base * (2 ** (count - 1))))

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


@dataclass
class DaemonContext:
    settings: Settings
    authenticator: Authenticator
    backends: BackendProvider
    workers: PartWorkers
    pool: BufferPool
    namespace_pool: ThreadPoolExecutor
    journal: UploadJournal
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    sessions: set[Any] = field(default_factory=set)
    on_transfer_done: Callable[[Any], None] | None = None
    on_session_opened: Callable[[], None] | None = None  # once per session served (metrics)
    security: SecurityServices = field(default_factory=SecurityServices)  # GSI / FTPS (none by default)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking namespace operation (stat, list page, mkdir...) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.namespace_pool, lambda: fn(*args))
