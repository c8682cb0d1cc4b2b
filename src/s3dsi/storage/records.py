"""Restart records: small JSON objects the daemon keeps in S3 next to its unfinished multipart uploads,
so that any host can resume an upload and any host's janitor can clean one up.

Where: in the upload's own bucket, under the reserved top-level name ``.s3dsi`` (``paths.RESERVED_NAME``),
which no user path may name and no listing shows. One record per upload:

    .s3dsi/uploads/<first 32 hex digits of SHA-256 of the object key>/<token>.json

The token is a random id chosen *before* CreateMultipartUpload, so a record can exist before S3 has
given the upload its id (an "intent"): a daemon killed between the two leaves a record the janitor can
match against ListMultipartUploads. Grouping by the key's hash lets a resume find every record of one
object with one ListObjectsV2 of a few keys; the janitor lists ``.s3dsi/uploads/`` of a whole bucket and
judges a record's age by its LastModified, which is S3's own clock, so hosts with skewed clocks agree.

This module owns the envelope (where the upload is: bucket and key, as the store sees them, and the
token) and the requests; what an upload's record says (user, plan, parts, upload id) is the transfer
layer's (``transfer/journal.py``), carried here as an opaque JSON object. Records hold no secrets.
Everything is blocking, one S3 request per call unless said otherwise.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from s3dsi.protocol.errors import DsiError
from s3dsi.storage.backend import StoredRecord
from s3dsi.storage.paths import RESERVED_PREFIX, S3Path
from s3dsi.storage.store import ObjectStore

RECORD_PREFIX = f"{RESERVED_PREFIX}uploads/"
RECORD_SUFFIX = ".json"
MAX_RECORD_BYTES = 8 * 1024 * 1024  # 10,000 parts with their checksums take about 1.5 MiB
_TOKEN = re.compile(r"[0-9a-f]{32}")
_RECORD_KEY = re.compile(re.escape(RECORD_PREFIX) + r"([0-9a-f]{32})/([0-9a-f]{32})"
                         + re.escape(RECORD_SUFFIX))
FORMAT = 1


class RecordError(DsiError):
    """A record object that is not one of ours (unreadable JSON, wrong place, foreign fields)."""


def key_group(key: str) -> str:
    """The record prefix of every upload of object ``key``."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{RECORD_PREFIX}{digest}/"


def check_token(token: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"not a record token: {token!r}")
    return token


@dataclass(frozen=True)
class ListedRecord:
    """A record found by listing a bucket: enough to judge its age before reading it."""

    bucket: str
    record_key: str
    group: str  # the key-hash directory it is in
    token: str
    modified: datetime


def _encode(bucket: str, key: str, token: str, entry: Mapping[str, Any]) -> bytes:
    return json.dumps({"format": FORMAT, "bucket": bucket, "key": key, "token": token, "entry": dict(entry)},
                      sort_keys=True, separators=(",", ":")).encode()


def _decode(bucket: str, record_key: str, body: bytes, modified: datetime) -> StoredRecord:
    """The record at ``record_key``; RecordError unless it describes an upload in this bucket whose key
    hashes to the group it lies in (a record cannot point the janitor at another key)."""
    match = _RECORD_KEY.fullmatch(record_key)
    try:
        data = json.loads(body)
        ok = (match is not None and isinstance(data, dict) and data.get("format") == FORMAT
              and data.get("bucket") == bucket and isinstance(data.get("key"), str)
              and data.get("token") == match.group(2) and isinstance(data.get("entry"), dict))
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok or key_group(data["key"]) != record_key[:len(RECORD_PREFIX) + 33]:
        raise RecordError(f"/{bucket}/{record_key}: not a restart record of this daemon")
    return StoredRecord(bucket, data["key"], data["token"], modified, data["entry"])


class UploadRecords:
    """The restart records of uploads to one object (``target``)."""

    def __init__(self, store: ObjectStore, target: S3Path) -> None:
        self.store = store
        self.target = target
        self.bucket = target.bucket
        self.group = key_group(target.key)

    def put(self, token: str, entry: Mapping[str, Any]) -> None:
        """Write (or replace) the record ``token`` of an upload to this object."""
        key = f"{self.group}{check_token(token)}{RECORD_SUFFIX}"
        self.store.put_small(self.target, key, _encode(self.target.bucket, self.target.key, token, entry),
                             "write")

    def delete(self, token: str) -> None:
        self.store.delete(self.target, f"{self.group}{check_token(token)}{RECORD_SUFFIX}", "write")

    def all(self) -> list[StoredRecord]:
        """Every readable record of this object (one listing, one GET each); foreign objects skipped."""
        found = []
        for listed in list_group(self.store, self.target.bucket, self.group):
            try:
                record = read_record(self.store, listed)
            except RecordError:
                continue
            if record is not None and record.key == self.target.key:
                found.append(record)
        return found


def record_key(record: StoredRecord) -> str:
    return f"{key_group(record.key)}{record.token}{RECORD_SUFFIX}"


def upload_target(record: StoredRecord) -> S3Path:
    """The record's upload's object, as the store addresses it."""
    return S3Path(f"/{record.bucket}/{record.key}", record.bucket, record.key)


def _bucket_target(bucket: str) -> S3Path:
    return S3Path(f"/{bucket}", bucket, "")


def list_group(store: ObjectStore, bucket: str, prefix: str = RECORD_PREFIX) -> Iterator[ListedRecord]:
    """The record objects under ``prefix`` of ``bucket`` (all of them by default), page by page."""
    target = _bucket_target(bucket)
    token: str | None = None
    while True:
        page = store.list_keys(target, prefix, "list", token=token)
        for listed in page.keys:
            match = _RECORD_KEY.fullmatch(listed.key)
            if match is not None:
                yield ListedRecord(bucket, listed.key, f"{RECORD_PREFIX}{match.group(1)}/", match.group(2),
                                   listed.modified)
        if page.next_token is None:
            return
        token = page.next_token


def read_record(store: ObjectStore, listed: ListedRecord) -> StoredRecord | None:
    """The record behind a listing entry; None when it is gone meanwhile, RecordError when not ours."""
    got = store.get_small(_bucket_target(listed.bucket), listed.record_key, "list", MAX_RECORD_BYTES)
    if got is None:
        return None
    body, modified = got
    return _decode(listed.bucket, listed.record_key, body, modified)


def delete_record(store: ObjectStore, bucket: str, record_key: str) -> None:
    store.delete(_bucket_target(bucket), record_key, "write")


def bucket_records(store: ObjectStore, bucket: str) -> list[StoredRecord]:
    """Every readable record of ``bucket`` (a listing, then one GET per record)."""
    found = []
    for listed in list_group(store, bucket):
        try:
            record = read_record(store, listed)
        except RecordError:
            continue
        if record is not None:
            found.append(record)
    return found
