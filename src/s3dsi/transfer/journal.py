"""What a restart record says about one multipart upload (``JournalEntry``), and the host's local cache
of those records (``UploadJournal``).

The record itself lives in S3, next to the upload (``storage/records.py``): it is written before
CreateMultipartUpload (an intent, without the upload id), again once the upload exists, at every ``111
Range Marker`` with the parts the client was told are stored, and removed when the upload completes or
is aborted. So any host can resume the upload and any host's janitor can clean it up; a host keeps
nothing that matters. The local cache (one JSON file per upload under ``state_dir/uploads``) is written
best effort beside it: it tells the janitor of this host which buckets it used (a bucket of another
account is not in ListBuckets) and helps an administrator see what a host left; losing it loses
nothing. Entries hold no secrets: the local user whose map entry owns the upload, the path, the upload
id, the part plan and the parts with their checksums, the record's token and the host that wrote it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s3dsi.transfer.upload import CommittedPart


@dataclass(frozen=True)
class JournalEntry:
    user: str
    path: str  # as the session named it
    upload_id: str  # "" in an intent: written before S3 gave the upload its id
    plan: dict[str, Any]
    parts: tuple[CommittedPart, ...] = ()
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    token: str = ""  # the S3 record's name; "" in a local entry written before records lived in S3
    host: str = ""  # who wrote it (for people reading records; never trusted)
    bucket: str = ""  # where the S3 record is (local cache entries: the janitor's hint)

    @property
    def key(self) -> str:
        digest = hashlib.sha256(f"{self.user}\0{self.path}\0{self.token or self.upload_id}".encode())
        return digest.hexdigest()[:40]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["parts"] = [asdict(p) for p in self.parts]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JournalEntry:
        """ValueError/TypeError/KeyError when ``data`` is not an entry."""
        fields = dict(data)
        parts = tuple(CommittedPart(**p) for p in fields.pop("parts", []))
        known = {k: v for k, v in fields.items() if k in _FIELDS}
        entry = cls(parts=parts, **known)
        if not isinstance(entry.user, str) or not isinstance(entry.path, str) \
                or not isinstance(entry.upload_id, str) or not isinstance(entry.plan, dict):
            raise ValueError("not a journal entry")
        return entry

    @classmethod
    def from_json(cls, text: str) -> JournalEntry:
        return cls.from_dict(json.loads(text))


_FIELDS = frozenset(f for f in JournalEntry.__dataclass_fields__ if f != "parts")


def new_token() -> str:
    """A fresh record name (32 hex digits)."""
    return secrets.token_hex(16)


def this_host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "s3dsi")


class UploadJournal:
    """The local cache: one JSON file per entry under ``<state_dir>/uploads``; writes are atomic (temp
    file + rename). Correctness never depends on it (the records in S3 decide)."""

    def __init__(self, state_dir: str | None) -> None:
        self.directory = Path(state_dir or default_state_dir()) / "uploads"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def record(self, entry: JournalEntry) -> None:
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(entry.to_json())  # no fsync: a cache; a torn entry is skipped as damaged
            os.replace(tmp, self.directory / f"{entry.key}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove(self, entry: JournalEntry) -> None:
        with contextlib.suppress(OSError):
            (self.directory / f"{entry.key}.json").unlink()

    def entries(self) -> Iterator[JournalEntry]:
        if not self.directory.is_dir():
            return
        for file in sorted(self.directory.glob("*.json")):
            try:
                yield JournalEntry.from_json(file.read_text())
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a damaged entry is skipped; the janitor cannot act on it either

    def find(self, user: str, path: str) -> list[JournalEntry]:
        """Entries for this user and path, newest first."""
        found = [e for e in self.entries() if e.user == user and e.path == path]
        return sorted(found, key=lambda e: e.updated, reverse=True)
