"""The grid-mapfile: which local accounts a certificate subject (DN) may use.

Format (GCT's ``globus_gss_assist`` gridmap): one entry a line, ``"<DN>" user[,user...]``; the DN is
in ``X509_NAME_oneline`` form (``security/dn.py``) and may be unquoted when it holds no white space;
``#`` starts a comment line; blank lines are ignored. Inside the DN ``\\xHH`` stands for the byte HH
and a backslash escapes the next character (``\\"``, ``\\/``). GCT compares the DN it got from the
certificate after the same unescaping, so ``\\xC3\\xBC`` and a literal ``ü`` match each other; we do
the same, byte for byte, case-sensitively.

The first user of an entry is the default account (``USER :globus-mapping:``); an explicit
``USER name`` is accepted only when the entry lists that name. The file is read at every login
(edits apply at once) and refused when group/others may write it, when it is owned by anyone but
root or the reading user, or is a symbolic link: whoever writes it decides who becomes whom.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from s3dsi.config.textfile import TextFileError, split_lines
from s3dsi.identity.securefile import FilePolicy, read_checked

DEFAULT_GRIDMAP = "/etc/grid-security/grid-mapfile"
GLOBUS_MAPPING = ":globus-mapping:"
_HEX = b"0123456789abcdefABCDEF"
_USER_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]*\$?")


class GridMapError(Exception):
    """The grid-mapfile is missing, unreadable, insecure or has a bad line (``file:line: reason``)."""


def unescape(dn: str) -> bytes:
    """The DN's bytes with ``\\xHH`` and ``\\c`` escapes resolved (the form entries are compared in)."""
    raw = dn.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte == 0x5C and i + 1 < len(raw):  # backslash
            nxt = raw[i + 1]
            hexdigits = raw[i + 2:i + 4]
            if nxt in b"xX" and len(hexdigits) == 2 and all(c in _HEX for c in hexdigits):
                out.append(int(hexdigits, 16))
                i += 4
                continue
            out.append(nxt)
            i += 2
            continue
        out.append(byte)
        i += 1
    return bytes(out)


def _parse_line(text: str) -> tuple[str, tuple[str, ...]] | None:
    body = text.strip()
    if not body or body.startswith("#"):
        return None
    if body.startswith('"'):
        end = 1
        while True:
            end = body.find('"', end)
            if end < 0:
                raise TextFileError("the DN has no closing quote")
            if body[end - 1] != "\\":
                break
            end += 1
        dn, rest = body[1:end], body[end + 1:]
        if rest and not rest[0].isspace():
            raise TextFileError("expected white space between the quoted DN and the user names")
    else:
        parts = body.split(None, 1)
        dn, rest = parts[0], parts[1] if len(parts) > 1 else ""
    if not dn:
        raise TextFileError("empty DN")
    users = tuple(name.strip() for name in rest.strip().split(",")) if rest.strip() else ()
    if not users:
        raise TextFileError("no local user name after the DN")
    for name in users:
        if not _USER_NAME.fullmatch(name):
            raise TextFileError(f"bad local user name {name[:40]!r} (names are separated by commas)")
    return dn, users


@dataclass(frozen=True)
class GridMap:
    """DN (unescaped bytes) -> local user names, first one the default."""

    entries: Mapping[bytes, tuple[str, ...]]
    source: str = "<grid-mapfile>"

    @classmethod
    def parse(cls, data: bytes, source: str = "<grid-mapfile>") -> GridMap:
        entries: dict[bytes, tuple[str, ...]] = {}
        try:
            lines = split_lines(data)
        except TextFileError as exc:
            raise GridMapError(exc.located(source)) from None
        for number, text in lines:
            try:
                parsed = _parse_line(text)
            except TextFileError as exc:
                raise GridMapError(f"{source}:{number}: {exc.reason}") from None
            if parsed is None:
                continue
            key = unescape(parsed[0])
            # GCT takes the first matching line; a later duplicate adds nothing
            entries.setdefault(key, parsed[1])
        return cls(entries, source)

    @classmethod
    def load(cls, path: str) -> GridMap:
        """Read ``path`` after the checks (not writable by group/others, owned by root or us)."""
        policy = FilePolicy(frozenset({os.geteuid(), 0}), forbidden_mode=0o022)
        data, _ = read_checked(path, policy, GridMapError)
        return cls.parse(data, path)

    def users_for(self, dn: str) -> tuple[str, ...]:
        return self.entries.get(unescape(dn), ())

    def local_user(self, dn: str, requested: str) -> str | None:
        """The account ``dn`` logs in as: the default for ``:globus-mapping:`` (or an empty name), the
        requested name only when the DN's entry lists it; None when not allowed."""
        users = self.users_for(dn)
        if not users:
            return None
        if requested in ("", GLOBUS_MAPPING):
            return users[0]
        return requested if requested in users else None


def gridmap_path(configured: str | None, environ: Mapping[str, str]) -> str:
    """The ``gridmap`` option, else ``$GRIDMAP``, else /etc/grid-security/grid-mapfile."""
    return configured or environ.get("GRIDMAP") or DEFAULT_GRIDMAP
