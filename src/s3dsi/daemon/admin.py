"""The admin socket ``s3dsi status`` talks to: one request line in (``status``), one JSON document out.

The socket is a unix socket that only root and the daemon's own account may use: mode 0660 owned by
the service account (0600 otherwise), and every peer's uid is checked with SO_PEERCRED as well.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_REQUEST = 256
_PEERCRED = struct.Struct("3i")


class AdminError(Exception):
    """The daemon could not be asked (not running, no permission, bad answer)."""


@dataclass(frozen=True)
class SessionSnapshot:
    id: str
    remote: str
    opened: float  # wall clock
    user: str | None = None
    pid: int = 0
    kind: str | None = None  # the running transfer's command, None when idle
    path: str | None = None
    nbytes: int = 0
    transfer_started: float | None = None

    @property
    def rate(self) -> float:
        """Average bytes per second of the running transfer so far."""
        if self.transfer_started is None:
            return 0.0
        elapsed = time.time() - self.transfer_started
        return self.nbytes / elapsed if elapsed > 0 else 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSnapshot:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def snapshot_session(session: Any, pid: int | None = None) -> SessionSnapshot:
    """What ``s3dsi status`` shows of a live server.session.Session."""
    transfer = session.transfer
    return SessionSnapshot(
        id=str(session.id), remote=str(session.peer[0]),
        opened=float(getattr(session, "opened", time.time())),
        user=session.state.user, pid=pid if pid is not None else os.getpid(),
        kind=transfer.kind if transfer is not None else None,
        path=transfer.path if transfer is not None else None,
        nbytes=int(transfer.bytes_done) if transfer is not None else 0,
        transfer_started=float(transfer.started_at) if transfer is not None else None,
    )


@dataclass(frozen=True)
class WorkerSnapshot:
    """One session-serving process of several (``workers N``)."""

    index: int
    pid: int
    sessions: int = 0
    transfers: int = 0
    buffer_in_use: int = 0
    buffer_budget: int = 0
    cpu_seconds: float = 0.0
    started: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerSnapshot:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class DaemonStatus:
    pid: int
    version: str
    model: str
    started: float
    account: str
    addresses: tuple[str, ...] = ()
    sessions: tuple[SessionSnapshot, ...] = field(default_factory=tuple)
    workers: tuple[WorkerSnapshot, ...] = field(default_factory=tuple)  # empty: one process serves all

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DaemonStatus:
        return cls(pid=int(data["pid"]), version=str(data["version"]), model=str(data["model"]),
                   started=float(data["started"]), account=str(data["account"]),
                   addresses=tuple(data.get("addresses", ())),
                   sessions=tuple(SessionSnapshot.from_json(s) for s in data.get("sessions", ())),
                   workers=tuple(WorkerSnapshot.from_json(w) for w in data.get("workers", ())))


def answer(request: bytes, status: Callable[[], DaemonStatus]) -> bytes:
    """The reply to one request line."""
    command = request.strip().decode("ascii", "replace")
    if command == "status":
        return json.dumps(status().to_json()).encode() + b"\n"
    return json.dumps({"error": f"unknown request {command[:40]!r}; try 'status'"}).encode() + b"\n"


def peer_uid(sock: socket.socket) -> int | None:
    try:
        _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                           _PEERCRED.size))
    except OSError:
        return None
    return int(uid)


def allowed_uids(extra: Iterable[int] = ()) -> frozenset[int]:
    return frozenset({0, os.geteuid(), *extra})


def query(path: str, request: str = "status", timeout: float = 5.0) -> DaemonStatus:
    """Ask the daemon listening on ``path``; AdminError with a readable reason on failure."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(request.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except FileNotFoundError:
        raise AdminError(f"{path}: no such socket: is the daemon running (and is this its admin_socket)?") \
            from None
    except PermissionError:
        raise AdminError(f"{path}: permission denied: run as root or as the daemon's user") from None
    except ConnectionRefusedError:
        raise AdminError(f"{path}: connection refused: the daemon is not running (stale socket)") from None
    except OSError as err:
        raise AdminError(f"{path}: {err.strerror or err}") from None
    try:
        data = json.loads(b"".join(chunks))
        if "error" in data:
            raise AdminError(str(data["error"]))
        return DaemonStatus.from_json(data)
    except (ValueError, KeyError, TypeError):
        raise AdminError(f"{path}: the daemon's answer is not a status document") from None
