"""Control-channel bytes to command lines: Telnet IAC removal, CRLF framing, bounded line length.

Decoding is UTF-8 with ``surrogateescape``: bytes that are not UTF-8 survive as lone surrogates
(U+DC80..U+DCFF), so they are never silently turned into a *different* valid name (which is what
``errors="replace"`` would do, possibly addressing another object). ``CommandLine.has_undecodable``
tells them apart; the protocol core refuses such paths with 553, and replies re-encode them to the
original bytes.

Telnet (RFC 854) handling applies to the whole stream, across reads: ``IAC IAC`` is a literal 0xFF,
``IAC WILL|WONT|DO|DONT <opt>`` is dropped (3 bytes), ``IAC <command 0xF0..0xFA>`` (IP, DM, ...) is
dropped (2 bytes) and a lone ``IAC`` before any other byte is dropped on its own. That last rule is
what makes ``FF F4 FF "ABOR"`` (the urgent-data DM swallowed by the socket) read as ``ABOR``.

A line ends at LF; one or more CR before the LF are part of the terminator. A CR elsewhere stays in
the line (and is sanitised out of any reply that echoes it). A line longer than ``max_line`` bytes
(the CR of CRLF not counted) is reported once as ``too_long`` as soon as the limit is passed, and the
rest of it is discarded as it arrives, so a peer that never sends LF cannot make us buffer more
than ``max_line`` bytes. Empty lines are returned too (verb ``""``), so that every line sent gets
exactly one reply (``500 Command not supported.``) and pipelined replies stay aligned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 16 * 1024
# What an RFC 2228 layer puts in place of a command that arrived unprotected (the core answers 533) or
# whose token could not be decoded (535); a NUL cannot start a real command line.
UNPROTECTED_LINE = b"\x00UNPROTECTED\r\n"
UNDECODABLE_LINE = b"\x00UNDECODABLE\r\n"

IAC = 0xFF
_WILL, _WONT, _DO, _DONT = 0xFB, 0xFC, 0xFD, 0xFE
_TELNET_COMMANDS_START = 0xF0  # SE; 0xF0..0xFA are two-byte commands (IP = 0xF4, DM = 0xF2)
_IAC_BYTE = b"\xff"

_NORMAL, _AFTER_IAC, _OPTION = 0, 1, 2
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# PASS/ADAT and whatever follows, however the line is spaced (" PASS x", "PASS\tx" are no valid command,
# but they are logged like every line)
_SECRET_LINE = re.compile(r"\s*(PASS|ADAT)(?![A-Za-z0-9_])(.*\S)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class CommandLine:
    """One command. ``arg`` is everything after the first space (not stripped), None if empty.

    ``raw`` of a PASS/ADAT line holds a secret: log ``redacted`` instead.
    """

    verb: str
    arg: str | None
    raw: str
    too_long: bool = False

    @property
    def has_undecodable(self) -> bool:
        """True if the line held bytes that are not UTF-8 (kept as lone surrogates)."""
        return _UNDECODABLE.search(self.raw) is not None

    @property
    def redacted(self) -> str:
        """The line safe for a log: the argument of PASS/ADAT replaced by ``***``."""
        secret = _SECRET_LINE.match(self.raw)
        if secret is not None:
            return f"{secret.group(1).upper()} ***"
        return self.raw

    @classmethod
    def parse(cls, text: str, *, too_long: bool = False) -> CommandLine:
        verb, _, rest = text.partition(" ")
        return cls(verb=verb.upper(), arg=rest or None, raw=text, too_long=too_long)


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class ControlLineBuffer:
    """Sans-IO framing of the control stream: ``feed(bytes)`` returns the complete lines it finished."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        if max_line < 16:
            raise ValueError("max_line too small")
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False
        self._telnet = _NORMAL

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held (always <= max_line)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[CommandLine]:
        text = self._strip_telnet(data)
        lines: list[CommandLine] = []
        start = 0
        while True:
            end = text.find(b"\n", start)
            if end < 0:
                break
            chunk = text[start:end]
            start = end + 1
            if self._discarding:
                self._discarding = False
                self._buf.clear()
                continue
            if len(self._buf) + len(chunk) > self.max_line + 1:  # +1: the CR of CRLF
                lines.append(self._too_long(bytes(self._buf) + chunk))
                self._buf.clear()
                continue
            self._buf += chunk
            lines.append(CommandLine.parse(decode(bytes(self._buf).rstrip(b"\r"))))
            self._buf.clear()
        rest = text[start:]
        if self._discarding:
            return lines
        if len(self._buf) + len(rest) > self.max_line + 1:
            lines.append(self._too_long(bytes(self._buf) + rest))
            self._buf.clear()
            self._discarding = True
        else:
            self._buf += rest
        return lines

    def _too_long(self, head: bytes) -> CommandLine:
        # Keep only a short head: enough for the verb in a log line, nothing more.
        return CommandLine.parse(decode(head[:64]).rstrip("\r"), too_long=True)

    def _strip_telnet(self, data: bytes) -> bytes:
        if self._telnet == _NORMAL and _IAC_BYTE not in data:
            return data
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            state = self._telnet
            if state == _NORMAL:
                j = data.find(_IAC_BYTE, i)
                if j < 0:
                    out += data[i:]
                    break
                out += data[i:j]
                i = j + 1
                self._telnet = _AFTER_IAC
                continue
            byte = data[i]
            i += 1
            self._telnet = _NORMAL
            if state == _OPTION:
                continue
            if byte == IAC:
                out.append(IAC)
            elif byte in (_WILL, _WONT, _DO, _DONT):
                self._telnet = _OPTION
            elif byte < _TELNET_COMMANDS_START:
                out.append(byte)
        return bytes(out)
