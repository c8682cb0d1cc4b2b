"""Log files a process writes (log_single, log_transfer, the GLOBUS_S3_DEBUG file): how they are opened,
and when a reconfiguration (SIGHUP) keeps the open file instead of opening its path again.

A path that still names the file already open keeps that descriptor: after a privilege drop the daemon
may no longer be allowed to open it (root-owned /var/log/gridftp), and rotation by ``copytruncate``
needs no reopening. A path that names another file now (renamed by rotation, deleted, or a new path)
is opened through the process's ``LogOpener``: plain ``open`` by default; a service-user daemon falls
back to its root helper, which passes the descriptor back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TextIO

LogOpener = Callable[[str], int]  # a path -> a descriptor open for appending; OSError when it cannot
LOG_FILE_MODE = 0o600
LOG_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY


def open_log_file(path: str) -> int:
    """``path`` opened for appending, created readable by its owner only."""
    return os.open(path, LOG_OPEN_FLAGS, LOG_FILE_MODE)


def _same_file(fd: int, other: os.stat_result) -> bool:
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (other.st_dev, other.st_ino)


def reuse_or_open(path: str, current: int | None, opener: LogOpener | None = None) -> int:
    """``current`` when ``path`` still names the file it has open, else a new descriptor for ``path``
    (OSError when it cannot be opened). Whoever gets a new descriptor closes ``current`` later."""
    if current is not None:
        try:
            if _same_file(current, os.stat(path)):
                return current
        except (FileNotFoundError, NotADirectoryError):
            pass  # renamed away or deleted: a new file is due
        except PermissionError:
            pass  # this process may not look (dropped privileges): open it and compare
    fd = (opener or open_log_file)(path)
    if current is not None:
        try:
            same = _same_file(current, os.fstat(fd))
        except OSError:
            same = False
        if same:
            os.close(fd)
            return current
    return fd


class LogStreams:
    """Text streams on log files, by absolute path, shared by every handler writing to the same file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, TextIO] = {}

    @staticmethod
    def key(path: str) -> str:
        return os.path.abspath(path)

    def current(self, path: str) -> TextIO | None:
        with self._lock:
            return self._open.get(self.key(path))

    def stream(self, path: str, opener: LogOpener | None = None) -> TextIO:
        """The open stream on ``path`` when it still names that file, else a new one (not yet kept:
        ``keep`` adopts it); OSError when the file cannot be opened."""
        old = self.current(path)
        fd = reuse_or_open(path, old.fileno() if old is not None and not old.closed else None, opener)
        if old is not None and not old.closed and fd == old.fileno():
            return old
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def keep(self, streams: dict[str, TextIO]) -> None:
        """From now on, exactly ``streams`` (path -> stream) are open; every other stream is closed."""
        wanted = {self.key(path): stream for path, stream in streams.items()}
        with self._lock:
            old, self._open = self._open, wanted
        kept = {id(stream) for stream in wanted.values()}
        for stream in old.values():
            if id(stream) not in kept and not stream.closed:
                try:
                    stream.flush()
                finally:
                    stream.close()

    def discard(self, stream: TextIO) -> None:
        """Close ``stream`` if no path keeps it (a stream opened for a configuration that was not used)."""
        with self._lock:
            kept = any(s is stream for s in self._open.values())
        if not kept and not stream.closed:
            stream.close()
