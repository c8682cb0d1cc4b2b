"""A back end that reads through another and refuses every change: anonymous sessions (anonymous_read_only).

The refusal does not depend on what the S3 keys of the anonymous map entry would allow, and it comes
before any data moves: uploads fail at ``check_writable``, before ``150``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from s3dsi.protocol.entries import Entry
from s3dsi.protocol.errors import PermissionDenied
from s3dsi.storage.backend import Backend, ObjectInfo, PartInfo, UploadInfo, UploadRecordSet, WriteCondition

READ_ONLY = "anonymous sessions are read-only"


class ReadOnlyBackend:
    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @staticmethod
    def _refuse(path: str, operation: str) -> PermissionDenied:
        return PermissionDenied(f"{path}: Permission denied ({READ_ONLY})", operation=operation)

    # -- reading: passed through ------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        return self.inner.stat(path)

    def list_pages(self, path: str) -> Iterator[list[Entry]]:
        return self.inner.list_pages(path)

    def head_object(self, path: str, *, with_tags: bool = False, with_checksums: bool = False) -> ObjectInfo:
        return self.inner.head_object(path, with_tags=with_tags, with_checksums=with_checksums)

    def open_read(self, path: str, start: int, into: memoryview) -> tuple[ObjectInfo, int]:
        return self.inner.open_read(path, start, into)

    def read_range(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        return self.inner.read_range(info, start, into)

    def get_tags(self, path: str) -> dict[str, str]:
        return self.inner.get_tags(path)

    def list_uploads(self, path: str) -> list[UploadInfo]:
        return self.inner.list_uploads(path)

    def list_parts(self, path: str, upload_id: str) -> list[PartInfo]:
        return self.inner.list_parts(path, upload_id)

    # -- changing: refused ------------------------------------------------------------------------
    def set_tags(self, path: str, tags: Mapping[str, str]) -> bool:
        return False  # best effort by contract (CKSM remembering a digest): simply not stored

    def mkdir(self, path: str) -> None:
        raise self._refuse(path, "mkdir")

    def rmdir(self, path: str) -> None:
        raise self._refuse(path, "rmdir")

    def delete(self, path: str) -> None:
        raise self._refuse(path, "delete")

    def rename(self, src: str, dst: str) -> None:
        raise self._refuse(src, "rename")

    def check_writable(self, path: str) -> WriteCondition | None:
        raise self._refuse(path, "open")

    def check_renamable(self, path: str) -> None:
        raise self._refuse(path, "rename")

    def put_object(self, path: str, data: memoryview, *, crc32c: int | None = None,
                   tags: Mapping[str, str] | None = None,
                   condition: WriteCondition | None = None) -> ObjectInfo:
        raise self._refuse(path, "write")

    def create_upload(self, path: str) -> str:
        raise self._refuse(path, "write")

    def upload_part(self, path: str, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        raise self._refuse(path, "write")

    def complete_upload(self, path: str, upload_id: str, parts: list[tuple[int, str]], *,
                        crc32c: int | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        raise self._refuse(path, "write")

    def abort_upload(self, path: str, upload_id: str) -> None:
        raise self._refuse(path, "write")

    def upload_records(self, path: str) -> UploadRecordSet:
        raise self._refuse(path, "open")  # as check_writable: the same reply before 150
