"""``MemoryBackend``: the Backend protocol over in-process dictionaries that behave like S3, for fast tests.

It follows S3's rules as ``S3Backend`` sees them (buckets, ``dir/`` markers, prefixes as directories,
multipart parts and their ETags, the 5 MiB minimum part size, If-Match pinning, tags, S3's name
limits) and raises the same errors, built by ``s3errors`` from the same S3 error codes. The shared
behaviour tests run against both back ends to keep it that way.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn

import crc32c as _crc32c

from s3dsi.protocol.errors import (
    DirectoryNotEmpty,
    IsADirectory,
    NotADirectory,
    NotSupported,
    ObjectChanged,
    PathExists,
    PathNotFound,
    PermissionDenied,
)
from s3dsi.storage import s3errors
from s3dsi.storage.backend import Entry, ObjectInfo, PartInfo, UploadInfo
from s3dsi.storage.paths import S3Path, check_bucket_name, check_key, parse_path, strip_etag, unique_for

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
    crc32c: str | None = None  # a single PutObject's verified x-amz-checksum-crc32c, as hex


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


_Token = tuple[str, bool]  # last key or common prefix of a page, and whether it was a prefix


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    return f"{_md5(digests)}-{len(parts)}"


def _tags_valid(tags: Mapping[str, str]) -> bool:
    return len(tags) <= MAX_TAGS and all(0 < len(k) <= 128 and len(v) <= 256 for k, v in tags.items())


class MemoryBackend:
    """Thread-safe; one instance can serve many sessions (it has no notion of users)."""

    def __init__(self, *, min_part_size: int = 5 * MiB, page_size: int = 1000,
                 storage_class: str | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.min_part_size = min_part_size
        self.page_size = page_size
        self.storage_class = storage_class
        self._clock = clock or (lambda: datetime.now(UTC))
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.RLock()

    # -- test helpers ------------------------------------------------------------------------------------
    def create_bucket(self, name: str, *, listed: bool = True) -> None:
        """Add a bucket directly; ``listed=False`` models another account's bucket reached by path."""
        with self._lock:
            self._buckets[name] = _Bucket(name, self._now(), listed)

    def archive(self, path: str, storage_class: str = "GLACIER") -> None:
        """Move an object to an archive class, as a lifecycle rule would."""
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

    def _keys_under(self, bucket: _Bucket, prefix: str, limit: int = 1) -> list[str]:
        return heapq.nsmallest(limit, (k for k in bucket.objects if k.startswith(prefix)))

    def _require_parent(self, bucket: _Bucket, target: S3Path, operation: str) -> None:
        if target.parent_prefix and not self._keys_under(bucket, target.parent_prefix):
            # gfal2 derives errno from this text ("No such file" -> ENOENT); mkdir -p relies on it
            raise PathNotFound(f"{target.path}: No such file or directory (parent directory does not exist)",
                               operation=operation)

    def _directory_or_missing(self, bucket: _Bucket, target: S3Path, operation: str) -> NoReturn:
        """For a name with no object: IsADirectory if it is a prefix, else PathNotFound."""
        if self._keys_under(bucket, target.dir_prefix):
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)
        raise PathNotFound(f"{target.path}: No such file or directory", operation=operation)

    def _store(self, bucket: _Bucket, key: str, data: bytes, etag: str, *,
               tags: Mapping[str, str] | None = None, storage_class: str | None = None) -> _Object:
        obj = _Object(data, etag, self._now(), storage_class or self.storage_class or "STANDARD",
                      dict(tags or {}))
        bucket.objects[key] = obj
        return obj

    @staticmethod
    def _info(path: str, obj: _Object) -> ObjectInfo:
        return ObjectInfo(path, len(obj.data), obj.etag, obj.modified, obj.storage_class, dict(obj.tags),
                          crc32c=obj.crc32c)

    # -- namespace ---------------------------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        target = parse_path(path)
        if target.is_root:
            return Entry("/", True, 0, None, unique_for("/"))
        with self._lock:
            bucket = self._bucket(target, "stat")
            if target.is_bucket:
                return Entry(target.name, True, 0, None, unique_for(target.path))
            obj = bucket.objects.get(target.key)
            if obj is not None:
                return Entry(target.name, False, len(obj.data), obj.modified, unique_for(path), obj.etag,
                             obj.storage_class)
            under = self._keys_under(bucket, target.dir_prefix)
            if not under:
                raise PathNotFound(f"{path}: No such file or directory", operation="stat")
            marker = bucket.objects[under[0]] if under[0] == target.marker_key else None
            return Entry(target.name, True, 0, marker.modified if marker else None, unique_for(path))

    def list_pages(self, path: str) -> Iterator[list[Entry]]:
        target = parse_path(path)
        if target.is_root:
            with self._lock:
                buckets = sorted((b for b in self._buckets.values() if b.listed), key=lambda b: b.name)
                entries = [Entry(b.name, True, 0, b.created, unique_for(f"/{b.name}")) for b in buckets]
            return iter([entries[i:i + self.page_size] for i in range(0, len(entries), self.page_size)])
        with self._lock:
            bucket = self._bucket(target, "list")
            entries, after, anything = self._list_page(bucket, target, None)
            if not anything and not target.is_bucket:
                if target.key in bucket.objects:
                    raise NotADirectory(f"{path}: Not a directory", operation="list")
                raise PathNotFound(f"{path}: No such file or directory", operation="list")
        return self._more_pages(bucket, target, entries, after)

    def _more_pages(self, bucket: _Bucket, target: S3Path, entries: list[Entry],
                    after: _Token | None) -> Iterator[list[Entry]]:
        if entries:
            yield entries
        while after is not None:
            with self._lock:
                entries, after, _ = self._list_page(bucket, target, after)
            if entries:
                yield entries

    def _list_page(self, bucket: _Bucket, target: S3Path,
                   after: _Token | None) -> tuple[list[Entry], _Token | None, bool]:
        """One ListObjectsV2 page with Delimiter='/': up to page_size keys and common prefixes."""
        prefix = target.dir_prefix
        entries: list[Entry] = []
        last: _Token | None = None
        count = 0
        for key in sorted(k for k in bucket.objects if k.startswith(prefix)):
            if after is not None and (key <= after[0] or (after[1] and key.startswith(after[0]))):
                continue
            rest = key[len(prefix):]
            slash = rest.find("/")
            item: _Token = (key, False) if slash < 0 else (key[:len(prefix) + slash + 1], True)
            if item == last:
                continue  # another key under a common prefix already counted
            if count >= self.page_size:
                return entries, last, True
            count, last = count + 1, item
            name = rest if slash < 0 else rest[:slash]
            if not name:
                continue  # the directory's own marker, or an empty "dir//" segment
            if slash < 0:
                obj = bucket.objects[key]
                entries.append(Entry(name, False, len(obj.data), obj.modified, unique_for(target.child(name)),
                                     obj.etag, obj.storage_class))
            else:
                entries.append(Entry(name, True, 0, None, unique_for(target.child(name))))
        return entries, None, last is not None

    def mkdir(self, path: str) -> None:
        target = parse_path(path)
        if target.is_root:
            raise PathExists("/: File exists", operation="mkdir")
        with self._lock:
            if target.is_bucket:
                check_bucket_name(target.bucket)
                existing = self._buckets.get(target.bucket)
                if existing is not None:
                    code = "BucketAlreadyOwnedByYou" if existing.listed else "BucketAlreadyExists"
                    raise s3errors.from_code(code, path=path, operation="mkdir")
                self._buckets[target.bucket] = _Bucket(target.bucket, self._now())
                return
            check_key(target)
            bucket = self._bucket(target, "mkdir")
            if target.key in bucket.objects:
                raise PathExists(f"{path}: a file of that name exists", operation="mkdir")
            if self._keys_under(bucket, target.marker_key):
                raise PathExists(f"{path}: File exists", operation="mkdir")
            self._require_parent(bucket, target, "mkdir")
            self._store(bucket, target.marker_key, b"", _md5(b""), storage_class="STANDARD")

    def rmdir(self, path: str) -> None:
        target = parse_path(path)
        if target.is_root:
            raise PermissionDenied("/: the bucket list cannot be removed", operation="rmdir")
        with self._lock:
            bucket = self._bucket(target, "rmdir")
            if target.is_bucket:
                if bucket.objects:
                    raise s3errors.from_code("BucketNotEmpty", path=path, operation="rmdir")
                del self._buckets[target.bucket]
                return
            under = self._keys_under(bucket, target.marker_key, limit=2)
            if not under:
                if target.key in bucket.objects:
                    raise NotADirectory(f"{path}: Not a directory", operation="rmdir")
                raise PathNotFound(f"{path}: No such file or directory", operation="rmdir")
            if under != [target.marker_key]:
                raise DirectoryNotEmpty(f"{path}: Directory not empty", operation="rmdir")
            del bucket.objects[target.marker_key]
            self._keep_parent(bucket, target)

    def delete(self, path: str) -> None:
        target = parse_path(path)
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{path}: Is a directory", operation="unlink")
        with self._lock:
            bucket = self._bucket(target, "unlink")
            if bucket.objects.pop(target.key, None) is None:
                self._directory_or_missing(bucket, target, "unlink")
            self._keep_parent(bucket, target)

    def _keep_parent(self, bucket: _Bucket, target: S3Path) -> None:
        """As S3Backend: the last key gone, an implicit parent directory stays as a marker."""
        if target.parent_prefix and not self._keys_under(bucket, target.parent_prefix):
            self._store(bucket, target.parent_prefix, b"", _md5(b""), storage_class="STANDARD")

    def rename(self, src: str, dst: str) -> None:
        source, dest = parse_path(src), parse_path(dst)
        if source.is_root or source.is_bucket:
            raise NotSupported("directory rename is not supported on S3", operation="rename")
        with self._lock:
            bucket = self._bucket(source, "rename")
            obj = bucket.objects.get(source.key)
            if obj is None:
                if self._keys_under(bucket, source.dir_prefix):
                    raise NotSupported("directory rename is not supported on S3", operation="rename")
                raise PathNotFound(f"{src}: No such file or directory", operation="rename")
            if source.path == dest.path:
                return
            self._check_writable(dest, "rename")
            copied = self._store(self._bucket(dest, "rename"), dest.key, obj.data, obj.etag, tags=obj.tags,
                                 storage_class=obj.storage_class)
            copied.restore = obj.restore
            del bucket.objects[source.key]
            self._keep_parent(bucket, source)

    # -- reading -----------------------------------------------------------------------------------------
    def head_object(self, path: str, *, with_tags: bool = False) -> ObjectInfo:
        target = parse_path(path)
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{path}: Is a directory", operation="open")
        with self._lock:
            bucket = self._bucket(target, "open")
            obj = bucket.objects.get(target.key)
            if obj is None:
                self._directory_or_missing(bucket, target, "open")
            archived = s3errors.archived(path, obj.storage_class, obj.restore)
            if archived is not None:
                raise archived
            return self._info(path, obj)

    def read_range(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        count = min(len(into), info.size - start)
        if count <= 0:
            return 0
        target = parse_path(info.path)
        with self._lock:
            bucket = self._bucket(target, "read")
            obj = bucket.objects.get(target.key)
            if obj is None:
                raise ObjectChanged(f"{info.path}: object was deleted during the transfer", operation="read")
            if obj.etag != strip_etag(info.etag):
                raise s3errors.from_code("PreconditionFailed", path=info.path, operation="read")
            if s3errors.archived(info.path, obj.storage_class, obj.restore) is not None:
                raise s3errors.from_code("InvalidObjectState", path=info.path, operation="read")
            data = obj.data  # immutable: copy out of it without holding the lock
        into.cast("B")[:count] = memoryview(data)[start:start + count]
        return count

    def get_tags(self, path: str) -> dict[str, str]:
        target = parse_path(path)
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{path}: Is a directory", operation="tags")
        with self._lock:
            return dict(self._object(target, "tags").tags)

    def set_tags(self, path: str, tags: Mapping[str, str]) -> bool:
        target = parse_path(path)
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{path}: Is a directory", operation="tags")
        with self._lock:
            obj = self._object(target, "tags")
            if not _tags_valid(tags):
                return False
            obj.tags = dict(tags)
            return True

    # -- writing -----------------------------------------------------------------------------------------
    def check_writable(self, path: str) -> None:
        with self._lock:
            self._check_writable(parse_path(path), "open")

    def _check_writable(self, target: S3Path, operation: str) -> None:
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)
        check_key(target)
        bucket = self._bucket(target, operation)
        if self._keys_under(bucket, target.dir_prefix):
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)

    def _verify_crc(self, target: S3Path, data: bytes, crc32c: int | None) -> None:
        if crc32c is not None and _crc32c.crc32c(data) != crc32c:
            raise s3errors.from_code("BadDigest", path=target.path, operation="write")

    def put_object(self, path: str, data: memoryview, *, crc32c: int | None = None,
                   tags: Mapping[str, str] | None = None) -> ObjectInfo:
        target = parse_path(path)
        check_key(target)
        payload = bytes(data)
        self._verify_crc(target, payload, crc32c)
        if tags and not _tags_valid(tags):
            raise s3errors.from_code("InvalidTag", path=path, operation="write")
        with self._lock:
            obj = self._store(self._bucket(target, "write"), target.key, payload, _md5(payload), tags=tags)
            if crc32c is not None:
                obj.crc32c = f"{crc32c:08x}"
            return self._info(path, obj)

    def create_upload(self, path: str) -> str:
        target = parse_path(path)
        check_key(target)
        with self._lock:
            bucket = self._bucket(target, "write")
            upload_id = uuid.uuid4().hex
            bucket.uploads[upload_id] = _Upload(target.key, upload_id, self._now())
            return upload_id

    def upload_part(self, path: str, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        target = parse_path(path)
        if not 1 <= number <= MAX_PARTS:
            raise s3errors.from_code("InvalidArgument", path=path, operation="write",
                                     message=f"Part number must be an integer between 1 and {MAX_PARTS}")
        payload = bytes(data)
        self._verify_crc(target, payload, crc32c)
        etag = _md5(payload)
        with self._lock:
            self._upload(target, upload_id, "write").parts[number] = (payload, etag)
        return etag

    def complete_upload(self, path: str, upload_id: str, parts: list[tuple[int, str]]) -> ObjectInfo:
        target = parse_path(path)
        with self._lock:
            bucket = self._bucket(target, "close")
            upload = self._upload(target, upload_id, "close")
            numbers = [n for n, _ in parts]
            if not parts or numbers != sorted(set(numbers)):
                raise s3errors.from_code("InvalidPartOrder", path=path, operation="close")
            chosen: list[bytes] = []
            for number, etag in parts:
                stored = upload.parts.get(number)
                if stored is None or stored[1] != strip_etag(etag):
                    raise s3errors.from_code("InvalidPart", path=path, operation="close")
                chosen.append(stored[0])
            if any(len(p) < self.min_part_size for p in chosen[:-1]):
                raise s3errors.from_code("EntityTooSmall", path=path, operation="close")
            obj = self._store(bucket, target.key, b"".join(chosen), _multipart_etag(chosen))
            del bucket.uploads[upload_id]
            return self._info(path, obj)

    def abort_upload(self, path: str, upload_id: str) -> None:
        target = parse_path(path)
        with self._lock:
            bucket = self._bucket(target, "abort")
            upload = bucket.uploads.get(upload_id)
            if upload is not None and upload.key == target.key:
                del bucket.uploads[upload_id]

    def list_uploads(self, path: str) -> list[UploadInfo]:
        target = parse_path(path)
        with self._lock:
            bucket = self._bucket(target, "list")
            uploads = sorted((u for u in bucket.uploads.values() if u.key == target.key),
                             key=lambda u: (u.initiated, u.upload_id))
            return [UploadInfo(path, u.upload_id, u.initiated) for u in uploads]

    def list_parts(self, path: str, upload_id: str) -> list[PartInfo]:
        target = parse_path(path)
        with self._lock:
            upload = self._upload(target, upload_id, "list")
            return [PartInfo(n, len(data), etag) for n, (data, etag) in sorted(upload.parts.items())]
