"""The S3 connector configuration file (``/etc/globus/globus-gridftp-server-s3.conf``) format.

``key = value`` lines (``key value`` is accepted too); ``#`` starts a comment at the beginning of a line
or after white space outside quotes; a value may be wrapped in double quotes (kept verbatim, ``#``
included). Keys are case-sensitive, as in gridftp.d.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from s3dsi.config.textfile import TextFileError, lex_lines

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class KeyValue:
    path: str
    line: int
    key: str
    value: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _strip_comment(text: str) -> str:
    """The text before a ``#`` that starts a comment (at line start or after a blank, outside quotes)."""
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted and (index == 0 or text[index - 1] in " \t"):
            return text[:index]
    return text


def lex_line(text: str) -> tuple[str, str] | None:
    body = _strip_comment(text).strip()
    if not body:
        return None
    match = re.match(r"([^\s=]+)\s*(?:=\s*|\s+|$)", body)
    if match is None or not _KEY.fullmatch(match.group(1)):
        raise TextFileError("expected 'key = value'")
    key, value = match.group(1), body[match.end():].strip()
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
            raise TextFileError("badly quoted value")
        value = value[1:-1]
    elif '"' in value:
        raise TextFileError("a quote inside an unquoted value")
    return key, value


def parse_s3_conf(data: bytes, path: str) -> list[KeyValue]:
    return [KeyValue(path, number, key, value) for number, (key, value) in lex_lines(data, lex_line)]
