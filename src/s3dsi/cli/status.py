"""``s3dsi status``: ask the running daemon (over its admin socket) what its sessions are doing."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.daemon.admin import AdminError, DaemonStatus, SessionSnapshot, WorkerSnapshot, query
from s3dsi.daemon.sockets import admin_socket_candidates, present
from s3dsi.observability.printable import printable


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "status", help="show the running daemon's sessions (user, file, bytes, rate)",
        description="Ask the running daemon over its admin socket (admin_socket; root and the daemon's "
                    "account only) for its sessions and their transfers.")
    add_config_arguments(p)
    p.add_argument("--socket", metavar="PATH", help="admin socket (default: from the configuration)")
    p.add_argument("--json", action="store_true", help="print the daemon's JSON answer")
    p.set_defaults(func=run)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _row(session: SessionSnapshot) -> list[str]:
    state = session.kind or "idle"
    nbytes = human_bytes(session.nbytes) if session.kind else ""
    rate = f"{human_bytes(session.rate)}/s" if session.kind else ""
    # user names and paths come from clients: never print their control characters raw
    return [printable(session.id), printable(session.user or "-"), printable(session.remote),
            str(session.pid), printable(state), printable(session.path or ""), nbytes, rate]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _worker_row(worker: WorkerSnapshot) -> list[str]:
    memory = f"{human_bytes(worker.buffer_in_use)} of {human_bytes(worker.buffer_budget)}"
    return [str(worker.index), str(worker.pid), str(worker.sessions), str(worker.transfers), memory,
            f"{worker.cpu_seconds:.1f} s"]


def render(status: DaemonStatus, now: float | None = None) -> str:
    moment = time.time() if now is None else now
    count = len(status.sessions)
    workers = f", {len(status.workers)} workers" if status.workers else ""
    lines = [printable(f"s3dsi {status.version}, pid {status.pid}, {status.model} process model, running as "
                       f"{status.account}{workers}, up {human_duration(moment - status.started)}, "
                       f"{count} session{'s' if count != 1 else ''}"
                       + (f", listening on {', '.join(status.addresses)}" if status.addresses else ""))]
    if status.workers:
        lines += _table([["WORKER", "PID", "SESSIONS", "TRANSFERS", "BUFFERS", "CPU"],
                         *(_worker_row(w) for w in status.workers)])
    if not status.sessions:
        return "\n".join(lines)
    lines += _table([["SESSION", "USER", "REMOTE", "PID", "STATE", "FILE", "BYTES", "RATE"],
                     *(_row(s) for s in sorted(status.sessions, key=lambda s: s.id))])
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    path = args.socket
    if path is None:
        try:
            candidates = admin_socket_candidates(settings_from_args(args))
        except ConfigError as exc:
            err.write(f"s3dsi status: {exc}\n")
            return 2
        path = next((c for c in candidates if present(c)), candidates[0])
    try:
        status = query(path)
    except AdminError as exc:
        err.write(f"s3dsi status: {exc}\n")
        return 1
    out.write((json.dumps(status.to_json(), indent=2) if args.json else render(status)) + "\n")
    return 0
