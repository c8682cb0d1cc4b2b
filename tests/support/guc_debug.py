"""The control-channel exchange as the Globus FTP client's debug plugin prints it on stderr, parsed.

The plugin prints every command sent (``<prefix>sending command to URL:`` then the command line) and
every reply read (``<prefix>response from URL:`` then the reply lines, a blank line after), so tests
can check what went over the wire per server without capturing packets. ``globus-url-copy -dbg`` uses
the prefix ``debug: ``; gfal2 (with ``GFAL2_GRIDFTP_DEBUG=1``) uses ``gridftp debug :: ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GUC_PREFIX = "debug: "
GFAL_PREFIX = "gridftp debug :: "
_PERF_BYTES = re.compile(r"Stripe Bytes Transferred:\s*(\d+)")
_PERF_TIME = re.compile(r"Timestamp:\s*([\d.]+)")
_PROGRESS = re.compile(r"^\s*(\d+) bytes\s+[\d.]+ [KMG]?B/sec avg", re.MULTILINE)


@dataclass(frozen=True)
class Exchange:
    kind: str  # "command" or "reply"
    url: str
    text: str  # the command line, or the whole reply (lines joined with "\n")

    @property
    def code(self) -> int:
        return int(self.text[:3]) if self.kind == "reply" and self.text[:3].isdigit() else 0


def parse_debug(stderr: str, prefix: str = GUC_PREFIX) -> list[Exchange]:
    sending, response = prefix + "sending command to ", prefix + "response from "
    out: list[Exchange] = []
    lines = stderr.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith((sending, response)):
            kind = "command" if line.startswith(sending) else "reply"
            url = line.split(" to " if kind == "command" else " from ", 1)[1].rstrip(":")
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(prefix):
                body.append(lines[i].rstrip("\r"))
                i += 1
                if kind == "command":
                    break
            out.append(Exchange(kind, url, "\n".join(body)))
            continue
        i += 1
    return out


def on(exchanges: list[Exchange], port: int) -> list[Exchange]:
    """Only the exchanges with the server listening on ``port``."""
    return [e for e in exchanges if f":{port}/" in e.url]


def commands(exchanges: list[Exchange]) -> list[str]:
    return [e.text for e in exchanges if e.kind == "command"]


def replies(exchanges: list[Exchange]) -> list[str]:
    return [e.text for e in exchanges if e.kind == "reply"]


def perf_marker_bytes(exchanges: list[Exchange]) -> list[int]:
    """``Stripe Bytes Transferred`` of every 112 perf marker, in order."""
    found: list[int] = []
    for text in replies(exchanges):
        if text.startswith("112"):
            found.extend(int(m) for m in _PERF_BYTES.findall(text))
    return found


def perf_marker_times(exchanges: list[Exchange]) -> list[float]:
    """``Timestamp`` of every 112 perf marker, in order."""
    return [float(t) for text in replies(exchanges) if text.startswith("112")
            for t in _PERF_TIME.findall(text)]


def range_markers(exchanges: list[Exchange]) -> list[tuple[int, int]]:
    """Every ``111 Range Marker a-b,c-d`` range (end exclusive), in order."""
    found: list[tuple[int, int]] = []
    for text in replies(exchanges):
        if text.startswith("111 "):
            for item in text.split("Range Marker", 1)[1].strip().split(","):
                start, end = item.split("-")
                found.append((int(start), int(end)))
    return found


def progress_bytes(stdout: str) -> list[int]:
    """Byte counts of ``-vb`` progress lines (``   12345 bytes   1.00 MB/sec avg ...``).

    In a third-party transfer these come from the receiver's perf markers, and the client prints a
    line only when a marker's timestamp (tenths of a second) differs from the previous one's.
    """
    return [int(m) for m in _PROGRESS.findall(stdout.replace("\r", "\n"))]


def ranges_tile(ranges: list[tuple[int, int]], size: int) -> bool:
    """True when the (end-exclusive) ranges, sorted, cover [0, size) exactly, each once."""
    pos = 0
    for start, end in sorted(ranges):
        if start != pos or end <= start:
            return False
        pos = end
    return pos == size
