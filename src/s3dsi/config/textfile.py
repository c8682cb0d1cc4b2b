"""Bounded reading and line splitting of small administrator-written text files.

Shared by the configuration readers and the credential/password files: one size limit, strict UTF-8,
no NUL bytes, a leading BOM and CR line ends tolerated. Errors name the line but never quote it,
because for the credential map the line holds a secret.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import TypeVar

_Item = TypeVar("_Item")

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_LINE_CHARS = 64 * 1024
_BOM = b"\xef\xbb\xbf"


class TextFileError(Exception):
    """A file that cannot be read as text; ``line`` is 1-based, or None for the whole file."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason if line is None else f"line {line}: {reason}")

    def located(self, source: str) -> str:
        """``source:line: reason`` (or ``source: reason``), the form every error message uses."""
        return f"{source}: {self.reason}" if self.line is None else f"{source}:{self.line}: {self.reason}"


def read_bounded(fd: int, limit: int = MAX_FILE_BYTES) -> bytes:
    """At most ``limit`` bytes from an open descriptor; a longer file is an error, not truncated."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(1024 * 1024, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TextFileError(f"file is larger than {limit // 1024} KiB; refusing to read it")
    return b"".join(chunks)


def read_text_file(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a configuration file (regular file or character device such as /dev/null).

    Opened non-blocking so that a FIFO cannot hang the reader; directories, FIFOs and sockets are refused.
    Raises FileNotFoundError when missing and TextFileError for other problems.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise TextFileError("is a directory, not a file") from None
    except OSError as exc:
        raise TextFileError(f"cannot open: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise TextFileError("is a directory, not a file")
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise TextFileError("is not a regular file")
        os.set_blocking(fd, True)
        try:
            return read_bounded(fd, limit)
        except OSError as exc:
            raise TextFileError(f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)


def split_lines(data: bytes, max_line: int = MAX_LINE_CHARS) -> list[tuple[int, str]]:
    """(line number, text) pairs; the text keeps its leading/trailing spaces but not the line end."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    nul = data.find(b"\0")
    if nul >= 0:
        raise TextFileError("contains a NUL byte", data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextFileError("is not valid UTF-8", data.count(b"\n", 0, exc.start) + 1) from None
    lines: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > max_line:
            raise TextFileError(f"line is longer than {max_line} characters", number)
        lines.append((number, line.removesuffix("\r")))
    if text.endswith("\n") or not text:
        lines.pop()  # the empty piece after the final line end (or of an empty file)
    return lines


def lex_lines(data: bytes, lex: Callable[[str], _Item | None]) -> list[tuple[int, _Item]]:
    """(line number, ``lex(text)``) for every line ``lex`` does not skip (None); a TextFileError from
    ``lex`` gets the line number."""
    lexed: list[tuple[int, _Item]] = []
    for number, text in split_lines(data):
        try:
            item = lex(text)
        except TextFileError as exc:
            raise TextFileError(exc.reason, number) from None
        if item is not None:
            lexed.append((number, item))
    return lexed
