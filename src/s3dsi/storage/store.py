"""The object-store seam under the namespace layer: S3's own requests, nothing about directories.

An ``ObjectStore`` knows buckets, keys, pages of keys, tags and multipart uploads, as S3 does; it does
not know that ``a/b/`` is a directory. ``s3dsi.storage.namespace`` builds directories, their checks
and their error texts on top of it, once for every store. ``S3Store`` (``storage/s3.py``) sends these
requests to S3; ``MemoryStore`` (``storage/memory.py``) is a faithful fake of S3's own rules for tests.

Every method is blocking and thread-safe. Keys are addressed by an ``S3Path`` (its ``path`` names the
object in error texts); ``operation`` names what the caller is doing ("stat", "mkdir", ...) and becomes
the error's ``GridFTP-Reason``. Failures are S3's, as ``DsiError``s built by ``s3errors`` from S3's
error codes (``NoSuchBucket`` → PathNotFound, ``PreconditionFailed`` → ObjectChanged, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo, WriteCondition
from s3dsi.storage.paths import S3Path


@dataclass(frozen=True)
class ObjectHead:
    """HeadObject of one key: times are UTC whole seconds, the ETag is bare."""

    size: int
    etag: str
    modified: datetime
    storage_class: str = "STANDARD"
    tag_count: int = 0  # S3's x-amz-tagging-count: the tags themselves cost one more request
    restore: str | None = None  # x-amz-restore, for archived objects
    archive_status: str | None = None  # x-amz-archive-status (INTELLIGENT_TIERING archive tiers)
    crc32c: str | None = None  # the store's own full-object CRC32C (lower-case hex), when it keeps one
    checksums: Mapping[str, str] = field(default_factory=dict)  # every whole-object checksum it keeps


@dataclass(frozen=True)
class ListedKey:
    """One key of a ListObjectsV2 page."""

    key: str
    size: int
    modified: datetime
    etag: str
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class KeyPage:
    """One ListObjectsV2 page: keys and (with the ``/`` delimiter) common prefixes, each ending in ``/``.

    ``next_token`` continues the listing; None on the last page.
    """

    keys: list[ListedKey] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    next_token: str | None = None

    @property
    def empty(self) -> bool:
        return not self.keys and not self.prefixes


@dataclass(frozen=True)
class BucketListing:
    """One ListBuckets page of the store's own buckets."""

    names: Sequence[tuple[str, datetime | None]]  # (name, creation time)
    next_token: str | None = None


class ObjectStore(Protocol):
    # -- buckets ---------------------------------------------------------------------------------------
    def list_buckets(self, token: str | None) -> BucketListing:
        """A page of the credentials' own buckets (errors name ``/`` and operation "list")."""

    def check_bucket(self, target: S3Path, operation: str) -> None:
        """PathNotFound (``NoSuchBucket``) unless the bucket exists; one that refuses access exists."""

    def create_bucket(self, target: S3Path) -> None:
        """PathExists (``BucketAlreadyOwnedByYou`` / ``BucketAlreadyExists``) if the name is taken."""

    def delete_bucket(self, target: S3Path) -> None:
        """DirectoryNotEmpty (``BucketNotEmpty``) unless it holds no key."""

    # -- keys ------------------------------------------------------------------------------------------
    def head(self, target: S3Path, operation: str, *, with_checksums: bool = False) -> ObjectHead | None:
        """HeadObject of ``target.key``; None when there is no such key. ``with_checksums``: with the
        store's own whole-object checksums (``ChecksumMode=ENABLED``; composite ones are left out)."""

    def list_keys(self, target: S3Path, prefix: str, operation: str, *, delimited: bool = False,
                  limit: int | None = None, token: str | None = None) -> KeyPage:
        """A page of the keys of ``target.bucket`` starting with ``prefix``, in key order.

        ``delimited`` rolls keys with a further ``/`` into common prefixes; ``limit`` caps the page
        (S3's MaxKeys; the store's own page size otherwise).
        """

    def put(self, target: S3Path, data: memoryview, *, crc32c: int | None = None,
            tags: Mapping[str, str] | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        """PutObject of ``target.key`` in the configured storage class (errors: operation "write");
        ``condition`` fails it with ObjectChanged (``PreconditionFailed``) when it no longer holds."""

    def put_marker(self, target: S3Path, key: str, operation: str) -> None:
        """A zero-byte object ``key`` (a directory marker) in ``target.bucket``, in the default class."""

    def delete(self, target: S3Path, key: str, operation: str) -> None:
        """DeleteObject of ``key`` in ``target.bucket``; deleting a missing key is no error (as in S3)."""

    def put_small(self, target: S3Path, key: str, body: bytes, operation: str) -> None:
        """PutObject of a small object ``key`` in ``target.bucket``, in the bucket's default storage class
        and without tags: the daemon's own restart records (``storage/records.py``)."""

    def get_small(self, target: S3Path, key: str, operation: str,
                  limit: int) -> tuple[bytes, datetime] | None:
        """GetObject of the small object ``key`` in ``target.bucket``: its bytes and LastModified; None
        when there is no such key. An object larger than ``limit`` bytes is an error (InvalidPath)."""

    def copy(self, source: S3Path, head: ObjectHead, dest: S3Path) -> None:
        """Server-side copy of ``source`` (pinned to ``head.etag``) with its tags, metadata and storage
        class to ``dest`` (errors: operation "rename")."""

    def read_into(self, target: S3Path, etag: str, start: int, into: memoryview) -> int:
        """Ranged GET of ``len(into)`` bytes from ``start``, pinned to ``etag`` (If-Match); the range lies
        within the object. ObjectChanged on another ETag, PathNotFound when the key is gone."""

    def read_first(self, target: S3Path, start: int, into: memoryview) -> tuple[ObjectHead, int] | None:
        """Open a read with its first bytes: a ranged GET of up to ``len(into)`` bytes from ``start``
        whose response also tells size, ETag and the rest (one request where HeadObject and a GET were
        two). The bytes read (fewer at the end of the object; 0 at or past it). None: no such key.
        ObjectArchived when the object cannot be read without a restore."""

    def get_tags(self, target: S3Path, operation: str) -> dict[str, str]:
        """Tags of ``target.key``; {} if it has none or the store will not tell."""

    def put_tags(self, target: S3Path, tags: Mapping[str, str]) -> bool:
        """Replace the tags; False if the store refuses them (limits, permissions, no support)."""

    # -- multipart uploads -----------------------------------------------------------------------------
    def create_upload(self, target: S3Path) -> str:
        """CreateMultipartUpload; returns the upload id."""

    def upload_part(self, target: S3Path, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        """UploadPart; returns the part's ETag."""

    def complete_upload(self, target: S3Path, upload_id: str, parts: list[tuple[int, str]], *,
                        crc32c: int | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        """CompleteMultipartUpload; the new object's info (tags included when it has any). ``crc32c``:
        the whole object's (a full-object checksum the store verifies); ``condition`` as for ``put``."""

    def abort_upload(self, target: S3Path, upload_id: str) -> None:
        """AbortMultipartUpload; an unknown upload id is no error."""

    def list_uploads(self, target: S3Path) -> list[UploadInfo]:
        """Unfinished uploads of exactly ``target.key``, oldest first."""

    def list_parts(self, target: S3Path, upload_id: str) -> list[PartInfo]:
        """Parts of an unfinished upload, ascending; PathNotFound (``NoSuchUpload``) if it is gone."""
