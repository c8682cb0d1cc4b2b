"""Control-channel replies: the ``Reply`` value, its wire encoding and the GridFTP error blocks.

Every text that goes into a reply is sanitised: CR, LF and NUL become a space, so a path (which may
contain anything) can never end a reply line early or inject a forged reply.

Transfer failures (``transfer_failed_reply``) use GT's ``500-Command failed. : ...`` block shape
but carry our error's ``GlobusError``/``GridFTP-*`` lines, so gfal2 and FTS can map the errno:

    500-Command failed. : GlobusError: v=1 c=PATH_NOT_FOUND
    500-GridFTP-Errno: 2
    500-GridFTP-Reason: System error in open
    500-GridFTP-Error-String: No such file or directory
    500 End.

The reply code follows one rule, taken from the error alone so that the caller never has to know
whether the failure happened before or after ``150``:

* a 4xx code of the error is kept (425/426 data-channel failures, 451 object-store failures): RFC 959
  calls these transient, and the client's restart logic may retry;
* 552 is kept (storage allocation exceeded, RFC 959's code for a STOR that ran out of space/quota);
* every other code (550, 553, 504, ...) becomes 500, which is what GT answers for a transfer that
  cannot be opened; the error class stays visible in the ``GlobusError`` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from s3dsi.protocol.errors import DsiError

_UNSAFE = re.compile(r"[\r\n\x00]")


def sanitize(text: str) -> str:
    """``text`` with CR, LF and NUL replaced by a space: safe inside one reply line."""
    return _UNSAFE.sub(" ", text)


def encode_line(line: str) -> bytes:
    # Paths decoded with surrogateescape go back to the client byte for byte.
    try:
        return line.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return line.encode("utf-8", "replace")


@dataclass(frozen=True)
class Reply:
    """One complete reply; ``lines`` are the exact wire lines without CRLF, code prefixes included."""

    code: int
    lines: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 100 <= self.code <= 599:
            raise ValueError(f"reply code out of range: {self.code}")
        if not self.lines:
            raise ValueError("a reply needs at least one line")
        for line in self.lines:
            if "\r" in line or "\n" in line:
                raise ValueError("reply lines must not contain CR or LF")
        last = self.lines[-1]
        if not (last == str(self.code) or last.startswith(f"{self.code} ")):
            raise ValueError(f"last line must start with '{self.code} ': {last!r}")

    # -- constructors ----------------------------------------------------------------------------
    @classmethod
    def line(cls, code: int, text: str) -> Reply:
        """``"226 Transfer Complete."``"""
        return cls(code, (f"{code} {sanitize(text)}",))

    @classmethod
    def multi(cls, code: int, first: str, body: Iterable[str], last: str) -> Reply:
        """``"211-first"``, the body lines verbatim (callers include their leading space), ``"211 last"``.

        A body line that starts with ``"<code> "`` would end the reply early for an RFC 959 client,
        so it gets one extra leading space.
        """
        terminator = f"{code} "
        lines = [f"{code}-{sanitize(first)}"]
        for raw in body:
            text = sanitize(raw)
            lines.append(" " + text if text.startswith(terminator) else text)
        lines.append(f"{code} {sanitize(last)}")
        return cls(code, tuple(lines))

    @classmethod
    def block(cls, code: int, lines: Iterable[str], last: str = "End.") -> Reply:
        """GridFTP error block: every line ``"550-<line>"``, then ``"550 End."``."""
        wire = [f"{code}-{sanitize(text)}" for text in lines]
        wire.append(f"{code} {sanitize(last)}")
        return cls(code, tuple(wire))

    # -- wire ------------------------------------------------------------------------------------
    def wire_lines(self) -> tuple[str, ...]:
        return self.lines

    def encode(self) -> bytes:
        """The reply as sent: CRLF after every line."""
        return b"".join(encode_line(line) + b"\r\n" for line in self.lines)

    @property
    def is_preliminary(self) -> bool:
        return 100 <= self.code < 200

    @property
    def is_final(self) -> bool:
        return not self.is_preliminary

    @property
    def is_success(self) -> bool:
        return 100 <= self.code < 400


# -- error blocks ----------------------------------------------------------------------------------

def error_reply(err: DsiError, *, prefix: str | None = None, code: int | None = None) -> Reply:
    """The GT error block for ``err``; ``prefix`` goes before the first line, joined with ``" : "``.

    ``error_reply(PathNotFound(operation="stat"))`` →
    ``550-GlobusError: v=1 c=PATH_NOT_FOUND`` ... ``550 End.``; with
    ``prefix="/p: Could not change directory."`` the first line becomes
    ``550-/p: Could not change directory. : GlobusError: v=1 c=PATH_NOT_FOUND``.
    """
    lines = list(err.reply_lines()) or [err.text]
    if prefix is not None:
        lines[0] = f"{prefix} : {lines[0]}"
    return Reply.block(code if code is not None else err.code, lines)


def cwd_failed_reply(path: str, err: DsiError) -> Reply:
    """CWD/CDUP failure: ``550-<path>: Could not change directory. : GlobusError: ...``."""
    return error_reply(err, prefix=f"{path}: Could not change directory.")


def transfer_failure_code(err: DsiError) -> int:
    """The code a failed transfer is answered with (rule in the module docstring)."""
    if 400 <= err.code < 500 or err.code == 552:
        return err.code
    return 500


def transfer_failed_reply(err: DsiError, *, code: int | None = None) -> Reply:
    """A transfer that could not be opened or failed while data moved (rule in the module docstring)."""
    return error_reply(err, prefix="Command failed.",
                       code=code if code is not None else transfer_failure_code(err))


# -- fixed replies the network layer sends ---------------------------------------------------------

TRANSFER_STARTING = Reply.line(150, "Beginning transfer.")
TRANSFER_REUSING = Reply.line(125, "Beginning transfer; reusing existing data connection.")
TRANSFER_COMPLETE = Reply.line(226, "Transfer Complete.")
TRANSFER_ABORTED = Reply.line(426, "Command Aborted.")
ABORT_SUCCESSFUL = Reply.line(226, "Abort successful")
PORT_OK = Reply.line(200, "PORT Command successful.")
PASSIVE_DELAYED = Reply.line(200, "Passive delayed.")
EPSV_ALL_OK = Reply.line(229, "EPSV ALL Successful.")
CWD_OK = Reply.line(250, "CWD command successful.")
ACTION_OK = Reply.line(250, "OK.")
RNFR_ACCEPTED = Reply.line(350, "OK. Send RNTO with destination name.")
LINE_TOO_LONG = Reply.line(500, "Command line too long.")
NOT_SUPPORTED = Reply.line(500, "Command not supported.")
SYNTAX_ERROR = Reply.line(501, "Syntax error in parameters or arguments.")
LOGIN_REQUIRED = Reply.line(530, "Please login with USER and PASS.")
UNKNOWN_CHECKSUM = Reply.line(500, "Unknown checksum algorithm requested.")
IDLE_TIMEOUT = Reply.line(421, "Idle Timeout: closing control connection.")


def quote_path(path: str) -> str:
    """RFC 959 quoting for 257 replies: the path in double quotes, embedded quotes doubled."""
    return '"' + path.replace('"', '""') + '"'


def pwd_reply(path: str) -> Reply:
    """``257 "/dir" is current directory.``"""
    return Reply.line(257, f"{quote_path(path)} is current directory.")


def mkd_reply(path: str) -> Reply:
    """``257 Directory "/abs/path" created successfully.``"""
    return Reply.line(257, f"Directory {quote_path(path)} created successfully.")


def size_reply(size: int) -> Reply:
    return Reply.line(213, str(size))


def ftp_timestamp(when: datetime) -> str:
    """``YYYYMMDDHHMMSS`` in UTC, as MDTM and the Modify fact use (naive datetimes are UTC)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return (f"{when.year:04d}{when.month:02d}{when.day:02d}"
            f"{when.hour:02d}{when.minute:02d}{when.second:02d}")


def mdtm_reply(modified: datetime) -> Reply:
    """``213 YYYYMMDDHHMMSS`` in UTC."""
    return Reply.line(213, ftp_timestamp(modified))


def cksm_reply(hexdigest: str) -> Reply:
    """``213 <lowercase hex>``: clients read the first token after the code."""
    return Reply.line(213, hexdigest.lower())
