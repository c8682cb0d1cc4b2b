"""What every session shares: settings, authentication, the back-end provider, thread pools, buffers
and the login throttle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from s3dsi.config.settings import Settings
from s3dsi.server.loginpool import LoginPool
from s3dsi.server.security import SecurityServices
from s3dsi.server.throttle import LoginThrottle
from s3dsi.storage.backend import Backend
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.journal import UploadJournal
from s3dsi.transfer.workers import PartWorkers

T = TypeVar("T")


class Authenticator(Protocol):
    def authenticate(self, user: str, password: str) -> str | None:
        """The local user whose credentials the session uses, or None."""
        ...

    def is_anonymous(self, user: str) -> bool:
        """Whether ``user`` is an anonymous login name (anonymous_read_only applies)."""
        ...


class BackendProvider(Protocol):
    def backend_for(self, local_user: str) -> Backend:
        """Blocking: the back end bound to ``local_user``'s credentials (raises DsiError)."""
        ...


@runtime_checkable
class UserDirectory(Protocol):
    def users(self) -> list[str]:
        """Blocking: users whose credentials the janitor sweeps with (one per distinct credentials)."""
        ...


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
    login_pool: LoginPool = field(default_factory=LoginPool)  # password checks, off the namespace pool
    sessions: set[Any] = field(default_factory=set)
    on_transfer_done: Callable[[Any], None] | None = None
    on_session_opened: Callable[[], None] | None = None  # once per session served (metrics)
    security: SecurityServices = field(default_factory=SecurityServices)  # GSI / FTPS (none by default)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking namespace operation (stat, list page, mkdir...) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.namespace_pool, lambda: fn(*args))
