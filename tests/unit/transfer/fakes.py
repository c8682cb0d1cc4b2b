"""A small thread-safe in-memory Backend for the transfer engine tests, with failure injection."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import crc32c as _crc

from s3dsi.protocol.entries import Entry
from s3dsi.protocol.errors import (
    BackendUnavailable,
    IsADirectory,
    ObjectChanged,
    PathNotFound,
    PermissionDenied,
)
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo, WriteCondition

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class _Object:
    data: bytes
    etag: str
    tags: dict[str, str] = field(default_factory=dict)
    crc32c: str | None = None  # as S3 keeps a single PutObject's (or a FULL_OBJECT upload's) CRC32C


@dataclass
class _Upload:
    path: str
    parts: dict[int, tuple[bytes, str]] = field(default_factory=dict)


class FakeBackend:
    """Objects and multipart uploads in dicts. Hooks: ``fail_part`` (part number -> exception),
    ``before_read`` (called in read_range), ``tags_allowed``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, _Object] = {}
        self.uploads: dict[str, _Upload] = {}
        self.calls: list[str] = []
        self.fail_part: dict[int, BaseException] = {}
        self.fail_complete: BaseException | None = None
        self.before_read: Callable[[int], object] | None = None
        self.part_delay: Callable[[int], object] | None = None
        self.tags_allowed = True
        self.tagging_denied = False  # PutObject with tags refused (no s3:PutObjectTagging)
        self.min_part_size = 0  # S3 wants 5 MiB; tests lower it
        self.condition: WriteCondition | None = None  # what check_writable hands out
        self.commit_conditions: list[WriteCondition | None] = []  # what each commit carried
        self.completed_crc32c: list[int | None] = []  # the full-object CRC32C each completion carried
        self._ids = itertools.count(1)

    # -- helpers for tests -------------------------------------------------------------------------
    def put(self, path: str, data: bytes, tags: Mapping[str, str] | None = None,
            crc32c: int | None = None) -> None:
        self.put_object(path, memoryview(data), tags=tags, crc32c=crc32c)

    def data(self, path: str) -> bytes:
        return self.objects[path].data

    def _record(self, name: str) -> None:
        with self.lock:
            self.calls.append(name)

    # -- namespace (only what the engines need) ----------------------------------------------------
    def stat(self, path: str) -> Entry:
        obj = self.objects.get(path)
        if obj is None:
            raise PathNotFound()
        return Entry(path.rsplit("/", 1)[-1], False, len(obj.data), NOW, path, obj.etag)

    def list_pages(self, path: str) -> Iterator[list[Entry]]:
        raise NotImplementedError

    def mkdir(self, path: str) -> None:
        raise NotImplementedError

    def rmdir(self, path: str) -> None:
        raise NotImplementedError

    def delete(self, path: str) -> None:
        with self.lock:
            del self.objects[path]

    def rename(self, src: str, dst: str) -> None:
        raise NotImplementedError

    # -- reading -----------------------------------------------------------------------------------
    def head_object(self, path: str, *, with_tags: bool = False, with_checksums: bool = False) -> ObjectInfo:
        self._record("head_object")
        if path.count("/") < 2:
            raise IsADirectory()
        with self.lock:
            obj = self.objects.get(path)
            if obj is None:
                raise PathNotFound(operation="stat")
            checksums = {"CRC32C": obj.crc32c} if with_checksums and obj.crc32c else {}
            return ObjectInfo(path, len(obj.data), obj.etag, NOW, tags=dict(obj.tags) if with_tags else {},
                              crc32c=obj.crc32c, checksums=checksums)

    def open_read(self, path: str, start: int, into: memoryview) -> tuple[ObjectInfo, int]:
        self._record("open_read")
        if path.count("/") < 2:
            raise IsADirectory()
        with self.lock:
            obj = self.objects.get(path)
            if obj is None:
                raise PathNotFound(operation="open")
            info = ObjectInfo(path, len(obj.data), obj.etag, NOW, crc32c=obj.crc32c)
        return info, self.read_range(info, start, into[:max(0, min(len(into), info.size - start))])

    def read_range(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        if self.before_read is not None:
            self.before_read(start)
        with self.lock:
            obj = self.objects.get(info.path)
            if obj is None or obj.etag != info.etag:
                raise ObjectChanged()
            chunk = obj.data[start:start + len(into)]
        into[:len(chunk)] = chunk
        return len(chunk)

    def get_tags(self, path: str) -> dict[str, str]:
        self._record("get_tags")
        with self.lock:
            obj = self.objects.get(path)
            return dict(obj.tags) if obj is not None else {}

    def set_tags(self, path: str, tags: Mapping[str, str]) -> bool:
        self._record("set_tags")
        if not self.tags_allowed:
            return False
        with self.lock:
            self.objects[path].tags = dict(tags)
        return True

    # -- writing -----------------------------------------------------------------------------------
    def check_writable(self, path: str) -> WriteCondition | None:
        self._record("check_writable")
        if path.count("/") < 2:
            raise IsADirectory()
        return self.condition

    def check_renamable(self, path: str) -> None:
        return None

    def put_object(self, path: str, data: memoryview, *, crc32c: int | None = None,
                   tags: Mapping[str, str] | None = None,
                   condition: WriteCondition | None = None) -> ObjectInfo:
        self._record("put_object")
        self.commit_conditions.append(condition)
        if tags and self.tagging_denied:
            raise PermissionDenied()
        payload = bytes(data)
        if crc32c is not None:
            assert _crc.crc32c(payload) == crc32c, "put_object crc32c mismatch"
        etag = hashlib.md5(payload).hexdigest()
        stored_crc = f"{crc32c:08x}" if crc32c is not None else None
        with self.lock:
            self.objects[path] = _Object(payload, etag, dict(tags or {}), stored_crc)
        return ObjectInfo(path, len(payload), etag, NOW, tags=dict(tags or {}), crc32c=stored_crc)

    def create_upload(self, path: str) -> str:
        self._record("create_upload")
        upload_id = f"upload-{next(self._ids)}"
        with self.lock:
            self.uploads[upload_id] = _Upload(path)
        return upload_id

    def upload_part(self, path: str, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        self._record(f"upload_part {number}")
        if self.part_delay is not None:
            self.part_delay(number)
        failure = self.fail_part.get(number)
        if failure is not None:
            raise failure
        payload = bytes(data)
        if crc32c is not None:
            assert _crc.crc32c(payload) == crc32c, "upload_part crc32c mismatch"
        etag = hashlib.md5(payload).hexdigest()
        with self.lock:
            upload = self.uploads.get(upload_id)
            if upload is None:
                raise BackendUnavailable("NoSuchUpload")
            upload.parts[number] = (payload, etag)
        return etag

    def complete_upload(self, path: str, upload_id: str, parts: list[tuple[int, str]], *,
                        crc32c: int | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        self._record("complete_upload")
        self.commit_conditions.append(condition)
        if self.fail_complete is not None:
            raise self.fail_complete
        with self.lock:
            upload = self.uploads.pop(upload_id)
            numbers = [n for n, _ in parts]
            assert numbers == sorted(numbers), "parts must be ascending"
            chunks = []
            for i, (number, etag) in enumerate(parts):
                payload, stored_etag = upload.parts[number]
                assert stored_etag == etag, "etag mismatch"
                if i < len(parts) - 1:
                    assert len(payload) >= self.min_part_size, "part too small"
                chunks.append(payload)
            data = b"".join(chunks)
            if crc32c is not None:  # S3 checks a full-object checksum against the parts
                assert _crc.crc32c(data) == crc32c, "complete_upload full-object crc32c mismatch"
            self.completed_crc32c.append(crc32c)
            md5s = b"".join(bytes.fromhex(e) for _, e in parts)
            etag = f"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"
            stored_crc = f"{crc32c:08x}" if crc32c is not None else None  # kept, as S3 keeps FULL_OBJECT ones
            self.objects[path] = _Object(data, etag, crc32c=stored_crc)
        return ObjectInfo(path, len(data), etag, NOW, crc32c=stored_crc)

    def abort_upload(self, path: str, upload_id: str) -> None:
        self._record("abort_upload")
        with self.lock:
            self.uploads.pop(upload_id, None)

    def list_uploads(self, path: str) -> list[UploadInfo]:
        with self.lock:
            return [UploadInfo(u.path, uid, NOW) for uid, u in self.uploads.items() if u.path == path]

    def list_parts(self, path: str, upload_id: str) -> list[PartInfo]:
        with self.lock:
            upload = self.uploads[upload_id]
            return [PartInfo(n, len(d), e) for n, (d, e) in sorted(upload.parts.items())]
