"""Reads the byte-exact ``raw_*`` transcripts of the reference server (copied into fixtures/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Exchange:
    command: str
    replies: list[str] = field(default_factory=list)  # every wire line answered, in order


def load(name: str) -> list[Exchange]:
    """``C:`` lines with the ``S:``/``S|`` lines that followed them (``S?`` artefacts dropped)."""
    exchanges: list[Exchange] = []
    for line in (FIXTURES / f"{name}.txt").read_text().splitlines():
        if line.startswith("C: "):
            exchanges.append(Exchange(line[3:]))
        elif line.startswith(("S: ", "S| ")) and exchanges:
            exchanges[-1].replies.append(line[3:])
    return exchanges


def greeting(name: str) -> str:
    for line in (FIXTURES / f"{name}.txt").read_text().splitlines():
        if line.startswith("S: 220"):
            return line[3:]
    raise LookupError(name)


def server_log_reply(name: str, first_line: str) -> list[str]:
    """A multi-line reply from a server-log transcript: the ``[SERVER]:`` line and its continuations."""
    lines = (FIXTURES / f"{name}.txt").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(f"[SERVER]: {first_line}"):
            reply = [first_line]
            code = first_line[:3]
            for follow in lines[i + 1:]:
                reply.append(follow)
                if follow.startswith(f"{code} "):
                    return reply
    raise LookupError(first_line)
