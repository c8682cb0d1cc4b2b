"""The janitor over restart records: old records' uploads aborted, young ones kept, intents matched to
the upload they announced, uploads other records claim left alone, the local cache pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend
from s3dsi.storage.records import bucket_records
from s3dsi.transfer.janitor import sweep_all
from s3dsi.transfer.journal import JournalEntry, UploadJournal, new_token

START = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def setup() -> tuple[MemoryBackend, Clock]:
    clock = Clock()
    backend = MemoryBackend(clock=clock)
    backend.create_bucket("bkt")
    backend.create_bucket("theirs", listed=False)  # another account's bucket, reached by path
    return backend, clock


def record(backend: MemoryBackend, path: str, upload_id: str, token: str | None = None,
           user: str = "alice") -> JournalEntry:
    entry = JournalEntry(user=user, path=path, upload_id=upload_id, plan={}, token=token or new_token(),
                         bucket=path.split("/")[1])
    backend.upload_records(path).put(entry.token, entry.to_dict())
    return entry


def sweep(backend: MemoryBackend, clock: Clock, journal: UploadJournal, max_age: float, **kw: object):  # type: ignore[no-untyped-def]
    shared = SharedBackend(backend)
    return sweep_all(shared.users(), shared.backend_for, journal, max_age=max_age,
                     now=clock.now.timestamp(), **kw)  # type: ignore[arg-type]


def test_old_records_are_swept_young_ones_kept(tmp_path: Path) -> None:
    backend, clock = setup()
    old_id = backend.create_upload("/bkt/old")
    record(backend, "/bkt/old", old_id)
    clock.advance(3600)
    young_id = backend.create_upload("/bkt/young")
    record(backend, "/bkt/young", young_id)
    journal = UploadJournal(str(tmp_path))
    dry = sweep(backend, clock, journal, 1800, dry_run=True)
    assert [s.upload_id for s in dry.aborted] == [old_id]
    assert len(backend.list_uploads("/bkt/old")) == 1 and len(bucket_records(backend.store, "bkt")) == 2
    result = sweep(backend, clock, journal, 1800)
    assert [s.upload_id for s in result.aborted] == [old_id] and result.kept == 1 and not result.failed
    assert backend.list_uploads("/bkt/old") == []
    assert [u.upload_id for u in backend.list_uploads("/bkt/young")] == [young_id]
    assert [r.key for r in bucket_records(backend.store, "bkt")] == ["young"]


def test_an_intent_leads_to_the_unclaimed_old_uploads_of_its_key(tmp_path: Path) -> None:
    """The daemon died between its intent record and learning the upload id: the uploads of that key that
    no record claims and that are old enough are aborted (the announced one among them, as a lifecycle
    rule would); one another record claims and one too young are not."""
    backend, clock = setup()
    before = backend.create_upload("/bkt/k")  # unrecorded, long before the intent
    clock.advance(600)
    record(backend, "/bkt/k", "")  # the intent
    clock.advance(2)
    announced = backend.create_upload("/bkt/k")
    clock.advance(3)
    claimed = backend.create_upload("/bkt/k")  # another session's, in the same moment
    token = record(backend, "/bkt/k", claimed).token
    clock.advance(2500)
    young = backend.create_upload("/bkt/k")
    record(backend, "/bkt/k", claimed, token=token)  # its range markers keep its record young
    clock.advance(1000)
    result = sweep(backend, clock, UploadJournal(str(tmp_path)), 2000)
    assert sorted(s.upload_id for s in result.aborted) == sorted([before, announced])
    assert sorted(u.upload_id for u in backend.list_uploads("/bkt/k")) == sorted([claimed, young])
    assert [r.entry["upload_id"] for r in bucket_records(backend.store, "bkt")] == [claimed]


def test_an_intent_without_upload_is_just_removed(tmp_path: Path) -> None:
    backend, clock = setup()
    record(backend, "/bkt/k", "")
    clock.advance(100)
    result = sweep(backend, clock, UploadJournal(str(tmp_path)), 10)
    assert result.aborted == [] and result.records_removed == 1
    assert bucket_records(backend.store, "bkt") == []


def test_buckets_of_the_local_cache_are_swept_and_the_cache_pruned(tmp_path: Path) -> None:
    """A bucket of another account is not in ListBuckets: the cache (or --bucket) names it."""
    backend, clock = setup()
    upload_id = backend.create_upload("/theirs/k")
    entry = record(backend, "/theirs/k", upload_id)
    journal = UploadJournal(str(tmp_path))
    journal.record(entry)
    clock.advance(100)
    blind = sweep(backend, clock, UploadJournal(str(tmp_path / "empty")), 10)
    assert blind.aborted == [] and len(backend.list_uploads("/theirs/k")) == 1
    result = sweep(backend, clock, journal, 10)
    assert [s.upload_id for s in result.aborted] == [upload_id]
    assert list(journal.entries()) == []
    upload_id = backend.create_upload("/theirs/k2")
    record(backend, "/theirs/k2", upload_id)
    clock.advance(100)
    named = sweep(backend, clock, journal, 10, hints=["theirs"])
    assert [s.upload_id for s in named.aborted] == [upload_id]


def test_cache_entries_from_before_records_are_swept_as_before(tmp_path: Path) -> None:
    backend, clock = setup()
    upload_id = backend.create_upload("/bkt/legacy")
    journal = UploadJournal(str(tmp_path))
    journal.record(JournalEntry(user="alice", path="/bkt/legacy", upload_id=upload_id, plan={},
                                updated=clock.now.timestamp() - 100))
    result = sweep(backend, clock, journal, 10)
    assert [s.upload_id for s in result.aborted] == [upload_id]
    assert backend.list_uploads("/bkt/legacy") == [] and list(journal.entries()) == []
