"""``MemoryStore``: an in-process fake of S3 for fast tests; ``MemoryBackend``: the namespace layer on it.

The store follows S3's own rules as ``S3Store`` meets them (buckets of this account and of others,
keys in byte order, ListObjectsV2 pages with common prefixes and continuation tokens, multipart parts
and their ETags, the 5 MiB minimum part size, If-Match pinning, CRC32C checks, tag limits, archive
storage classes) and raises the same errors, built by ``s3errors`` from the same S3 error codes.
Directories are not its business: ``s3dsi.storage.namespace`` builds them on top, as it does on S3.
The shared behaviour tests (tests/functional/storage) run against both back ends to keep it that way.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import crc32c as _crc32c

from s3dsi.protocol.errors import InvalidPath
from s3dsi.storage import s3errors
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo, WriteCondition
from s3dsi.storage.namespace import Namespace
from s3dsi.storage.paths import S3Path, parse_path, strip_etag
from s3dsi.storage.store import BucketListing, KeyPage, ListedKey, ObjectHead

MiB = 1024 * 1024
MAX_PARTS = 10_000
MAX_TAGS = 10


@dataclass
class _Object:
    data: bytes
    etag: str
    modified: datetime
    storage_class: str = "STANDARD"
    tags: dict[str, str] = field(default_factory=dict)
    restore: str | None = None  # the x-amz-restore value S3 would send
    crc32c: str | None = None  # the full-object CRC32C S3 keeps (a single PutObject's, or a FULL_OBJECT
    # multipart upload's, which S3 verified), as lower-case hex


@dataclass
class _Upload:
    key: str
    upload_id: str
    initiated: datetime
    parts: dict[int, tuple[bytes, str]] = field(default_factory=dict)


@dataclass
class _Bucket:
    name: str
    created: datetime
    listed: bool = True  # False: another account's bucket, reachable by path but not listed in /
    objects: dict[str, _Object] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    return f"{_md5(digests)}-{len(parts)}"


def _checksums(obj: _Object) -> dict[str, str]:
    """The whole-object checksums S3 would report (HeadObject with ChecksumMode)."""
    return {"CRC32C": obj.crc32c} if obj.crc32c is not None else {}


def _tags_valid(tags: Mapping[str, str]) -> bool:
    return len(tags) <= MAX_TAGS and all(0 < len(k) <= 128 and len(v) <= 256 for k, v in tags.items())


# A continuation token names the last key or common prefix of the page it ends; opaque to callers.
def _token(item: tuple[str, bool]) -> str:
    return ("P" if item[1] else "K") + item[0]


def _after(token: str | None) -> tuple[str, bool] | None:
    return (token[1:], token[0] == "P") if token else None


class MemoryStore:
    """Thread-safe: every request runs under one lock, so each is atomic, as one S3 request is."""

    def __init__(self, *, min_part_size: int = 5 * MiB, page_size: int = 1000,
                 storage_class: str | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.min_part_size = min_part_size
        self.page_size = page_size
        self.storage_class = storage_class
        self._clock = clock or (lambda: datetime.now(UTC))
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.RLock()

    # -- test helpers: what happens outside the requests a back end sends ---------------------------------
    def add_bucket(self, name: str, *, listed: bool = True) -> None:
        with self._lock:
            self._buckets[name] = _Bucket(name, self._now(), listed)

    def archive(self, path: str, storage_class: str = "GLACIER") -> None:
        with self._lock:
            obj = self._object(parse_path(path), "archive")
            obj.storage_class, obj.restore = storage_class, None

    def restore(self, path: str, *, finished: bool = True) -> None:
        with self._lock:
            obj = self._object(parse_path(path), "restore")
            obj.restore = 'ongoing-request="false", expiry-date="Fri, 01 Jan 2100 00:00:00 GMT"' \
                if finished else 'ongoing-request="true"'

    # -- plumbing ----------------------------------------------------------------------------------------
    def _now(self) -> datetime:
        return self._clock().astimezone(UTC).replace(microsecond=0)

    def _bucket(self, target: S3Path, operation: str) -> _Bucket:
        bucket = self._buckets.get(target.bucket)
        if bucket is None:
            raise s3errors.from_code("NoSuchBucket", path=f"/{target.bucket}", operation=operation)
        return bucket

    def _object(self, target: S3Path, operation: str) -> _Object:
        obj = self._bucket(target, operation).objects.get(target.key)
        if obj is None:
            raise s3errors.from_code("NoSuchKey", path=target.path, operation=operation)
        return obj

    def _upload(self, target: S3Path, upload_id: str, operation: str) -> _Upload:
        upload = self._bucket(target, operation).uploads.get(upload_id)
        if upload is None or upload.key != target.key:
            raise s3errors.from_code("NoSuchUpload", path=target.path, operation=operation)
        return upload

    def _store(self, bucket: _Bucket, key: str, data: bytes, etag: str, *,
               tags: Mapping[str, str] | None = None, storage_class: str | None = None,
               crc32c: int | None = None) -> _Object:
        obj = _Object(data, etag, self._now(), storage_class or self.storage_class or "STANDARD",
                      dict(tags or {}), crc32c=f"{crc32c:08x}" if crc32c is not None else None)
        bucket.objects[key] = obj
        return obj

    @staticmethod
    def _check_condition(bucket: _Bucket, target: S3Path, condition: WriteCondition | None,
                         operation: str) -> None:
        """S3's conditional writes: If-None-Match: * and If-Match (404 when the object is gone)."""
        if condition is None:
            return
        existing = bucket.objects.get(target.key)
        if condition.must_not_exist and existing is not None:
            raise s3errors.from_code("PreconditionFailed", path=target.path, operation=operation)
        if condition.etag is not None:
            if existing is None:
                raise s3errors.from_code("NoSuchKey", path=target.path, operation=operation)
            if existing.etag != strip_etag(condition.etag):
                raise s3errors.from_code("PreconditionFailed", path=target.path, operation=operation)

    @staticmethod
    def _info(path: str, obj: _Object) -> ObjectInfo:
        return ObjectInfo(path, len(obj.data), obj.etag, obj.modified, obj.storage_class, dict(obj.tags),
                          crc32c=obj.crc32c, checksums=_checksums(obj))

    def put_external(self, path: str, data: bytes, *, crc32c: bool = False) -> None:
        """An object written by another tool (optionally with S3's full-object CRC32C)."""
        target = parse_path(path)
        with self._lock:
            self._store(self._bucket(target, "write"), target.key, data, _md5(data),
                        crc32c=_crc32c.crc32c(data) if crc32c else None)

    @staticmethod
    def _listed(key: str, obj: _Object) -> ListedKey:
        return ListedKey(key, len(obj.data), obj.modified, obj.etag, obj.storage_class)

    def _verify_crc(self, target: S3Path, data: bytes, crc32c: int | None) -> None:
        if crc32c is not None and _crc32c.crc32c(data) != crc32c:
            raise s3errors.from_code("BadDigest", path=target.path, operation="write")

    # -- buckets -----------------------------------------------------------------------------------------
    def list_buckets(self, token: str | None) -> BucketListing:
        with self._lock:
            names = sorted(name for name, b in self._buckets.items() if b.listed and name > (token or ""))
            page = [(name, self._buckets[name].created) for name in names[:self.page_size]]
        more = len(names) > self.page_size
        return BucketListing(page, page[-1][0] if more else None)

    def check_bucket(self, target: S3Path, operation: str) -> None:
        with self._lock:
            self._bucket(target, operation)

    def create_bucket(self, target: S3Path) -> None:
        with self._lock:
            existing = self._buckets.get(target.bucket)
            if existing is not None:
                code = "BucketAlreadyOwnedByYou" if existing.listed else "BucketAlreadyExists"
                raise s3errors.from_code(code, path=target.path, operation="mkdir")
            self._buckets[target.bucket] = _Bucket(target.bucket, self._now())

    def delete_bucket(self, target: S3Path) -> None:
        with self._lock:
            if self._bucket(target, "rmdir").objects:
                raise s3errors.from_code("BucketNotEmpty", path=target.path, operation="rmdir")
            del self._buckets[target.bucket]

    # -- keys --------------------------------------------------------------------------------------------
    def head(self, target: S3Path, operation: str, *, with_checksums: bool = False) -> ObjectHead | None:
        with self._lock:
            obj = self._bucket(target, operation).objects.get(target.key)
            if obj is None:
                return None
            return ObjectHead(len(obj.data), obj.etag, obj.modified, obj.storage_class, len(obj.tags),
                              obj.restore, crc32c=obj.crc32c, checksums=_checksums(obj))

    def list_keys(self, target: S3Path, prefix: str, operation: str, *, delimited: bool = False,
                  limit: int | None = None, token: str | None = None) -> KeyPage:
        page_size = min(limit, self.page_size) if limit is not None else self.page_size
        after = _after(token)
        with self._lock:
            objects = self._bucket(target, operation).objects
            if not delimited:
                start = after[0] if after else ""
                chosen = heapq.nsmallest(page_size + 1,
                                         (k for k in objects if k.startswith(prefix) and k > start))
                keys = [self._listed(k, objects[k]) for k in chosen[:page_size]]
                return KeyPage(keys, [], _token((chosen[page_size - 1], False)) if len(chosen) > page_size
                               else None)
            return self._delimited_page(objects, prefix, page_size, after)

    def _delimited_page(self, objects: dict[str, _Object], prefix: str, page_size: int,
                        after: tuple[str, bool] | None) -> KeyPage:
        """ListObjectsV2 with Delimiter='/': a common prefix counts once towards the page, as in S3."""
        page = KeyPage()
        last: tuple[str, bool] | None = None
        count = 0
        for key in sorted(k for k in objects if k.startswith(prefix)):
            if after is not None and (key <= after[0] or (after[1] and key.startswith(after[0]))):
                continue
            slash = key.find("/", len(prefix))
            item = (key, False) if slash < 0 else (key[:slash + 1], True)
            if item == last:
                continue  # another key under a common prefix already counted
            if count >= page_size:
                return KeyPage(page.keys, page.prefixes, _token(last) if last else None)
            count, last = count + 1, item
            if item[1]:
                page.prefixes.append(item[0])
            else:
                page.keys.append(self._listed(key, objects[key]))
        return page

    def put(self, target: S3Path, data: memoryview, *, crc32c: int | None = None,
            tags: Mapping[str, str] | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        payload = bytes(data)
        self._verify_crc(target, payload, crc32c)
        if tags and not _tags_valid(tags):
            raise s3errors.from_code("InvalidTag", path=target.path, operation="write")
        with self._lock:
            bucket = self._bucket(target, "write")
            self._check_condition(bucket, target, condition, "write")
            obj = self._store(bucket, target.key, payload, _md5(payload), tags=tags, crc32c=crc32c)
            return self._info(target.path, obj)

    def put_marker(self, target: S3Path, key: str, operation: str) -> None:
        with self._lock:
            self._store(self._bucket(target, operation), key, b"", _md5(b""), storage_class="STANDARD")

    def delete(self, target: S3Path, key: str, operation: str) -> None:
        with self._lock:
            self._bucket(target, operation).objects.pop(key, None)

    def put_small(self, target: S3Path, key: str, body: bytes, operation: str) -> None:
        with self._lock:
            self._store(self._bucket(target, operation), key, bytes(body), _md5(bytes(body)),
                        storage_class="STANDARD")

    def get_small(self, target: S3Path, key: str, operation: str,
                  limit: int) -> tuple[bytes, datetime] | None:
        with self._lock:
            obj = self._bucket(target, operation).objects.get(key)
            if obj is None:
                return None
            if len(obj.data) > limit:
                raise InvalidPath(f"/{target.bucket}/{key}: larger than {limit} bytes")
            return obj.data, obj.modified

    def copy(self, source: S3Path, head: ObjectHead, dest: S3Path) -> None:
        with self._lock:
            obj = self._object(source, "rename")
            if obj.etag != head.etag:
                raise s3errors.from_code("PreconditionFailed", path=source.path, operation="rename")
            copied = self._store(self._bucket(dest, "rename"), dest.key, obj.data, obj.etag, tags=obj.tags,
                                 storage_class=obj.storage_class)
            copied.restore = obj.restore

    def read_into(self, target: S3Path, etag: str, start: int, into: memoryview) -> int:
        with self._lock:
            obj = self._object(target, "read")
            if obj.etag != strip_etag(etag):
                raise s3errors.from_code("PreconditionFailed", path=target.path, operation="read")
            if s3errors.archived(target.path, obj.storage_class, obj.restore) is not None:
                raise s3errors.from_code("InvalidObjectState", path=target.path, operation="read")
            data = obj.data  # immutable: copy out of it without holding the lock
        count = min(len(into), len(data) - start)
        into[:count] = memoryview(data)[start:start + count]
        return count

    def read_first(self, target: S3Path, start: int, into: memoryview) -> tuple[ObjectHead, int] | None:
        with self._lock:
            obj = self._bucket(target, "open").objects.get(target.key)
            if obj is None:
                return None
            if s3errors.archived(target.path, obj.storage_class, obj.restore) is not None:
                raise s3errors.from_code("InvalidObjectState", path=target.path, operation="open")
            head = ObjectHead(len(obj.data), obj.etag, obj.modified, obj.storage_class, len(obj.tags),
                              obj.restore, crc32c=obj.crc32c, checksums=_checksums(obj))
            data = obj.data
        count = max(0, min(len(into), len(data) - start))
        into[:count] = memoryview(data)[start:start + count]
        return head, count

    def get_tags(self, target: S3Path, operation: str) -> dict[str, str]:
        with self._lock:
            return dict(self._object(target, operation).tags)

    def put_tags(self, target: S3Path, tags: Mapping[str, str]) -> bool:
        with self._lock:
            obj = self._object(target, "tags")
            if not _tags_valid(tags):
                return False
            obj.tags = dict(tags)
            return True

    # -- multipart uploads -------------------------------------------------------------------------------
    def create_upload(self, target: S3Path) -> str:
        with self._lock:
            bucket = self._bucket(target, "write")
            upload_id = uuid.uuid4().hex
            bucket.uploads[upload_id] = _Upload(target.key, upload_id, self._now())
            return upload_id

    def upload_part(self, target: S3Path, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        if not 1 <= number <= MAX_PARTS:
            raise s3errors.from_code("InvalidArgument", path=target.path, operation="write",
                                     message=f"Part number must be an integer between 1 and {MAX_PARTS}")
        payload = bytes(data)
        self._verify_crc(target, payload, crc32c)
        etag = _md5(payload)
        with self._lock:
            self._upload(target, upload_id, "write").parts[number] = (payload, etag)
        return etag

    def complete_upload(self, target: S3Path, upload_id: str, parts: list[tuple[int, str]], *,
                        crc32c: int | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        with self._lock:
            bucket = self._bucket(target, "close")
            upload = self._upload(target, upload_id, "close")
            self._check_condition(bucket, target, condition, "close")
            numbers = [n for n, _ in parts]
            if not parts or numbers != sorted(set(numbers)):
                raise s3errors.from_code("InvalidPartOrder", path=target.path, operation="close")
            chosen: list[bytes] = []
            for number, etag in parts:
                stored = upload.parts.get(number)
                if stored is None or stored[1] != strip_etag(etag):
                    raise s3errors.from_code("InvalidPart", path=target.path, operation="close")
                chosen.append(stored[0])
            if any(len(p) < self.min_part_size for p in chosen[:-1]):
                raise s3errors.from_code("EntityTooSmall", path=target.path, operation="close")
            data = b"".join(chosen)
            if crc32c is not None and _crc32c.crc32c(data) != crc32c:  # S3 checks a FULL_OBJECT checksum
                raise s3errors.from_code("BadDigest", path=target.path, operation="close")
            obj = self._store(bucket, target.key, data, _multipart_etag(chosen), crc32c=crc32c)
            del bucket.uploads[upload_id]
            return self._info(target.path, obj)

    def abort_upload(self, target: S3Path, upload_id: str) -> None:
        with self._lock:
            bucket = self._bucket(target, "abort")
            upload = bucket.uploads.get(upload_id)
            if upload is not None and upload.key == target.key:
                del bucket.uploads[upload_id]

    def list_uploads(self, target: S3Path) -> list[UploadInfo]:
        with self._lock:
            bucket = self._bucket(target, "list")
            uploads = sorted((u for u in bucket.uploads.values() if u.key == target.key),
                             key=lambda u: (u.initiated, u.upload_id))
            return [UploadInfo(target.path, u.upload_id, u.initiated) for u in uploads]

    def list_parts(self, target: S3Path, upload_id: str) -> list[PartInfo]:
        with self._lock:
            upload = self._upload(target, upload_id, "list")
            return [PartInfo(n, len(data), etag) for n, (data, etag) in sorted(upload.parts.items())]


class MemoryBackend(Namespace):
    """The Backend protocol on a ``MemoryStore``; one instance serves many sessions (it knows no users)."""

    store: MemoryStore

    def __init__(self, *, min_part_size: int = 5 * MiB, page_size: int = 1000,
                 storage_class: str | None = None, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(MemoryStore(min_part_size=min_part_size, page_size=page_size,
                                     storage_class=storage_class, clock=clock))

    # -- test helpers ------------------------------------------------------------------------------------
    def create_bucket(self, name: str, *, listed: bool = True) -> None:
        """Add a bucket directly; ``listed=False`` models another account's bucket reached by path."""
        self.store.add_bucket(name, listed=listed)

    def archive(self, path: str, storage_class: str = "GLACIER") -> None:
        """Move an object to an archive class, as a lifecycle rule would."""
        self.store.archive(path, storage_class)

    def restore(self, path: str, *, finished: bool = True) -> None:
        self.store.restore(path, finished=finished)
