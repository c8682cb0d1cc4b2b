"""The globus-gridftp-server configuration file format: lexing lines and listing a gridftp.d directory.

Rules, as the reference server reads them (``globus_i_gfs_config.c``): a line is ``option value``; the
option and the value are each one word or a ``"quoted string"`` (no escapes, quotes removed); only
white space may follow the value; a line whose first non-blank character is ``#`` is a comment (so a
``#`` inside a quoted value is data); ``$NAME value`` sets an environment variable. In a directory every
file is read in byte order of its name, except hidden files, ``*~`` and package-manager leftovers
(``.bak``, ``.rpmnew``, ``.rpmsave``, ``.dpkg-dist``, ``.dpkg-new``, ``.dpkg-old``).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from s3dsi.config.textfile import TextFileError, lex_lines

_SPACE = " \t\n\v\f\r"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SKIPPED_SUFFIXES = (".bak", ".dpkg-dist", ".dpkg-new", ".dpkg-old", ".rpmnew", ".rpmsave")


@dataclass(frozen=True)
class ConfLine:
    """One meaningful line: an option (``env=False``) or a ``$NAME value`` assignment (``env=True``)."""

    path: str
    line: int
    name: str
    value: str
    env: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _word(text: str, pos: int) -> tuple[str, int] | None:
    """A quoted string or a run of non-blank characters starting at ``pos``; None when nothing is there."""
    if pos >= len(text):
        return None
    if text[pos] == '"':
        end = text.find('"', pos + 1)
        if end < 0:
            raise TextFileError("unterminated quoted string")
        return text[pos + 1:end], end + 1
    end = pos
    while end < len(text) and text[end] not in _SPACE:
        end += 1
    return text[pos:end], end


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def lex_line(text: str) -> tuple[str, str, bool] | None:
    """(name, value, is_env) for one line, None for blank lines and comments; TextFileError if malformed."""
    pos = _skip_space(text, 0)
    if pos == len(text) or text[pos] == "#":
        return None
    env = text[pos] == "$"
    if env:
        pos = _skip_space(text, pos + 1)
    name = _word(text, pos)
    if name is None or not name[0]:
        raise TextFileError("expected an option name")
    if env and not _ENV_NAME.fullmatch(name[0]):
        raise TextFileError("expected an environment variable name after '$'")
    value = _word(text, _skip_space(text, name[1]))
    if value is None:
        raise TextFileError(f"option {name[0]!r} has no value")
    if _skip_space(text, value[1]) != len(text):
        raise TextFileError("unexpected text after the value (quote values that contain spaces; "
                            "comments must be on their own line)")
    return name[0], value[0], env


def parse_conf(data: bytes, path: str) -> list[ConfLine]:
    """Every option and environment line of one file, in order. Raises TextFileError with the line."""
    return [ConfLine(path, number, name, value, env)
            for number, (name, value, env) in lex_lines(data, lex_line)]


def is_loaded_name(name: str) -> bool:
    """Whether a file name in a gridftp.d directory is read (see the module rules)."""
    return not (name.startswith(".") or name.endswith("~") or name.endswith(_SKIPPED_SUFFIXES))


def directory_files(directory: str) -> list[str]:
    """Paths of the files of a gridftp.d directory to read, in load order. OSError if it cannot be listed."""
    names = sorted((n for n in os.listdir(directory) if is_loaded_name(n)), key=os.fsencode)
    paths: list[str] = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            if stat.S_ISDIR(os.stat(path).st_mode):
                continue
        except OSError:
            pass  # a dangling link: reading it reports the error, as the reference server does
        paths.append(path)
    return paths
