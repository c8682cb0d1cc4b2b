"""Process attributes every daemon process sets for itself: no core dumps, not dumpable.

A core file or a ptrace attach would hand out what the process holds: password hashes before a login,
S3 secret keys after it. ``RLIMIT_CORE`` 0 stops core files; ``PR_SET_DUMPABLE`` 0 also stops the
users a session process becomes (and the service account) from attaching to it or reading its
``/proc/PID/mem``, since they would otherwise own the process after the privilege drop. A change of
uid sets the attribute to ``fs.suid_dumpable`` (0 unless the host changed it), so this is called at
start and again after each drop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3

_libc: ctypes.CDLL | None = None


def _prctl() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            return None
    return getattr(_libc, "prctl", None)


def no_core_dumps() -> None:
    """RLIMIT_CORE 0 and PR_SET_DUMPABLE 0 for this process (Linux; elsewhere only the limit)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def dumpable() -> bool | None:
    """Whether this process is dumpable (None where it cannot be asked)."""
    prctl = _prctl()
    if prctl is None:
        return None
    return bool(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
