"""Writing objects to S3: single PutObject and multipart uploads, each carrying our own CRC32C.

S3's rules for checksums on multipart uploads: an upload created with ``ChecksumAlgorithm=CRC32C``
refuses parts without a CRC32C (and one created without it refuses parts with one), and
CompleteMultipartUpload must repeat every part's checksum. The checksums of the parts this process
sent are remembered per upload id; parts sent by an earlier session are looked up with ListParts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from s3dsi.protocol.errors import DsiError
from s3dsi.storage import s3errors
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo
from s3dsi.storage.paths import S3Path, quote_etag, strip_etag
from s3dsi.storage.s3clients import S3Config
from s3dsi.storage.s3io import MemoryviewBody, crc32c_base64, crc32c_of, reply_date, utc_seconds

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_S3_FAILURES = (ClientError, BotoCoreError)
_UPLOADS_REMEMBERED = 4096  # forgets uploads that were never completed nor aborted

Fail = Callable[[BaseException, S3Path, str], DsiError]


class S3Writer:
    """The write half of S3Backend; the caller has already resolved the bucket's client."""

    def __init__(self, config: S3Config, fail: Fail) -> None:
        self._config = config
        self._fail = fail
        self._part_checksums: OrderedDict[str, dict[int, str]] = OrderedDict()
        self._lock = threading.Lock()

    def _checksum(self, data: memoryview, crc32c: int | None) -> dict[str, Any]:
        if not self._config.crc32c_checksums:
            return {}
        return {"ChecksumCRC32C": crc32c_base64(crc32c if crc32c is not None else crc32c_of(data))}

    def _storage_class(self) -> dict[str, Any]:
        return {"StorageClass": self._config.storage_class} if self._config.storage_class else {}

    def put_object(self, client: S3Client, target: S3Path, data: memoryview, *, crc32c: int | None,
                   tags: Mapping[str, str] | None) -> ObjectInfo:
        extra = {**self._checksum(data, crc32c), **self._storage_class()}
        if tags:
            extra["Tagging"] = urlencode(dict(tags))
        try:
            response = client.put_object(Bucket=target.bucket, Key=target.key,
                                         Body=cast("IO[Any]", MemoryviewBody(data)), **extra)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "write") from exc
        return ObjectInfo(path=target.path, size=len(data), etag=strip_etag(response["ETag"]),
                          modified=reply_date(response),
                          storage_class=self._config.storage_class or "STANDARD", tags=dict(tags or {}))

    def create_upload(self, client: S3Client, target: S3Path) -> str:
        extra = self._storage_class()
        if self._config.crc32c_checksums:
            extra["ChecksumAlgorithm"] = "CRC32C"
        try:
            created = client.create_multipart_upload(Bucket=target.bucket, Key=target.key, **extra)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "write") from exc
        upload_id = created["UploadId"]
        if self._config.crc32c_checksums:
            with self._lock:
                self._part_checksums[upload_id] = {}
                while len(self._part_checksums) > _UPLOADS_REMEMBERED:
                    self._part_checksums.popitem(last=False)
        return upload_id

    def upload_part(self, client: S3Client, target: S3Path, upload_id: str, number: int, data: memoryview,
                    *, crc32c: int | None) -> str:
        checksum = self._checksum(data, crc32c)
        try:
            response = client.upload_part(Bucket=target.bucket, Key=target.key, UploadId=upload_id,
                                          PartNumber=number, Body=cast("IO[Any]", MemoryviewBody(data)),
                                          **checksum)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "write") from exc
        if checksum:
            with self._lock:
                self._part_checksums.setdefault(upload_id, {})[number] = checksum["ChecksumCRC32C"]
        return strip_etag(response["ETag"])

    def _checksums_for(self, client: S3Client, target: S3Path, upload_id: str,
                       numbers: list[int]) -> dict[int, str]:
        with self._lock:
            known = dict(self._part_checksums.get(upload_id, {}))
        if all(n in known for n in numbers):
            return known
        listed = self._all_parts(client, target, upload_id, "close")
        return {**{p["PartNumber"]: p["ChecksumCRC32C"] for p in listed if p.get("ChecksumCRC32C")}, **known}

    def complete_upload(self, client: S3Client, target: S3Path, upload_id: str,
                        parts: list[tuple[int, str]]) -> None:
        listed: list[dict[str, Any]] = [{"PartNumber": n, "ETag": quote_etag(etag)} for n, etag in parts]
        if self._config.crc32c_checksums:
            checksums = self._checksums_for(client, target, upload_id, [n for n, _ in parts])
            for part in listed:
                if part["PartNumber"] in checksums:
                    part["ChecksumCRC32C"] = checksums[part["PartNumber"]]
        try:
            client.complete_multipart_upload(Bucket=target.bucket, Key=target.key, UploadId=upload_id,
                                             MultipartUpload={"Parts": listed})  # type: ignore[typeddict-item]
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "close") from exc
        with self._lock:
            self._part_checksums.pop(upload_id, None)

    def abort_upload(self, client: S3Client, target: S3Path, upload_id: str) -> None:
        with self._lock:
            self._part_checksums.pop(upload_id, None)
        try:
            client.abort_multipart_upload(Bucket=target.bucket, Key=target.key, UploadId=upload_id)
        except _S3_FAILURES as exc:
            if s3errors.error_code(exc) in ("NoSuchUpload", "404"):
                return
            raise self._fail(exc, target, "abort") from exc

    def list_uploads(self, client: S3Client, target: S3Path) -> list[UploadInfo]:
        found: list[UploadInfo] = []
        markers: dict[str, Any] = {}
        while True:
            try:
                page = client.list_multipart_uploads(Bucket=target.bucket, Prefix=target.key, **markers)
            except _S3_FAILURES as exc:
                raise self._fail(exc, target, "list") from exc
            found.extend(UploadInfo(target.path, u["UploadId"], utc_seconds(u["Initiated"]))
                         for u in page.get("Uploads", []) if u.get("Key") == target.key)
            if not page.get("IsTruncated"):
                return found
            markers = {"KeyMarker": page.get("NextKeyMarker", ""),
                       "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    def _all_parts(self, client: S3Client, target: S3Path, upload_id: str, operation: str) -> list[Any]:
        parts: list[Any] = []
        marker = 0
        while True:
            try:
                page = client.list_parts(Bucket=target.bucket, Key=target.key, UploadId=upload_id,
                                         PartNumberMarker=marker)
            except _S3_FAILURES as exc:
                raise self._fail(exc, target, operation) from exc
            parts.extend(page.get("Parts", []))
            if not page.get("IsTruncated"):
                return parts
            marker = page.get("NextPartNumberMarker", 0)

    def list_parts(self, client: S3Client, target: S3Path, upload_id: str) -> list[PartInfo]:
        parts = self._all_parts(client, target, upload_id, "list")
        return sorted((PartInfo(p["PartNumber"], p["Size"], strip_etag(p["ETag"])) for p in parts),
                      key=lambda part: part.number)
