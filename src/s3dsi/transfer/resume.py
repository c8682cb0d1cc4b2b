"""Resuming a multipart upload that some daemon (this host or another) left unfinished.

A restarted STOR arrives with ``REST <ranges>``: the ranges the client was told (by 111 markers) are
stored. Everything needed to trust that claim is in S3, so any host behind the same DNS name or load
balancer can take the restart: the upload's records (``storage/records.py``: the part plan and the parts
with their checksums, as promised), ListMultipartUploads on the key (is the upload still open?) and
ListParts (is every promised part there, with the same ETag and size?). The upload is resumed only if a
record of the same user and path names an open upload whose verified parts cover every range the
client claims; otherwise the REST is refused before ``150`` and the client starts again from zero.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from s3dsi.storage.backend import Backend
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.journal import JournalEntry
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


def recorded_entries(backend: Backend, user: str, path: str) -> list[JournalEntry]:
    """Blocking: the records in S3 of ``user``'s uploads to ``path`` that name an upload id, newest first
    (unreadable records are skipped)."""
    entries = []
    for record in backend.upload_records(path).all():
        try:
            entry = JournalEntry.from_dict(record.entry)
        except (ValueError, TypeError, KeyError):
            continue
        if entry.user == user and entry.path == path and entry.upload_id and entry.token == record.token:
            entries.append(entry)
    return sorted(entries, key=lambda e: e.updated, reverse=True)


def find_resumable(backend: Backend, user: str, path: str,
                   held: Sequence[tuple[int, int]]) -> Resumable | None:
    """Blocking: the recorded upload of ``path`` whose stored parts cover ``held``, if any."""
    entries = recorded_entries(backend, user, path)
    if not entries:
        return None
    open_ids = {u.upload_id for u in backend.list_uploads(path)}
    for entry in entries:
        if entry.upload_id not in open_ids:
            continue  # completed or aborted; the janitor removes the record
        listed = {p.number: p for p in backend.list_parts(path, entry.upload_id)}
        parts = tuple(c for c in entry.parts
                      if c.number in listed and listed[c.number].etag == c.etag
                      and listed[c.number].size == c.size)
        if _covered(held, parts):
            return Resumable(entry, PartPlan.from_dict(entry.plan), parts)
    return None
