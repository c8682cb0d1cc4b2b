"""The messages between the workers' parent and each worker process: one JSON object per datagram on a
``SOCK_SEQPACKET`` socketpair, with descriptors passed alongside (``SCM_RIGHTS``) when there are any.

Parent to worker: ``{"conn": N, "peer": ADDR}`` with the accepted control connection; ``{"reload":
{...}}`` with the password file (a memfd) and the log files the parent opened (see daemon/worker.py);
``{"throttle": {"address", "user"}}``, a failed login another worker counted.
Worker to parent: ``{"report": {...}}`` once a second (sessions, counters, memory, CPU); ``{"closed":
N}`` when a connection's session ended; ``{"login": "failed", ...}`` at once.

The socketpair keeps message boundaries, so a reader never sees half a message; a message too large for
the socket (a report of very many sessions) is sent without its session list.
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import socket
from collections.abc import Sequence
from typing import Any

MAX_MESSAGE = 1 << 20
MAX_FDS = 8
BUFFER = 4 << 20  # asked for; the kernel may grant less (net.core.wmem_max)


def channel() -> tuple[socket.socket, socket.socket]:
    """A (parent end, worker end) pair."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (ours, theirs):
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, BUFFER)
    return ours, theirs


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> bool:
    """Send one message; False when it could not go (peer gone, or no room right now on a non-blocking
    socket). EMSGSIZE propagates (the caller may send a smaller message)."""
    data = json.dumps(message, separators=(",", ":")).encode()
    try:
        if fds:
            socket.send_fds(sock, [data], list(fds))
        else:
            sock.send(data)
    except OSError as err:
        if err.errno == errno.EMSGSIZE:
            raise
        return False
    return True


def receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One message and its descriptors; None at end of stream. BlockingIOError when there is none yet
    (non-blocking socket). A message that is not a JSON object is returned as ``{}``."""
    fds = array.array("i")
    data, ancillary, flags, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    if not data and not fds:
        return None
    received = list(fds)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in received:
            os.close(fd)
        return {}, []
    try:
        message = json.loads(data)
    except ValueError:
        message = {}
    return (message if isinstance(message, dict) else {}), received


def memfd_with(data: bytes, name: str = "s3dsi-reload") -> int:
    """A read-only snapshot of ``data`` in an anonymous file, to pass as a descriptor."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, limit: int = 64 << 20) -> bytes:
    """The whole content of a passed file, from its start (closing the descriptor)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
