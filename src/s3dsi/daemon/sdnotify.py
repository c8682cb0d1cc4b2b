"""systemd's readiness protocol (sd_notify): datagrams of ``KEY=value`` lines to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket
import time


def sd_notify(*fields: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``fields`` (e.g. ``READY=1``, ``STATUS=...``); False when not run by systemd or on failure."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    elif not address.startswith("/"):
        return False  # vsock and other transports are not used by service managers we support
    payload = "\n".join(field.replace("\n", " ") for field in fields).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError:
        return False
    return True


def monotonic_usec() -> str:
    """``MONOTONIC_USEC=...`` for ``RELOADING=1`` messages."""
    return f"MONOTONIC_USEC={time.monotonic_ns() // 1000}"  # CLOCK_MONOTONIC, as systemd expects
