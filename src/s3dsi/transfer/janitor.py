"""The janitor: abort the multipart uploads this service left unfinished and nobody resumed, from the
records in S3, whichever host created them.

Every multipart upload the daemon creates has a record in its bucket (``storage/records.py``) from
before CreateMultipartUpload until it is completed or aborted, refreshed at every range marker and
resume. A record untouched for ``max_age`` (by its LastModified, S3's clock) belongs to an upload that
is no longer being written nor resumable in practice: the janitor aborts that upload and removes the
record. A record still without an upload id (an intent: the daemon died between writing it and learning
the id) names only the key: every upload of that key that no record claims and that S3 says was
initiated ``max_age`` ago or earlier is aborted, as a lifecycle rule would abort it (the one the intent
announced is among them; ListMultipartUploads tells nothing else about who created an upload). A young
record is kept: its upload may be running on another host, or waiting for its client to restart it.

Which buckets: every bucket the credentials of the map list (ListBuckets), each swept once with the
first credentials allowed to list its records, plus buckets named by the local cache (this host's own
uploads, e.g. in buckets of other accounts, which ListBuckets does not show) and by the caller.
Local cache entries written before records lived in S3 (no token) are swept as before: aborted with
their user's credentials once old enough. Cache entries whose record is gone are dropped.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from s3dsi.protocol.errors import DsiError
from s3dsi.storage.backend import Backend, StoredRecord
from s3dsi.storage.records import (
    ListedRecord,
    RecordError,
    delete_record,
    list_group,
    read_record,
    upload_target,
)
from s3dsi.storage.store import ObjectStore
from s3dsi.transfer.journal import JournalEntry, UploadJournal

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Swept:
    """An upload the janitor aborted (or would abort), or a record it could not act on."""

    bucket: str
    key: str
    upload_id: str
    user: str

    def describe(self) -> str:
        upload = f"upload {self.upload_id}" if self.upload_id else "no upload"
        return f"/{self.bucket}/{self.key} ({upload}, user {self.user or '?'})"


@dataclass
class SweepResult:
    aborted: list[Swept] = field(default_factory=list)
    kept: int = 0  # records younger than max_age
    failed: list[tuple[Swept, str]] = field(default_factory=list)
    records_removed: int = 0
    buckets: list[str] = field(default_factory=list)  # swept
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # buckets whose records were not listed


def _entry(record_entry: object) -> JournalEntry | None:
    try:
        return JournalEntry.from_dict(record_entry)  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class Janitor:
    def __init__(self, *, max_age: float, now: float | None = None, dry_run: bool = False) -> None:
        self.max_age = max_age
        self.now = time.time() if now is None else now
        self.dry_run = dry_run
        self.result = SweepResult()
        self._remaining: set[tuple[str, str]] = set()  # (bucket, token) of records left in S3

    def _old(self, listed: ListedRecord) -> bool:
        return self.now - listed.modified.timestamp() >= self.max_age

    # -- one bucket ------------------------------------------------------------------------------------
    def sweep_bucket(self, store: ObjectStore, bucket: str) -> None:
        """Blocking. DsiError when the bucket's records cannot be listed."""
        groups: dict[str, list[ListedRecord]] = defaultdict(list)
        for listed in list_group(store, bucket):
            groups[listed.group].append(listed)
        self.result.buckets.append(bucket)
        for members in groups.values():
            self._sweep_group(store, bucket, members)

    def _sweep_group(self, store: ObjectStore, bucket: str, members: list[ListedRecord]) -> None:
        old = [r for r in members if self._old(r)]
        for listed in members:
            if listed not in old:
                self._remaining.add((bucket, listed.token))
                self.result.kept += 1
        if not old:
            return
        records: dict[str, tuple[StoredRecord, JournalEntry]] = {}
        for listed in members:  # the young ones too: they claim their uploads
            try:
                record = read_record(store, listed)
            except RecordError:
                continue  # not ours: left alone
            except DsiError as err:
                self._remaining.add((bucket, listed.token))
                self.result.failed.append((Swept(bucket, listed.record_key, "", ""), err.text))
                continue
            entry = _entry(record.entry) if record is not None else None
            if record is not None and entry is not None:
                records[listed.token] = (record, entry)
        claimed = {entry.upload_id for _, entry in records.values() if entry.upload_id}
        for listed in old:
            if listed.token in records:
                self._sweep_record(store, listed, *records[listed.token], claimed)

    def _sweep_record(self, store: ObjectStore, listed: ListedRecord, record: StoredRecord,
                      entry: JournalEntry, claimed: set[str]) -> None:
        target = upload_target(record)
        swept = Swept(record.bucket, record.key, entry.upload_id, entry.user)
        try:
            if entry.upload_id:
                upload_ids = [entry.upload_id]
            else:  # an intent: the upload it announced, if S3 created it, is one nobody claims
                upload_ids = [u.upload_id for u in store.list_uploads(target) if u.upload_id not in claimed
                              and self.now - u.initiated.timestamp() >= self.max_age]
            for upload_id in upload_ids:
                if not self.dry_run:
                    store.abort_upload(target, upload_id)
                self.result.aborted.append(Swept(record.bucket, record.key, upload_id, entry.user))
            if not self.dry_run:
                delete_record(store, record.bucket, listed.record_key)
                self.result.records_removed += 1
            else:
                self._remaining.add((record.bucket, listed.token))
        except DsiError as err:
            self._remaining.add((record.bucket, listed.token))
            self.result.failed.append((swept, err.text))
            log.warning("janitor could not clean up %s: %s", swept.describe(), err.text)

    # -- every bucket the credentials can see --------------------------------------------------------------
    def sweep_stores(self, stores: Sequence[ObjectStore], hints: Iterable[str] = ()) -> None:
        """Each bucket the stores' credentials list, and each bucket in ``hints``, swept once with the
        first store allowed to list its records."""
        done: set[str] = set()
        refused: dict[str, str] = {}
        for store in stores:
            try:
                buckets = list(_bucket_names(store))
            except DsiError as err:
                self.result.unreadable.append(("/", err.text))
                continue
            for bucket in buckets:
                self._try_bucket(store, bucket, done, refused)
        for bucket in dict.fromkeys(hints):
            for store in stores:
                if self._try_bucket(store, bucket, done, refused):
                    break
        self.result.unreadable.extend((b, why) for b, why in refused.items() if b not in done)

    def _try_bucket(self, store: ObjectStore, bucket: str, done: set[str], refused: dict[str, str]) -> bool:
        if bucket in done:
            return True
        try:
            self.sweep_bucket(store, bucket)
        except DsiError as err:
            refused.setdefault(bucket, err.text)
            return False
        done.add(bucket)
        return True

    # -- the local cache -----------------------------------------------------------------------------------
    def sweep_legacy(self, journal: UploadJournal, backend_for: Callable[[str], Backend]) -> None:
        """Local entries written before records lived in S3 (no token): abort once old enough."""
        for entry in journal.entries():
            if entry.token:
                continue
            if self.now - entry.updated < self.max_age:
                self.result.kept += 1
                continue
            bucket, _, key = entry.path[1:].partition("/")
            swept = Swept(bucket, key, entry.upload_id, entry.user)
            if self.dry_run:
                self.result.aborted.append(swept)
                continue
            try:
                backend_for(entry.user).abort_upload(entry.path, entry.upload_id)
            except DsiError as err:
                self.result.failed.append((swept, err.text))
                continue
            journal.remove(entry)
            self.result.aborted.append(swept)

    def prune_cache(self, journal: UploadJournal) -> None:
        """Drop local entries whose record is gone from a bucket swept just now."""
        swept = set(self.result.buckets)
        for entry in journal.entries():
            if entry.token and entry.bucket in swept and (entry.bucket, entry.token) not in self._remaining:
                journal.remove(entry)


def _bucket_names(store: ObjectStore) -> Iterable[str]:
    token: str | None = None
    while True:
        listing = store.list_buckets(token)
        yield from (name for name, _ in listing.names)
        if not listing.next_token:
            return
        token = listing.next_token


def cache_hints(journal: UploadJournal) -> list[str]:
    """The buckets the local cache names (this host's own uploads)."""
    return list(dict.fromkeys(e.bucket for e in journal.entries() if e.token and e.bucket))


def store_of(backend: Backend) -> ObjectStore | None:
    """The object store under a user's back end (the namespace layer's, or a layer's above it)."""
    store = getattr(backend, "store", None)
    return store if store is not None and hasattr(store, "list_buckets") else None


def sweep_all(users: Iterable[str], backend_for: Callable[[str], Backend], journal: UploadJournal, *,
              max_age: float, hints: Iterable[str] = (), dry_run: bool = False,
              now: float | None = None) -> SweepResult:
    """Blocking: the whole janitor run, with the credentials of ``users`` (one per distinct store)."""
    janitor = Janitor(max_age=max_age, now=now, dry_run=dry_run)
    stores: list[ObjectStore] = []
    for user in users:
        try:
            store = store_of(backend_for(user))
        except DsiError as err:
            janitor.result.unreadable.append((f"user {user}", err.text))
            continue
        if store is not None:
            stores.append(store)
    janitor.sweep_stores(stores, [*hints, *cache_hints(journal)])
    janitor.sweep_legacy(journal, backend_for)
    if not dry_run:
        janitor.prune_cache(journal)
    return janitor.result
