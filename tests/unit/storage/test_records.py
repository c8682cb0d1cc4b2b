"""Restart records in the store: where they go, what a record may say, and the reserved name."""

from __future__ import annotations

import json

import pytest

from s3dsi.config.s3policy import Root, S3Policy
from s3dsi.protocol.errors import PermissionDenied
from s3dsi.storage.memory import MemoryBackend
from s3dsi.storage.paths import S3Path, parse_path
from s3dsi.storage.policy import PolicyBackend
from s3dsi.storage.readonly import ReadOnlyBackend
from s3dsi.storage.records import (
    RECORD_PREFIX,
    RecordError,
    bucket_records,
    key_group,
    list_group,
    read_record,
)

TOKEN = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def backend() -> MemoryBackend:
    b = MemoryBackend()
    b.create_bucket("bkt")
    return b


def test_records_live_under_the_reserved_prefix_grouped_by_key(backend: MemoryBackend) -> None:
    records = backend.upload_records("/bkt/dir/file.bin")
    records.put(TOKEN, {"user": "alice", "n": 1})
    records.put(OTHER, {"user": "bob"})
    backend.upload_records("/bkt/dir/other.bin").put(TOKEN, {"user": "carol"})
    keys = [k.key for k in backend.store.list_keys(S3Path("/bkt", "bkt", ""), "", "list").keys]
    assert all(k.startswith(RECORD_PREFIX) for k in keys) and len(keys) == 3
    assert f"{key_group('dir/file.bin')}{TOKEN}.json" in keys
    found = sorted((r.token, dict(r.entry)) for r in records.all())
    assert found == [(TOKEN, {"user": "alice", "n": 1}), (OTHER, {"user": "bob"})]
    assert {r.key for r in bucket_records(backend.store, "bkt")} == {"dir/file.bin", "dir/other.bin"}
    records.delete(TOKEN)
    records.delete(TOKEN)  # gone already: no error
    assert [r.token for r in records.all()] == [OTHER]


def test_a_token_must_be_ours(backend: MemoryBackend) -> None:
    with pytest.raises(ValueError):
        backend.upload_records("/bkt/k").put("../../elsewhere", {})


def test_a_record_cannot_point_at_another_key(backend: MemoryBackend) -> None:
    """A record whose key does not hash to the group it lies in (or names another bucket) is refused, so
    an object planted under the prefix cannot send the janitor to another upload."""
    store = backend.store
    bucket = S3Path("/bkt", "bkt", "")
    forged = f"{key_group('innocent')}{TOKEN}.json"
    body = {"format": 1, "bucket": "bkt", "key": "victim", "token": TOKEN, "entry": {}}
    store.put_small(bucket, forged, json.dumps(body).encode(), "write")
    store.put_small(bucket, f"{key_group('victim')}{OTHER}.json",
                    json.dumps({**body, "token": OTHER, "bucket": "other"}).encode(), "write")
    store.put_small(bucket, f"{RECORD_PREFIX}not-a-record.txt", b"hello", "write")
    listed = list(list_group(store, "bkt"))
    assert len(listed) == 2  # the text file is not even listed as a record
    for item in listed:
        with pytest.raises(RecordError):
            read_record(store, item)
    assert bucket_records(store, "bkt") == []


def test_listings_hide_the_records_and_paths_cannot_name_them(backend: MemoryBackend) -> None:
    backend.upload_records("/bkt/a").put(TOKEN, {})
    backend.put_object("/bkt/a", memoryview(b"x"))
    assert [e.name for page in backend.list_pages("/bkt") for e in page] == ["a"]
    for path in ("/bkt/.s3dsi", "/bkt/.s3dsi/uploads", f"/bkt/{RECORD_PREFIX}x"):
        with pytest.raises(PermissionDenied, match="reserved"):
            parse_path(path)
        with pytest.raises(PermissionDenied):
            backend.stat(path)
    # only at the top of a bucket: a directory of that name deeper down is the user's
    backend.mkdir("/bkt/sub")
    backend.mkdir("/bkt/sub/.s3dsi")
    assert [e.name for page in backend.list_pages("/bkt/sub") for e in page] == [".s3dsi"]
    assert parse_path("/bkt/.s3dsi-probe-1").key == ".s3dsi-probe-1"


def test_read_only_sessions_get_no_records(backend: MemoryBackend) -> None:
    with pytest.raises(PermissionDenied):
        ReadOnlyBackend(backend).upload_records("/bkt/a")


def test_under_a_virtual_root_records_stay_at_the_top_of_the_real_bucket(backend: MemoryBackend) -> None:
    """A user confined to /bkt/home/alice names /data/f; the record lies in bkt/.s3dsi/, outside anything
    the user can name, and describes the real key."""
    view = PolicyBackend(backend, S3Policy(root=Root("bkt", "home/alice")))
    records = view.upload_records("/data/f.bin")
    assert records.bucket == "bkt"
    records.put(TOKEN, {"path": "/data/f.bin"})
    [stored] = bucket_records(backend.store, "bkt")
    assert stored.key == "home/alice/data/f.bin" and dict(stored.entry) == {"path": "/data/f.bin"}
    assert [r.token for r in view.upload_records("/data/f.bin").all()] == [TOKEN]
    # under a root, ".s3dsi" is an ordinary name of the user's (the reserved one is the bucket's top)
    assert view.upload_records("/.s3dsi/x").bucket == "bkt"
