"""Which names of a directory are themselves directories, as a recent listing showed: so that an
upload need not ask S3 again, for every file, whether its name is a directory.

An upload must not turn a directory into a file (``STOR a`` where keys ``a/...`` exist): that costs a
ListObjectsV2 per upload, as many requests as the PutObject itself for a small file. Instead, the
child directories of a directory are learnt from one delimited listing (a client's MLSD, or the
namespace's own when a second upload lands in the same directory) and kept for ``ttl`` seconds; our
own MKD, RMD and new keys update what is kept. Another client creating ``a/...`` within those seconds
goes unnoticed, as it did between the old per-upload check and the PutObject: the check was never
atomic. Directories whose listing needs more than one page are not kept (the per-name check applies).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

DEFAULT_TTL = 30.0
MAX_DIRECTORIES = 1024


class DirectoryCache:
    def __init__(self, ttl: float = DEFAULT_TTL, max_directories: int = MAX_DIRECTORIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_directories = max_directories
        self._clock = clock
        self._lock = threading.Lock()
        self._known: OrderedDict[tuple[str, str], tuple[float, set[str]]] = OrderedDict()
        self._asked: OrderedDict[tuple[str, str], float] = OrderedDict()  # per-name checks made here

    def children(self, bucket: str, prefix: str) -> frozenset[str] | None:
        """The child directories of ``prefix`` (``""`` for the bucket), or None when not known now."""
        with self._lock:
            entry = self._known.get((bucket, prefix))
            if entry is None:
                return None
            if self._clock() - entry[0] > self.ttl:
                del self._known[(bucket, prefix)]
                return None
            return frozenset(entry[1])

    def remember(self, bucket: str, prefix: str, names: Iterable[str]) -> None:
        with self._lock:
            self._known[(bucket, prefix)] = (self._clock(), set(names))
            self._known.move_to_end((bucket, prefix))
            while len(self._known) > self.max_directories:
                self._known.popitem(last=False)

    def checked_before(self, bucket: str, prefix: str) -> bool:
        """True when an upload into ``prefix`` was checked by name within ``ttl``: a second one makes a
        listing of the whole directory worth its request. Records this check."""
        key, now = (bucket, prefix), self._clock()
        with self._lock:
            before = self._asked.get(key)
            self._asked[key] = now
            self._asked.move_to_end(key)
            while len(self._asked) > self.max_directories:
                self._asked.popitem(last=False)
        return before is not None and now - before <= self.ttl

    def add(self, bucket: str, prefix: str, name: str) -> None:
        """``prefix`` + ``name`` + "/" became a directory (MKD, or a key below it)."""
        with self._lock:
            entry = self._known.get((bucket, prefix))
            if entry is not None:
                entry[1].add(name)

    def discard(self, bucket: str, prefix: str, name: str) -> None:
        with self._lock:
            entry = self._known.get((bucket, prefix))
            if entry is not None:
                entry[1].discard(name)

    def note_key(self, bucket: str, key: str) -> None:
        """A key was written: every directory above it now has the next one down as a child."""
        segments = key.split("/")[:-1]
        prefix = ""
        for segment in segments:
            self.add(bucket, prefix, segment)
            prefix = f"{prefix}{segment}/"
