"""Resuming a multipart upload this daemon left unfinished, and sweeping the ones nobody resumed.

A restarted STOR arrives with ``REST <ranges>``: the ranges the client was told (by 111 markers) are
stored. It is resumed only if a journalled upload for the same user and path still exists in S3 and
its listed parts cover every range the client claims; otherwise the REST is refused before ``150``
and the client starts again from zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s3dsi.protocol.errors import DsiError
from s3dsi.storage.backend import Backend
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.journal import JournalEntry, UploadJournal
from s3dsi.transfer.upload import CommittedPart

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resumable:
    entry: JournalEntry
    plan: PartPlan
    parts: tuple[CommittedPart, ...]


def _covered(held: Sequence[tuple[int, int]], parts: Sequence[CommittedPart]) -> bool:
    spans = sorted((p.start, p.start + p.size) for p in parts)
    for start, end in held:
        pos = start
        for a, b in spans:
            if a <= pos < b:
                pos = b
            if pos >= end:
                break
        if pos < end:
            return False
    return True


def find_resumable(backend: Backend, journal: UploadJournal, user: str, path: str,
                   held: Sequence[tuple[int, int]]) -> Resumable | None:
    """Blocking: the journalled upload of ``path`` whose stored parts cover ``held``, if any."""
    entries = journal.find(user, path)
    if not entries:
        return None
    open_ids = {u.upload_id for u in backend.list_uploads(path)}
    for entry in entries:
        if entry.upload_id not in open_ids:
            journal.remove(entry)  # completed or aborted elsewhere
            continue
        listed = {p.number: p for p in backend.list_parts(path, entry.upload_id)}
        parts = tuple(c for c in entry.parts
                      if c.number in listed and listed[c.number].etag == c.etag
                      and listed[c.number].size == c.size)
        if _covered(held, parts):
            return Resumable(entry, PartPlan.from_dict(entry.plan), parts)
    return None


@dataclass
class SweepResult:
    aborted: list[JournalEntry]
    kept: list[JournalEntry]
    failed: list[tuple[JournalEntry, str]]


def sweep(journal: UploadJournal, backend_for: Callable[[str], Backend], *, max_age: float,
          now: float | None = None, dry_run: bool = False) -> SweepResult:
    """Abort journalled uploads untouched for ``max_age`` seconds (the janitor)."""
    moment = time.time() if now is None else now
    result = SweepResult([], [], [])
    for entry in journal.entries():
        if moment - entry.updated < max_age:
            result.kept.append(entry)
            continue
        if dry_run:
            result.aborted.append(entry)
            continue
        try:
            backend_for(entry.user).abort_upload(entry.path, entry.upload_id)
        except DsiError as err:
            result.failed.append((entry, err.text))
            log.warning("janitor could not abort %s (%s): %s", entry.path, entry.upload_id, err.text)
            continue
        journal.remove(entry)
        result.aborted.append(entry)
    return result
