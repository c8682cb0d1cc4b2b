"""The S3 credential map (``~/.globus/s3``): ``localuser;ACCESS_KEY_ID;SECRET_ACCESS_KEY[;OPTIONS]`` lines.

Format as the original connector's, plus an optional fourth field: a comma-separated ``key=value`` list
(``identity/mapoptions.py`` names the keys). Credential keys say where the session's S3 credentials
come from (``role_arn`` with ``external_id``, ``session_name``, ``duration``: an AssumeRole with the
line's keys or with ``source``'s; ``source=default``: botocore's chain, ``profile=``); policy keys
narrow the site's S3 policy (``root``, ``buckets``, ``append_only``...). The key fields may be empty
only when ``source`` says where the credentials come from. A fourth field that is a bare role ARN is
taken as ``role_arn=ARN`` (the meaning it was reserved for).

Blank lines and ``#`` comments are allowed; white space around lines and fields is ignored; CRLF and a
BOM are tolerated. Errors name the line and the key, never a value: the line holds a secret. Every
secret loaded is registered with the log redactor.
"""

from __future__ import annotations

import os
import types
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from s3dsi.config.textfile import TextFileError, split_lines
from s3dsi.identity.mapoptions import MapOptions, OptionError, parse_options
from s3dsi.identity.securefile import FilePolicy, InsecureFileError, read_checked, write_secure_file
from s3dsi.observability.logging import REDACTED, register_secret

_FORMAT = "'localuser;ACCESS_KEY_ID;SECRET_ACCESS_KEY'"
MAX_FIELD = 4096


class MapError(Exception):
    """The map file is missing, unreadable, insecure or malformed. The message never holds a secret."""


@dataclass(frozen=True, repr=False)
class MapEntry:
    user: str
    access_key_id: str
    secret_access_key: str
    extra: str | None = None  # the fourth field as written
    options: MapOptions = field(default_factory=MapOptions, compare=False)  # the fourth field, parsed

    def __repr__(self) -> str:
        return (f"MapEntry(user={self.user!r}, access_key_id={self.access_key_id!r}, "
                f"secret_access_key={REDACTED!r}, extra={self.extra!r})")

    __str__ = __repr__

    @property
    def has_keys(self) -> bool:
        return bool(self.access_key_id)

    def render(self) -> str:
        fields = [self.user, self.access_key_id, self.secret_access_key]
        if self.extra:
            fields.append(self.extra)
        return ";".join(fields)


def _bad_characters(value: str) -> bool:
    return any(c.isspace() or c == ";" or unicodedata.category(c).startswith("C") for c in value)


def _check_field(label: str, value: str) -> None:
    if len(value) > MAX_FIELD:
        raise MapError(f"{label} is longer than {MAX_FIELD} characters")
    if _bad_characters(value):
        raise MapError(f"{label} contains white space, ';' or control characters")


def check_entry(user: str, access_key_id: str, secret_access_key: str, extra: str | None = None) -> MapEntry:
    """A validated entry; MapError (never quoting a value) if a field is empty or holds bad characters,
    or the fourth field is not a valid option list."""
    if not user:
        raise MapError("empty user name")
    _check_field("user name", user)
    if user.startswith("#"):
        raise MapError("user name starts with '#'")
    if extra is not None and extra != "":
        _check_field("fourth field", extra)
    try:
        options = parse_options(extra or "")
    except OptionError as exc:
        raise MapError(f"fourth field: {exc}") from None
    if options.source is None:
        for label, value in (("access key id", access_key_id), ("secret access key", secret_access_key)):
            if not value:
                raise MapError(f"empty {label} (the key fields may be empty only with source=default in "
                               "the fourth field)")
    elif access_key_id or secret_access_key:
        raise MapError(f"source={options.source} takes the credentials from the daemon's environment: "
                       "leave the access key id and secret fields empty")
    for label, value in (("access key id", access_key_id), ("secret access key", secret_access_key)):
        _check_field(label, value)
    return MapEntry(user, access_key_id, secret_access_key, extra or None, options)


def _parse_line(text: str) -> MapEntry | None:
    body = text.strip()
    if not body or body.startswith("#"):
        return None
    fields = [f.strip() for f in body.split(";")]
    if len(fields) < 3:
        raise MapError(f"expected {_FORMAT}, found {len(fields)} field(s)")
    if len(fields) > 4:
        raise MapError(f"expected {_FORMAT} and at most one more field, found {len(fields)} fields")
    return check_entry(fields[0], fields[1], fields[2], fields[3] if len(fields) == 4 else None)


def _read_checked(path: str, owner_uid: int | None) -> bytes:
    data, _ = read_checked(path, FilePolicy.private_to(owner_uid), MapError)
    return data


@dataclass(frozen=True)
class UserMap:
    """The parsed map: local user name -> entry."""

    entries: Mapping[str, MapEntry]
    path: str | None = None

    @classmethod
    def parse(cls, data: bytes, source: str = "<map>") -> UserMap:
        try:
            lines = split_lines(data)
        except TextFileError as exc:
            raise MapError(exc.located(source)) from None
        entries: dict[str, MapEntry] = {}
        first_line: dict[str, int] = {}
        for number, text in lines:
            try:
                entry = _parse_line(text)
            except MapError as exc:
                raise MapError(f"{source}:{number}: {exc}") from None
            if entry is None:
                continue
            if entry.user in entries:
                raise MapError(f"{source}:{number}: duplicate entry for a user already mapped on line "
                               f"{first_line[entry.user]}")
            entries[entry.user] = entry
            first_line[entry.user] = number
        for entry in entries.values():
            register_secret(entry.secret_access_key)  # an empty one (source=default) is ignored
        return cls(types.MappingProxyType(entries), source)

    @classmethod
    def load(cls, path: str, *, owner_uid: int | None = None) -> UserMap:
        """Read and check ``path``: mode 0600 (no group/other bits), owned by ``owner_uid`` (default: the
        effective user) or root, in a directory nobody else can write, not a symbolic link."""
        return cls.parse(_read_checked(path, owner_uid), path)

    def lookup(self, user: str) -> MapEntry | None:
        return self.entries.get(user)

    def users(self) -> list[str]:
        return sorted(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, user: object) -> bool:
        return user in self.entries

    def __iter__(self) -> Iterator[MapEntry]:
        return iter(self.entries.values())


def edit_map_text(text: str, *, put: MapEntry | None = None, remove: str | None = None) -> str:
    """``text`` (an already valid map) with ``put`` replacing or appending its user's line, or the line
    of ``remove`` dropped; comments and other lines are kept as they are."""
    out: list[str] = []
    replaced = False
    for _, line in split_lines(text.encode("utf-8")):
        body = line.strip()
        user = body.split(";", 1)[0].strip() if body and not body.startswith("#") else None
        if user is not None and put is not None and user == put.user:
            out.append(put.render())
            replaced = True
        elif user is None or user != remove:
            out.append(line)
    if put is not None and not replaced:
        out.append(put.render())
    return "".join(f"{line}\n" for line in out)


def read_map_text(path: str, *, owner_uid: int | None = None) -> str:
    """The text of an existing map after a full check (empty when the file does not exist yet)."""
    if not os.path.lexists(path):
        return ""
    data = _read_checked(path, owner_uid)
    UserMap.parse(data, path)
    return data.decode("utf-8-sig")


def write_map_text(path: str, text: str, *, owner_uid: int | None = None) -> None:
    """Write a map atomically (0600, directory 0700, umask 077) after checking it parses."""
    UserMap.parse(text.encode("utf-8"), path)
    try:
        write_secure_file(path, text.encode("utf-8"), FilePolicy.private_to(owner_uid))
    except InsecureFileError as exc:
        raise MapError(str(exc)) from None
    except OSError as exc:
        raise MapError(f"{path}: cannot write: {exc.strerror}") from None
