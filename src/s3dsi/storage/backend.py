"""The storage contract the daemon is written against.

Every method is *blocking* and is called from worker threads (namespace operations from a small
executor, data operations from the part workers); implementations must be thread-safe. Paths are
absolute, already normalised by the protocol layer: ``/`` (the bucket list), ``/bucket``,
``/bucket/key/with/slashes``; never a trailing slash, never ``.`` or ``..`` segments.

Failures are raised as ``s3dsi.protocol.errors.DsiError`` subclasses, never as boto3 exceptions.
A back end instance is bound to one set of credentials (one logged-in user).

Both back ends implement this protocol with one namespace layer (``s3dsi.storage.namespace``) over an
object store (``s3dsi.storage.store``): S3 itself, or an in-memory fake of it. ETags, here and
everywhere in storage, are the bare value without HTTP quotes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from s3dsi.protocol.entries import Entry


@dataclass(frozen=True)
class ObjectInfo:
    """What a read or a checksum needs to know about an object, taken at open time."""

    path: str
    size: int
    etag: str
    modified: datetime
    storage_class: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # the store's own checksum of the whole object, lower-case hex (S3's ChecksumCRC32C of a single-part
    # or FULL_OBJECT multipart object), when it keeps one: it lets CKSM trust tags that carry no ETag
    crc32c: str | None = None
    # every whole-object checksum the store keeps (algorithm upper case -> lower-case hex; CRC32C is the
    # one above): CKSM answers from them first
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteCondition:
    """What must still hold when an upload is committed (PutObject / CompleteMultipartUpload), sent as
    S3's conditional-write headers so that two writers cannot race past a check made earlier.

    ``must_not_exist``: ``If-None-Match: *`` (no object of that name); ``etag``: ``If-Match`` (the object
    is still the one seen when the upload began). ``reason`` names the policy that asked for it.
    """

    must_not_exist: bool = False
    etag: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class UploadInfo:
    """An unfinished multipart upload."""

    path: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class StoredRecord:
    """A restart record as S3 holds it (storage/records.py): where its upload is, as the store addresses
    it, and what the transfer layer wrote (``entry``)."""

    bucket: str
    key: str  # the object key the upload will create
    token: str
    modified: datetime  # the record's LastModified (S3's clock)
    entry: Mapping[str, Any]


class UploadRecordSet(Protocol):
    """The restart records of the uploads to one object; blocking, one S3 request per call (``all``:
    one listing and one GET per record)."""

    bucket: str  # the bucket the records (and the object) are in, as the store names it

    def put(self, token: str, entry: Mapping[str, Any]) -> None:
        """Write or replace record ``token``."""

    def delete(self, token: str) -> None:
        """Remove record ``token``; a missing one is no error."""

    def all(self) -> list[StoredRecord]:
        """Every record of this object."""


@runtime_checkable
class Backend(Protocol):
    # -- namespace -------------------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        """Entry for a bucket, object or prefix. ``/`` is a directory. PathNotFound if absent."""

    def list_pages(self, path: str) -> Iterator[list[Entry]]:
        """Directory contents, one page (≤1000 entries) per iteration, fetched lazily.

        ``/`` lists the user's buckets. A prefix lists its objects and common prefixes (the
        ``dir/`` marker of the directory itself is not listed). NotADirectory for an object,
        PathNotFound for a missing path. Entries carry basenames.

        The first page is fetched by the call itself, so those errors are raised before any
        iteration (a handler can still answer 550 before opening the data connection). Empty pages
        are not yielded: an empty directory yields nothing.
        """

    def mkdir(self, path: str) -> None:
        """``/name`` creates a bucket; deeper paths create a zero-byte ``key/`` marker.

        PathExists if the directory (or an object of that name) exists; PathNotFound if the bucket
        does not exist.
        """

    def rmdir(self, path: str) -> None:
        """Remove an empty bucket or an empty directory (its marker). DirectoryNotEmpty otherwise."""

    def delete(self, path: str) -> None:
        """Delete an object. IsADirectory for a prefix/bucket, PathNotFound if absent."""

    def rename(self, src: str, dst: str) -> None:
        """Server-side copy then delete (multipart copy above 5 GiB). NotSupported for directories."""

    # -- reading ---------------------------------------------------------------------------------
    def head_object(self, path: str, *, with_tags: bool = False, with_checksums: bool = False) -> ObjectInfo:
        """ObjectInfo of an object; IsADirectory for a bucket/prefix; ObjectArchived if unreadable.

        ``tags`` is filled when the store says the object has tags (S3 sends ``x-amz-tagging-count``
        with HeadObject; the tags themselves cost one more request) or ``with_tags``; otherwise it is
        empty and ``get_tags`` is the way to ask. ``with_checksums`` asks the store for the object's own
        whole-object checksums (HeadObject with ``ChecksumMode=ENABLED``) into ``checksums``, and leaves
        the tags to the caller (they are needed only when those checksums do not answer).
        """

    def open_read(self, path: str, start: int, into: memoryview) -> tuple[ObjectInfo, int]:
        """Open a download and read its first bytes in one request: ObjectInfo (no tags) and the
        number of bytes of ``into`` filled from ``start`` (short at the end of the object). Same
        errors as ``head_object``."""

    def read_range(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        """Fill ``into`` with bytes from ``start`` (up to ``len(into)``), pinned to ``info.etag``.

        Returns the number of bytes written (short only at end of object). ObjectChanged if the
        object no longer has that ETag.
        """

    def get_tags(self, path: str) -> dict[str, str]:
        """Object tags; {} if none or if reading them is not allowed."""

    def set_tags(self, path: str, tags: Mapping[str, str]) -> bool:
        """Best effort: True if stored, False if not allowed / not supported."""

    # -- writing ---------------------------------------------------------------------------------
    def check_writable(self, path: str) -> WriteCondition | None:
        """Fail before any data moves: PathNotFound if the bucket is missing, IsADirectory if
        ``path`` is a directory, InvalidPath for a name S3 cannot hold, PathExists when a policy
        forbids replacing the object. A parent prefix need not exist (S3 prefixes are implicit; MKD
        alone requires one). Returns the condition the commit of this upload must carry, if any."""

    def check_renamable(self, path: str) -> None:
        """RNFR: PermissionDenied when a policy forbids renaming (append-only); otherwise nothing."""

    def put_object(self, path: str, data: memoryview, *, crc32c: int | None = None,
                   tags: Mapping[str, str] | None = None,
                   condition: WriteCondition | None = None) -> ObjectInfo:
        """Single-request upload of a small object; ``crc32c`` of ``data`` is sent for S3 to verify."""

    def create_upload(self, path: str) -> str:
        """Start a multipart upload; returns its upload id."""

    def upload_part(self, path: str, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        """Upload one part (1-based ``number``); returns the part's ETag."""

    def complete_upload(self, path: str, upload_id: str, parts: list[tuple[int, str]], *,
                        crc32c: int | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        """Make the object visible from ``(number, etag)`` parts in ascending order. ``crc32c``: the
        whole object's, for a store that verifies a full-object checksum at completion."""

    def abort_upload(self, path: str, upload_id: str) -> None:
        """Abort; idempotent (an unknown upload id is not an error)."""

    def list_uploads(self, path: str) -> list[UploadInfo]:
        """Unfinished multipart uploads for exactly this key."""

    def list_parts(self, path: str, upload_id: str) -> list[PartInfo]:
        """Parts already uploaded to an unfinished upload, ascending."""

    # -- restart records -------------------------------------------------------------------------
    def upload_records(self, path: str) -> UploadRecordSet:
        """The restart records of uploads to ``path`` (storage/records.py), kept in S3 where the
        object will be; a layer that maps paths (a policy's virtual root) maps this one too."""
