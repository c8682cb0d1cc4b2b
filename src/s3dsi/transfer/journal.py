"""The restart journal: multipart uploads this daemon left unfinished so that a client can resume them.

An entry is written the moment a multipart upload exists (before any byte of it is in S3), updated at
every ``111 Range Marker`` with the parts the client was told are stored, and removed when the upload
completes or is aborted — so an upload whose daemon was killed, or whose abort S3 refused, is still
known to the janitor. "Uploads this service created" are exactly the journalled ones: S3's
ListMultipartUploads cannot tell them apart from other tools' uploads. Entries hold no secrets: the
local user whose map entry owns the upload, the path, the upload id, the part plan and the parts with
their checksums.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s3dsi.transfer.upload import CommittedPart


@dataclass(frozen=True)
class JournalEntry:
    user: str
    path: str
    upload_id: str
    plan: dict[str, Any]
    parts: tuple[CommittedPart, ...] = ()
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        digest = hashlib.sha256(f"{self.user}\0{self.path}\0{self.upload_id}".encode()).hexdigest()
        return digest[:40]

    def to_json(self) -> str:
        data = asdict(self)
        data["parts"] = [asdict(p) for p in self.parts]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JournalEntry:
        data = json.loads(text)
        parts = tuple(CommittedPart(**p) for p in data.pop("parts", []))
        return cls(parts=parts, **data)


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "s3dsi")


class UploadJournal:
    """One JSON file per entry under ``<state_dir>/uploads``; writes are atomic (temp file + rename)."""

    def __init__(self, state_dir: str | None) -> None:
        self.directory = Path(state_dir or default_state_dir()) / "uploads"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def record(self, entry: JournalEntry) -> None:
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(entry.to_json())
                f.flush()
                os.fsync(f.fileno())
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
