"""``S3Store``: the object-store seam on Amazon S3 and S3-compatible stores; ``S3Backend``: the namespace
layer on it; ``S3BackendFactory`` makes one per logged-in user from the process-wide client pool and
bucket-region cache.

Everything S3-specific is here or in the ``s3*`` modules beside it: buckets of other accounts are
reached by path, each bucket's region learnt once per process from HeadBucket (``x-amz-bucket-region``,
also sent with 301/403) and served by a client of that region; botocore failures become ``DsiError``s in
``s3errors``; ranged GETs read straight into the caller's buffer and are retried when the body breaks
off; renames above ``multipart_copy_threshold`` copy in parts. Directories are the namespace layer's
(``s3dsi.storage.namespace``).
"""

from __future__ import annotations

import base64
import binascii
import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from s3dsi.protocol.errors import DsiError, InvalidPath, PathNotFound
from s3dsi.storage import s3errors
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo
from s3dsi.storage.namespace import Namespace, object_info
from s3dsi.storage.paths import S3Path, quote_etag, strip_etag
from s3dsi.storage.s3clients import BucketRegions, ClientPool, S3Config, S3Credentials
from s3dsi.storage.s3copy import CopySource, copy_object, multipart_copy
from s3dsi.storage.s3io import read_body_into, utc_seconds
from s3dsi.storage.s3uploads import S3Writer
from s3dsi.storage.store import BucketListing, KeyPage, ListedKey, ObjectHead

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

__all__ = ["S3Backend", "S3BackendFactory", "S3Config", "S3Credentials", "S3Store"]

_S3_FAILURES = (ClientError, BotoCoreError)
# What breaking off mid-body looks like, through urllib3 (botocore's wrappers) or straight from the socket.
_STREAM_FAILURES = (ResponseStreamingError, IncompleteReadError, ReadTimeoutError, OSError,
                    http.client.HTTPException)
_READ_ATTEMPTS = 3
_TAGS_UNAVAILABLE = {"AccessDenied", "403", "NotImplemented", "501", "MethodNotAllowed", "405",
                     "InvalidTag", "InvalidRequest"}


class _ShortRead(Exception):
    """The object store closed a ranged GET before sending all the bytes it announced."""


@dataclass(frozen=True)
class _BucketProbe:
    region: str
    status: int  # 200, or 301/403: the bucket exists but HeadBucket was refused


def full_object_crc32c(value: str | None, kind: str | None) -> str | None:
    """S3's ChecksumCRC32C as lower-case hex when it covers the whole object (a single PutObject, or a
    FULL_OBJECT multipart upload); None for none, or for a composite ``base64-N`` of the parts."""
    if not value or "-" in value or (kind is not None and kind != "FULL_OBJECT"):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw.hex() if len(raw) == 4 else None


class S3BackendFactory:
    """Shared by the whole process: one client pool and one bucket-region cache for every user."""

    def __init__(self, config: S3Config, *, session: botocore.session.Session | None = None) -> None:
        self.config = config
        self.clients = ClientPool(config, session)
        self.regions = BucketRegions()

    def for_credentials(self, access_key_id: str, secret_access_key: str,
                        session_token: str | None = None) -> S3Backend:
        return S3Backend(self, S3Credentials(access_key_id, secret_access_key, session_token))


class S3Backend(Namespace):
    """One user's view of S3: the namespace layer on that user's ``S3Store``."""

    store: S3Store

    def __init__(self, factory: S3BackendFactory, credentials: S3Credentials) -> None:
        super().__init__(S3Store(factory, credentials))

    def __repr__(self) -> str:
        return f"S3Backend(access_key_id={self.store.credentials.access_key_id!r})"


class S3Store:
    """One user's S3 requests (thread-safe: botocore clients are, and our own state is locked)."""

    def __init__(self, factory: S3BackendFactory, credentials: S3Credentials) -> None:
        self._factory = factory
        self._config = factory.config
        self.credentials = credentials
        self._writer = S3Writer(self._config, self._fail)

    def __repr__(self) -> str:
        return f"S3Store(access_key_id={self.credentials.access_key_id!r})"

    # -- plumbing --------------------------------------------------------------------------------------
    def _fail(self, exc: BaseException, target: S3Path | str, operation: str) -> DsiError:
        path = target.path if isinstance(target, S3Path) else target
        if isinstance(target, S3Path) and s3errors.is_redirect(exc):
            self._factory.regions.forget(target.bucket)
        return s3errors.translate(exc, path=path, operation=operation, secrets=self.credentials.secrets)

    def _home_client(self) -> S3Client:
        return self._factory.clients.client(self.credentials, self._config.region)

    def _client(self, target: S3Path, operation: str) -> S3Client:
        region = self._factory.regions.get(target.bucket)
        if region is None:
            region = self._probe(target.bucket, operation).region
        return self._factory.clients.client(self.credentials, region)

    def _probe(self, bucket: str, operation: str) -> _BucketProbe:
        """HeadBucket: PathNotFound if the bucket does not exist, else its region (now cached)."""
        try:
            response = self._home_client().head_bucket(Bucket=bucket)
        except _S3_FAILURES as exc:
            region = s3errors.response_header(exc, "x-amz-bucket-region")
            if s3errors.is_not_found(exc):
                raise s3errors.from_code("NoSuchBucket", path=f"/{bucket}", operation=operation) from exc
            if region is None:
                raise self._fail(exc, f"/{bucket}", operation) from exc
            status = s3errors.http_status(exc) or 403
        else:
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            region = headers.get("x-amz-bucket-region") or response.get("BucketRegion") or self._config.region
            status = 200
        self._factory.regions.put(bucket, region)
        return _BucketProbe(region, status)

    def _head(self, client: S3Client, target: S3Path, operation: str,
              checksum: bool = False) -> HeadObjectOutputTypeDef | None:
        """HeadObject, or None when there is no object of that name. ``checksum``: ask for the
        object's stored checksums too (x-amz-checksum-mode)."""
        try:
            if checksum:
                return client.head_object(Bucket=target.bucket, Key=target.key, ChecksumMode="ENABLED")
            return client.head_object(Bucket=target.bucket, Key=target.key)
        except _S3_FAILURES as exc:
            if s3errors.is_not_found(exc):
                return None
            raise self._fail(exc, target, operation) from exc

    @staticmethod
    def _object_head(head: HeadObjectOutputTypeDef) -> ObjectHead:
        return ObjectHead(size=head["ContentLength"], etag=strip_etag(head["ETag"]),
                          modified=utc_seconds(head["LastModified"]),
                          storage_class=head.get("StorageClass", "STANDARD"),
                          tag_count=head.get("TagCount", 0), restore=head.get("Restore"),
                          archive_status=head.get("ArchiveStatus"),
                          crc32c=full_object_crc32c(head.get("ChecksumCRC32C"), head.get("ChecksumType")))

    # -- buckets ---------------------------------------------------------------------------------------
    def list_buckets(self, token: str | None) -> BucketListing:
        extra: dict[str, Any] = {"ContinuationToken": token} if token else {}
        try:
            response = self._home_client().list_buckets(**extra)
        except _S3_FAILURES as exc:
            raise self._fail(exc, "/", "list") from exc
        names = [(b["Name"], utc_seconds(b["CreationDate"]) if b.get("CreationDate") else None)
                 for b in response.get("Buckets", [])]
        return BucketListing(names, response.get("ContinuationToken") or None)

    def check_bucket(self, target: S3Path, operation: str) -> None:
        self._probe(target.bucket, operation)  # a 403 still proves the bucket exists

    def create_bucket(self, target: S3Path) -> None:
        # us-east-1 answers 200 to re-creating one's own bucket, so look first.
        try:
            probe = self._probe(target.bucket, "mkdir")
        except PathNotFound:
            pass
        else:
            if probe.status == 200:
                raise s3errors.from_code("BucketAlreadyOwnedByYou", path=target.path, operation="mkdir")
            raise s3errors.from_code("BucketAlreadyExists", path=target.path, operation="mkdir")
        region = self._config.region
        extra: dict[str, Any] = {}
        if region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._home_client().create_bucket(Bucket=target.bucket, **extra)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "mkdir") from exc
        self._factory.regions.put(target.bucket, region)

    def delete_bucket(self, target: S3Path) -> None:
        client = self._client(target, "rmdir")
        try:
            client.delete_bucket(Bucket=target.bucket)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "rmdir") from exc
        self._factory.regions.forget(target.bucket)

    # -- keys ------------------------------------------------------------------------------------------
    def head(self, target: S3Path, operation: str) -> ObjectHead | None:
        head = self._head(self._client(target, operation), target, operation,
                          checksum=self._config.crc32c_checksums)
        return self._object_head(head) if head is not None else None

    def list_keys(self, target: S3Path, prefix: str, operation: str, *, delimited: bool = False,
                  limit: int | None = None, token: str | None = None) -> KeyPage:
        extra: dict[str, Any] = {}
        if delimited:
            extra["Delimiter"] = "/"
        if limit is not None:
            extra["MaxKeys"] = limit
        if token:
            extra["ContinuationToken"] = token
        client = self._client(target, operation)
        try:
            page = client.list_objects_v2(Bucket=target.bucket, Prefix=prefix, **extra)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc
        keys = [ListedKey(obj["Key"], obj["Size"], utc_seconds(obj["LastModified"]),
                          strip_etag(obj.get("ETag", "")), obj.get("StorageClass", "STANDARD"))
                for obj in page.get("Contents", [])]
        prefixes = [common["Prefix"] for common in page.get("CommonPrefixes", [])]
        next_token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        return KeyPage(keys, prefixes, next_token or None)

    def put(self, target: S3Path, data: memoryview, *, crc32c: int | None = None,
            tags: Mapping[str, str] | None = None) -> ObjectInfo:
        return self._writer.put_object(self._client(target, "write"), target, data, crc32c=crc32c, tags=tags)

    def put_marker(self, target: S3Path, key: str, operation: str) -> None:
        client = self._client(target, operation)
        try:
            client.put_object(Bucket=target.bucket, Key=key, Body=b"")
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc

    def delete(self, target: S3Path, key: str, operation: str) -> None:
        client = self._client(target, operation)
        try:
            client.delete_object(Bucket=target.bucket, Key=key)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc

    def put_small(self, target: S3Path, key: str, body: bytes, operation: str) -> None:
        client = self._client(target, operation)
        try:
            client.put_object(Bucket=target.bucket, Key=key, Body=body, ContentType="application/json")
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc

    def get_small(self, target: S3Path, key: str, operation: str,
                  limit: int) -> tuple[bytes, datetime] | None:
        client = self._client(target, operation)
        try:
            response = client.get_object(Bucket=target.bucket, Key=key)
        except _S3_FAILURES as exc:
            if s3errors.is_not_found(exc):
                return None
            raise self._fail(exc, target, operation) from exc
        body = response["Body"]
        try:
            if int(response.get("ContentLength", 0)) > limit:
                raise InvalidPath(f"/{target.bucket}/{key}: larger than {limit} bytes")
            data = body.read(limit + 1)
        except (*_STREAM_FAILURES, *_S3_FAILURES) as exc:
            raise self._fail(exc, target, operation) from exc
        finally:
            body.close()
        if len(data) > limit:
            raise InvalidPath(f"/{target.bucket}/{key}: larger than {limit} bytes")
        return data, utc_seconds(response["LastModified"])

    def copy(self, source: S3Path, head: ObjectHead, dest: S3Path) -> None:
        copy = CopySource(source.bucket, source.key, head.etag, head.size, head.storage_class)
        dst_client = self._client(dest, "rename")
        try:
            if copy.size <= self._config.multipart_copy_threshold:
                copy_object(dst_client, copy, dest.bucket, dest.key)
                return
            # A multipart copy must repeat the source's content headers, metadata and tags itself.
            src_client = self._client(source, "rename")
            tags = self._read_tags(src_client, source, "rename")
            full = self._head(src_client, source, "rename")
            if full is None:
                raise s3errors.from_code("NoSuchKey", path=source.path, operation="rename")
            multipart_copy(dst_client, copy, full, tags, bucket=dest.bucket, key=dest.key,
                           part_size=self._config.copy_part_size, workers=self._config.copy_workers)
        except _S3_FAILURES as exc:
            raise self._fail(exc, dest, "rename") from exc

    def read_into(self, target: S3Path, etag: str, start: int, into: memoryview) -> int:
        client = self._client(target, "read")
        count = len(into)
        done, failures = 0, 0
        while done < count:
            try:
                done += self._get_into(client, target, etag, start + done, into[done:])
            except (_ShortRead, *_STREAM_FAILURES) as exc:
                failures += 1  # the body broke off mid-stream: botocore does not retry that for us
                if failures >= _READ_ATTEMPTS:
                    raise self._fail(exc if not isinstance(exc, _ShortRead) else
                                     IncompleteReadError(actual_bytes=done, expected_bytes=count),
                                     target, "read") from exc
        return count

    def _get_into(self, client: S3Client, target: S3Path, etag: str, start: int, view: memoryview) -> int:
        try:
            response = client.get_object(Bucket=target.bucket, Key=target.key, IfMatch=quote_etag(etag),
                                         Range=f"bytes={start}-{start + len(view) - 1}")
        except _S3_FAILURES as exc:
            if isinstance(exc, ResponseStreamingError | IncompleteReadError):
                raise
            raise self._fail(exc, target, "read") from exc
        body = response["Body"]
        try:
            got = read_body_into(body, view)
        finally:
            body.close()
        if got < len(view):
            raise _ShortRead
        return got

    def _read_tags(self, client: S3Client, target: S3Path, operation: str) -> dict[str, str]:
        try:
            response = client.get_object_tagging(Bucket=target.bucket, Key=target.key)
        except _S3_FAILURES as exc:
            if s3errors.error_code(exc) in _TAGS_UNAVAILABLE:
                return {}
            raise self._fail(exc, target, operation) from exc
        return {tag["Key"]: tag["Value"] for tag in response.get("TagSet", [])}

    def get_tags(self, target: S3Path, operation: str) -> dict[str, str]:
        return self._read_tags(self._client(target, operation), target, operation)

    def put_tags(self, target: S3Path, tags: Mapping[str, str]) -> bool:
        client = self._client(target, "tags")
        tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
        try:
            client.put_object_tagging(Bucket=target.bucket, Key=target.key,
                                      Tagging={"TagSet": tag_set})  # type: ignore[typeddict-item]
        except _S3_FAILURES as exc:
            if s3errors.error_code(exc) in _TAGS_UNAVAILABLE:
                return False
            raise self._fail(exc, target, "tags") from exc
        return True

    # -- multipart uploads -----------------------------------------------------------------------------
    def create_upload(self, target: S3Path) -> str:
        return self._writer.create_upload(self._client(target, "write"), target)

    def upload_part(self, target: S3Path, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        return self._writer.upload_part(self._client(target, "write"), target, upload_id, number, data,
                                        crc32c=crc32c)

    def complete_upload(self, target: S3Path, upload_id: str, parts: list[tuple[int, str]]) -> ObjectInfo:
        client = self._client(target, "close")
        self._writer.complete_upload(client, target, upload_id, parts)
        # What was stored, as S3 reports it (size, multipart ETag, time); no archive check: an upload in
        # an archive storage class is complete, not unreadable.
        head = self._head(client, target, "open")
        if head is None:
            raise s3errors.from_code("NoSuchKey", path=target.path, operation="open")  # deleted meanwhile
        info = self._object_head(head)
        tags = self._read_tags(client, target, "open") if info.tag_count else {}
        return object_info(target.path, info, tags)

    def abort_upload(self, target: S3Path, upload_id: str) -> None:
        self._writer.abort_upload(self._client(target, "abort"), target, upload_id)

    def list_uploads(self, target: S3Path) -> list[UploadInfo]:
        return self._writer.list_uploads(self._client(target, "list"), target)

    def list_parts(self, target: S3Path, upload_id: str) -> list[PartInfo]:
        return self._writer.list_parts(self._client(target, "list"), target, upload_id)
