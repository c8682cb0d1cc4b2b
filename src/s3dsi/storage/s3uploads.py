"""Writing objects to S3: single PutObject and multipart uploads, each carrying our own CRC32C.

S3's rules for checksums on multipart uploads: an upload created with ``ChecksumAlgorithm=CRC32C``
refuses parts without a CRC32C (and one created without it refuses parts with one), and
CompleteMultipartUpload must repeat every part's checksum. The checksums of the parts this process
sent are remembered per upload id; parts sent by an earlier session are looked up with ListParts.

Uploads are created with ``ChecksumType=FULL_OBJECT``: CompleteMultipartUpload then also carries the
whole object's CRC32C, S3 checks it against the parts at completion and keeps it as the object's own
checksum (CKSM reads it back with HeadObject). A single PutObject's CRC32C is a full-object checksum
already. A store that refuses these parameters gets the request again without them (``StoreFeatures``
logs that once); one that ignores them creates a composite upload, which its CreateMultipartUpload
answer shows, and is completed as one.

``condition`` on PutObject and CompleteMultipartUpload becomes ``If-None-Match: *`` or ``If-Match``.
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
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo, WriteCondition
from s3dsi.storage.paths import S3Path, quote_etag, strip_etag
from s3dsi.storage.s3clients import S3Config
from s3dsi.storage.s3io import MemoryviewBody, crc32c_base64, crc32c_of, reply_date, utc_seconds
from s3dsi.storage.s3options import FULL_OBJECT_CHECKSUMS, StoreFeatures, rejects_feature

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_S3_FAILURES = (ClientError, BotoCoreError)
_UPLOADS_REMEMBERED = 4096  # forgets uploads that were never completed nor aborted

Fail = Callable[[BaseException, S3Path, str], DsiError]


def condition_headers(condition: WriteCondition | None) -> dict[str, Any]:
    if condition is None:
        return {}
    if condition.must_not_exist:
        return {"IfNoneMatch": "*"}
    if condition.etag is not None:
        return {"IfMatch": quote_etag(condition.etag)}
    return {}


class S3Writer:
    """The write half of S3Store; the caller has already resolved the bucket's client and the request
    options of the user (``extra``: RequestPayer, storage class, encryption, ACL)."""

    def __init__(self, config: S3Config, fail: Fail, features: StoreFeatures | None = None) -> None:
        self._config = config
        self._fail = fail
        self._features = features or StoreFeatures()
        self._part_checksums: OrderedDict[str, dict[int, str]] = OrderedDict()
        self._full_object: set[str] = set()  # uploads created with ChecksumType=FULL_OBJECT
        self._lock = threading.Lock()

    def _checksum(self, data: memoryview, crc32c: int | None) -> dict[str, Any]:
        if not self._config.crc32c_checksums:
            return {}
        return {"ChecksumCRC32C": crc32c_base64(crc32c if crc32c is not None else crc32c_of(data))}

    @property
    def full_object(self) -> bool:
        return self._config.crc32c_checksums and self._features.has(FULL_OBJECT_CHECKSUMS)

    def put_object(self, client: S3Client, target: S3Path, data: memoryview, *, crc32c: int | None,
                   tags: Mapping[str, str] | None, extra: Mapping[str, Any],
                   condition: WriteCondition | None = None) -> ObjectInfo:
        params = {**extra, **self._checksum(data, crc32c), **condition_headers(condition)}
        if tags:
            params["Tagging"] = urlencode(dict(tags))
        # with the algorithm named, S3 keeps the CRC32C as the object's own (FULL_OBJECT) checksum
        announce = self.full_object and "ChecksumCRC32C" in params

        def put(with_algorithm: bool) -> Any:
            named: dict[str, Any] = {"ChecksumAlgorithm": "CRC32C"} if with_algorithm else {}
            return client.put_object(Bucket=target.bucket, Key=target.key,
                                     Body=cast("IO[Any]", MemoryviewBody(data)), **named, **params)

        try:
            try:
                response = put(announce)
            except ClientError as exc:
                if not (announce and rejects_feature(exc)):
                    raise
                self._features.lacks(FULL_OBJECT_CHECKSUMS, f"PutObject with ChecksumAlgorithm: "
                                                            f"{s3errors.error_code(exc)}")
                response = put(False)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "write") from exc
        storage_class = extra.get("StorageClass") or self._config.storage_class or "STANDARD"
        return ObjectInfo(path=target.path, size=len(data), etag=strip_etag(response["ETag"]),
                          modified=reply_date(response), storage_class=storage_class, tags=dict(tags or {}))

    def create_upload(self, client: S3Client, target: S3Path, extra: Mapping[str, Any]) -> str:
        params: dict[str, Any] = dict(extra)
        if self._config.crc32c_checksums:
            params["ChecksumAlgorithm"] = "CRC32C"
        full = self.full_object
        try:
            try:
                kind: dict[str, Any] = {"ChecksumType": "FULL_OBJECT"} if full else {}
                created = client.create_multipart_upload(Bucket=target.bucket, Key=target.key, **params,
                                                         **kind)
            except ClientError as exc:
                if not (full and rejects_feature(exc)):
                    raise
                self._features.lacks(FULL_OBJECT_CHECKSUMS, f"CreateMultipartUpload with ChecksumType: "
                                                            f"{s3errors.error_code(exc)}")
                full = False
                created = client.create_multipart_upload(Bucket=target.bucket, Key=target.key, **params)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "write") from exc
        upload_id = created["UploadId"]
        if full and created.get("ChecksumType") != "FULL_OBJECT":
            # the store ignored the parameter: this upload is composite, complete it as one
            self._features.lacks(FULL_OBJECT_CHECKSUMS, "CreateMultipartUpload ignored ChecksumType")
            full = False
        if self._config.crc32c_checksums:
            with self._lock:
                self._part_checksums[upload_id] = {}
                if full:
                    self._full_object.add(upload_id)
                while len(self._part_checksums) > _UPLOADS_REMEMBERED:
                    forgotten, _ = self._part_checksums.popitem(last=False)
                    self._full_object.discard(forgotten)
        return upload_id

    def upload_part(self, client: S3Client, target: S3Path, upload_id: str, number: int, data: memoryview,
                    *, crc32c: int | None, extra: Mapping[str, Any]) -> str:
        checksum = self._checksum(data, crc32c)
        try:
            response = client.upload_part(Bucket=target.bucket, Key=target.key, UploadId=upload_id,
                                          PartNumber=number, Body=cast("IO[Any]", MemoryviewBody(data)),
                                          **checksum, **extra)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "write") from exc
        if checksum:
            with self._lock:
                self._part_checksums.setdefault(upload_id, {})[number] = checksum["ChecksumCRC32C"]
        return strip_etag(response["ETag"])

    def _checksums_for(self, client: S3Client, target: S3Path, upload_id: str, numbers: list[int],
                       extra: Mapping[str, Any]) -> dict[int, str]:
        with self._lock:
            known = dict(self._part_checksums.get(upload_id, {}))
        if all(n in known for n in numbers):
            return known
        listed, checksum_type = self._all_parts(client, target, upload_id, "close", extra)
        if checksum_type == "FULL_OBJECT":  # an upload created by an earlier session
            with self._lock:
                self._full_object.add(upload_id)
        return {**{p["PartNumber"]: p["ChecksumCRC32C"] for p in listed if p.get("ChecksumCRC32C")}, **known}

    def complete_upload(self, client: S3Client, target: S3Path, upload_id: str,
                        parts: list[tuple[int, str]], *, crc32c: int | None, extra: Mapping[str, Any],
                        condition: WriteCondition | None = None) -> None:
        listed: list[dict[str, Any]] = [{"PartNumber": n, "ETag": quote_etag(etag)} for n, etag in parts]
        whole: dict[str, Any] = {}
        if self._config.crc32c_checksums:
            checksums = self._checksums_for(client, target, upload_id, [n for n, _ in parts], extra)
            for part in listed:
                if part["PartNumber"] in checksums:
                    part["ChecksumCRC32C"] = checksums[part["PartNumber"]]
            with self._lock:
                full = upload_id in self._full_object
            if full and crc32c is not None:
                whole = {"ChecksumCRC32C": crc32c_base64(crc32c), "ChecksumType": "FULL_OBJECT"}
        params = {**extra, **condition_headers(condition)}

        def complete(checksum: Mapping[str, Any]) -> None:
            client.complete_multipart_upload(Bucket=target.bucket, Key=target.key, UploadId=upload_id,
                                             MultipartUpload={"Parts": listed},  # type: ignore[typeddict-item]
                                             **checksum, **params)

        try:
            try:
                complete(whole)
            except ClientError as exc:
                if not (whole and rejects_feature(exc)) or s3errors.error_code(exc) == "BadDigest":
                    raise
                self._features.lacks(FULL_OBJECT_CHECKSUMS, f"CompleteMultipartUpload with ChecksumType: "
                                                            f"{s3errors.error_code(exc)}")
                complete({})
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "close") from exc
        with self._lock:
            self._part_checksums.pop(upload_id, None)
            self._full_object.discard(upload_id)

    def abort_upload(self, client: S3Client, target: S3Path, upload_id: str,
                     extra: Mapping[str, Any]) -> None:
        with self._lock:
            self._part_checksums.pop(upload_id, None)
            self._full_object.discard(upload_id)
        try:
            client.abort_multipart_upload(Bucket=target.bucket, Key=target.key, UploadId=upload_id, **extra)
        except _S3_FAILURES as exc:
            if s3errors.error_code(exc) in ("NoSuchUpload", "404"):
                return
            raise self._fail(exc, target, "abort") from exc

    def list_uploads(self, client: S3Client, target: S3Path, extra: Mapping[str, Any]) -> list[UploadInfo]:
        found: list[UploadInfo] = []
        markers: dict[str, Any] = {}
        while True:
            try:
                page = client.list_multipart_uploads(Bucket=target.bucket, Prefix=target.key, **markers,
                                                     **extra)
            except _S3_FAILURES as exc:
                raise self._fail(exc, target, "list") from exc
            found.extend(UploadInfo(target.path, u["UploadId"], utc_seconds(u["Initiated"]))
                         for u in page.get("Uploads", []) if u.get("Key") == target.key)
            if not page.get("IsTruncated"):
                return found
            markers = {"KeyMarker": page.get("NextKeyMarker", ""),
                       "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    def _all_parts(self, client: S3Client, target: S3Path, upload_id: str, operation: str,
                   extra: Mapping[str, Any]) -> tuple[list[Any], str | None]:
        parts: list[Any] = []
        marker = 0
        checksum_type: str | None = None
        while True:
            try:
                page = client.list_parts(Bucket=target.bucket, Key=target.key, UploadId=upload_id,
                                         PartNumberMarker=marker, **extra)
            except _S3_FAILURES as exc:
                raise self._fail(exc, target, operation) from exc
            parts.extend(page.get("Parts", []))
            checksum_type = checksum_type or cast("dict[str, Any]", page).get("ChecksumType")
            if not page.get("IsTruncated"):
                return parts, checksum_type
            marker = page.get("NextPartNumberMarker", 0)

    def list_parts(self, client: S3Client, target: S3Path, upload_id: str,
                   extra: Mapping[str, Any]) -> list[PartInfo]:
        parts, _ = self._all_parts(client, target, upload_id, "list", extra)
        return sorted((PartInfo(p["PartNumber"], p["Size"], strip_etag(p["ETag"])) for p in parts),
                      key=lambda part: part.number)
