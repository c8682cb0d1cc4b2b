"""Listing formats built from storage ``Entry`` values: MLSx facts, LIST/NLST lines, MLST/MLSC/STAT.

Choices (S3 has no inodes, owners or permission bits):

* Facts are printed in GT's order (Type, Modify, Charset, Size, Perm, UNIX.mode, UNIX.owner,
  UNIX.group, Unique, X.count), only the selected ones, each ending in ``;``. UNIX.uid/gid and
  UNIX.slink are not offered.
* ``Modify`` of an entry without a time (a prefix with no marker object) is ``19700101000000``.
* ``Perm`` (RFC 3659 letters) says what this server will actually do: objects ``dfrw`` (delete,
  rename, read, write; no ``a``: appending to an object is not supported); buckets and prefixes
  ``cdelmp`` (store into, remove when empty, enter, list, make subdirectories, delete contents;
  no ``f``: directories cannot be renamed); the bucket list ``/`` is ``elm``.
* ``UNIX.mode`` is 0644 for objects and 0755 for directories; owner and group are the session's
  local user.
* LIST lines follow GT's ``"%s %3d %8s %8s %12d %s %s"`` layout with nlink 1 and English month
  names; unlike GT, a time more than six months old (or in the future) shows the year, as ls does.
* A name that cannot be put on one line (empty, or containing CR, LF or NUL) is skipped: its
  line functions return ``b""``/None. Names ``.``/``..`` from S3 keys are skipped too; only the
  cdir/pdir entries may carry them. Lines always end in CRLF, in TYPE A as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from s3dsi.protocol.entries import Entry
from s3dsi.protocol.replies import Reply, ftp_timestamp, sanitize

SUPPORTED_FACTS: Final = ("Type", "Modify", "Charset", "Size", "Perm", "UNIX.mode", "UNIX.owner",
                          "UNIX.group", "Unique", "X.count")
DEFAULT_FACTS: Final = ("Type", "Modify", "Size", "Perm", "UNIX.mode", "UNIX.owner", "UNIX.group",
                        "Unique", "X.count")
# FEAT spelling, in GT's FEAT order; * marks facts on by default (X.count is printed by default on
# cdir, as GT does, but GT does not star it either).
FEAT_FACTS: Final = "Type*;Size*;Modify*;Perm*;Charset;UNIX.mode*;UNIX.owner*;UNIX.group*;Unique*;X.count;"

NO_TIME: Final = "19700101000000"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIX_MONTHS = timedelta(days=182)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FACT_VALUE_UNSAFE = re.compile(r"[;\s=\x00]")
_UNREPRESENTABLE = re.compile(r"[\r\n\x00]")

PERM_OBJECT: Final = "dfrw"
PERM_DIRECTORY: Final = "cdelmp"
PERM_ROOT: Final = "elm"


def representable(name: str) -> bool:
    """True if ``name`` can be one listing line."""
    return bool(name) and _UNREPRESENTABLE.search(name) is None


def _fact_value(text: str) -> str:
    return _FACT_VALUE_UNSAFE.sub("_", text)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def mlsx_facts(entry: Entry, *, facts: Sequence[str], owner: str, type_override: str | None = None,
               root: bool = False, count: int | None = None, group: str | None = None) -> str:
    """``Type=file;Modify=...;Size=n;...;`` for the selected ``facts`` (``""`` if none).

    ``type_override`` is ``cdir``/``pdir`` for the ``.``/``..`` lines, ``root`` marks the bucket
    list ``/``, ``count`` (entries in the directory) becomes ``X.count`` when selected and known.
    """
    selected = set(facts)
    owner_value = _fact_value(owner)
    values: dict[str, str | None] = {
        "Type": type_override or ("dir" if entry.is_dir else "file"),
        "Modify": ftp_timestamp(entry.modified) if entry.modified is not None else NO_TIME,
        "Charset": "UTF-8",
        "Size": str(entry.size),
        "Perm": PERM_ROOT if root else (PERM_DIRECTORY if entry.is_dir else PERM_OBJECT),
        "UNIX.mode": "0755" if entry.is_dir else "0644",
        "UNIX.owner": owner_value,
        "UNIX.group": _fact_value(group) if group is not None else owner_value,
        "Unique": _fact_value(entry.unique) if entry.unique else None,
        "X.count": str(count) if count is not None else None,
    }
    parts = [f"{fact}={values[fact]};" for fact in SUPPORTED_FACTS
             if fact in selected and values[fact] is not None]
    return "".join(parts)


def _listed_name(entry: Entry, name: str | None, type_override: str | None) -> str | None:
    text = entry.name if name is None else name
    if not representable(text):
        return None
    if text in (".", "..") and type_override is None:
        return None
    return text


def mlsd_text(entry: Entry, *, facts: Sequence[str], owner: str, name: str | None = None,
              type_override: str | None = None, root: bool = False, count: int | None = None) -> str | None:
    """``facts + " " + name`` without line end; None when the name cannot be listed."""
    shown = _listed_name(entry, name, type_override)
    if shown is None:
        return None
    fact_text = mlsx_facts(entry, facts=facts, owner=owner, type_override=type_override, root=root,
                           count=count)
    return f"{fact_text} {shown}"


def _wire(text: str | None) -> bytes:
    if text is None:
        return b""
    return text.encode("utf-8", "surrogateescape") + b"\r\n"


def mlsd_line(entry: Entry, *, facts: Sequence[str], owner: str, name: str | None = None,
              type_override: str | None = None, root: bool = False, count: int | None = None) -> bytes:
    """One MLSD/MLSR data-channel line with CRLF; ``b""`` for a name that cannot be listed."""
    return _wire(mlsd_text(entry, facts=facts, owner=owner, name=name, type_override=type_override,
                           root=root, count=count))


def _ls_date(when: datetime | None, now: datetime) -> str:
    moment = _utc(when) if when is not None else _EPOCH
    month = _MONTHS[moment.month - 1]
    if now - _SIX_MONTHS < moment <= now + timedelta(hours=1):
        return f"{month} {moment.day:2d} {moment.hour:02d}:{moment.minute:02d}"
    return f"{month} {moment.day:2d} {moment.year:5d}"


def list_text(entry: Entry, owner: str, *, now: datetime | None = None, name: str | None = None,
              group: str | None = None) -> str | None:
    """``-rw-r--r--   1   owner   owner       100000 Nov 22 13:49 name``; None if not listable."""
    shown = _listed_name(entry, name, "dir" if name in (".", "..") else None)
    if shown is None:
        return None
    mode = "drwxr-xr-x" if entry.is_dir else "-rw-r--r--"
    current = _utc(now) if now is not None else datetime.now(UTC)
    who = sanitize(owner)
    return (f"{mode} {1:3d} {who:>8} {sanitize(group) if group is not None else who:>8} "
            f"{entry.size:12d} {_ls_date(entry.modified, current)} {shown}")


def list_line(entry: Entry, owner: str, *, now: datetime | None = None, name: str | None = None,
              group: str | None = None) -> bytes:
    """One LIST data-channel line with CRLF; ``b""`` for a name that cannot be listed."""
    return _wire(list_text(entry, owner, now=now, name=name, group=group))


def nlst_line(name: str) -> bytes:
    """One NLST line (the bare name) with CRLF; ``b""`` for a name that cannot be listed."""
    return _wire(name if representable(name) else None)


def mlst_reply(path_as_given: str, entry: Entry, *, facts: Sequence[str], owner: str,
               root: bool = False) -> Reply:
    """``250-status of <path>`` / `` <facts> <path>`` / ``250 End.`` (the path echoed as given)."""
    fact_text = mlsx_facts(entry, facts=facts, owner=owner, root=root)
    return Reply.multi(250, f"status of {path_as_given}", [f" {fact_text} {path_as_given}"], "End.")


def mlsc_line(entry: Entry, *, facts: Sequence[str], owner: str, name: str | None = None,
              type_override: str | None = None, root: bool = False, count: int | None = None) -> str | None:
    """One MLSC continuation line (`` <facts> <name>``); None for a name that cannot be listed."""
    text = mlsd_text(entry, facts=facts, owner=owner, name=name, type_override=type_override, root=root,
                     count=count)
    return None if text is None else " " + text


def mlsc_reply(path_as_given: str, lines: Iterable[str | None]) -> Reply:
    """``250-Contents of <path>`` + the ``mlsc_line`` lines (None skipped) + ``250 End.``"""
    return Reply.multi(250, f"Contents of {path_as_given}", [line for line in lines if line is not None],
                       "End.")


def stat_reply(path_as_given: str, entry: Entry, *, owner: str, now: datetime | None = None) -> Reply:
    """``213-status of <path>`` / `` <ls -l line>`` / ``213 End.``"""
    name = entry.name
    if not representable(name) or name in (".", ".."):
        name = path_as_given.rstrip("/").rpartition("/")[2] or "/"
    text = list_text(entry, owner, now=now, name=sanitize(name))
    return Reply.multi(213, f"status of {path_as_given}", [f" {text or ''}"], "End.")
