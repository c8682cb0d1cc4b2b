"""``S3Backend``: the Backend protocol on Amazon S3 and S3-compatible stores; ``S3BackendFactory`` makes one
per logged-in user from the process-wide client pool and bucket-region cache.

Namespace: ``/`` is ListBuckets; common prefixes are directories; a zero-byte ``dir/`` marker makes
an empty directory exist. A name that is both an object and a prefix stats as the object and lists
as the prefix. Buckets of other accounts are reached by path: each bucket's region is learnt once per
process from HeadBucket (``x-amz-bucket-region``, also sent with 301/403) and served by a client of
that region.
"""

from __future__ import annotations

import base64
import binascii
import http.client
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from s3dsi.protocol.errors import (
    DirectoryNotEmpty,
    DsiError,
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
from s3dsi.storage.paths import (
    S3Path,
    check_bucket_name,
    check_key,
    parse_path,
    quote_etag,
    strip_etag,
    unique_for,
)
from s3dsi.storage.s3clients import BucketRegions, ClientPool, S3Config, S3Credentials
from s3dsi.storage.s3copy import CopySource, copy_object, multipart_copy
from s3dsi.storage.s3io import read_body_into, utc_seconds
from s3dsi.storage.s3uploads import S3Writer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef, ObjectTypeDef

__all__ = ["S3Backend", "S3BackendFactory", "S3Config", "S3Credentials"]

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


class S3Backend:
    """One user's view of S3 (thread-safe: botocore clients are, and our own state is locked)."""

    def __init__(self, factory: S3BackendFactory, credentials: S3Credentials) -> None:
        self._factory = factory
        self._config = factory.config
        self._credentials = credentials
        self._writer = S3Writer(self._config, self._fail)

    def __repr__(self) -> str:
        return f"S3Backend(access_key_id={self._credentials.access_key_id!r})"

    # -- plumbing --------------------------------------------------------------------------------------
    def _fail(self, exc: BaseException, target: S3Path | str, operation: str) -> DsiError:
        path = target.path if isinstance(target, S3Path) else target
        if isinstance(target, S3Path) and s3errors.is_redirect(exc):
            self._factory.regions.forget(target.bucket)
        return s3errors.translate(exc, path=path, operation=operation, secrets=self._credentials.secrets)

    def _home_client(self) -> S3Client:
        return self._factory.clients.client(self._credentials, self._config.region)

    def _client(self, target: S3Path, operation: str) -> S3Client:
        region = self._factory.regions.get(target.bucket)
        if region is None:
            region = self._probe(target.bucket, operation).region
        return self._factory.clients.client(self._credentials, region)

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

    def _keys_under(self, client: S3Client, target: S3Path, prefix: str, operation: str,
                    limit: int = 1) -> list[ObjectTypeDef]:
        """The first ``limit`` keys starting with ``prefix`` (a directory marker sorts first)."""
        try:
            response = client.list_objects_v2(Bucket=target.bucket, Prefix=prefix, MaxKeys=limit)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc
        return response.get("Contents", [])

    def _require_parent(self, client: S3Client, target: S3Path, operation: str) -> None:
        if target.parent_prefix and not self._keys_under(client, target, target.parent_prefix, operation):
            # gfal2 derives errno from this text ("No such file" -> ENOENT); mkdir -p relies on it
            raise PathNotFound(f"{target.path}: No such file or directory (parent directory does not exist)",
                               operation=operation)

    def _object_entry(self, target: S3Path, head: HeadObjectOutputTypeDef) -> Entry:
        return Entry(name=target.name, is_dir=False, size=head["ContentLength"],
                     modified=utc_seconds(head["LastModified"]), unique=unique_for(target.path),
                     etag=strip_etag(head["ETag"]), storage_class=head.get("StorageClass", "STANDARD"))

    # -- namespace -------------------------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        target = parse_path(path)
        if target.is_root:
            return Entry("/", True, 0, None, unique_for("/"))
        if target.is_bucket:
            self._probe(target.bucket, "stat")  # a 403 still proves the bucket exists
            return Entry(target.name, True, 0, None, unique_for(target.path))
        client = self._client(target, "stat")
        head = self._head(client, target, "stat")
        if head is not None:
            return self._object_entry(target, head)
        under = self._keys_under(client, target, target.dir_prefix, "stat")
        if not under:
            raise PathNotFound(f"{path}: No such file or directory", operation="stat")
        marker = under[0] if under[0]["Key"] == target.marker_key else None
        return Entry(target.name, True, 0, utc_seconds(marker["LastModified"]) if marker else None,
                     unique_for(target.path))

    def list_pages(self, path: str) -> Iterator[list[Entry]]:
        """The first page is fetched before returning, so a missing path fails here, not mid-iteration."""
        target = parse_path(path)
        if target.is_root:
            return self._bucket_pages()
        client = self._client(target, "list")
        entries, token, anything = self._list_page(client, target, None)
        if not anything and not target.is_bucket:
            if self._head(client, target, "list") is not None:
                raise NotADirectory(f"{path}: Not a directory", operation="list")
            raise PathNotFound(f"{path}: No such file or directory", operation="list")
        return self._more_pages(client, target, entries, token)

    def _more_pages(self, client: S3Client, target: S3Path, entries: list[Entry],
                    token: str | None) -> Iterator[list[Entry]]:
        if entries:
            yield entries
        while token:
            entries, token, _ = self._list_page(client, target, token)
            if entries:
                yield entries

    def _list_page(self, client: S3Client, target: S3Path,
                   token: str | None) -> tuple[list[Entry], str | None, bool]:
        prefix = target.dir_prefix
        extra: dict[str, Any] = {"ContinuationToken": token} if token else {}
        try:
            page = client.list_objects_v2(Bucket=target.bucket, Prefix=prefix, Delimiter="/", **extra)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "list") from exc
        entries: list[Entry] = []
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"][len(prefix):-1]
            if name:  # "dir//x" has an empty segment no path can name
                entries.append(Entry(name, True, 0, None, unique_for(target.child(name))))
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if name:  # the directory's own marker
                entries.append(Entry(name, False, obj["Size"], utc_seconds(obj["LastModified"]),
                                     unique_for(target.child(name)), strip_etag(obj.get("ETag", "")),
                                     obj.get("StorageClass", "STANDARD")))
        entries.sort(key=lambda e: f"{e.name}/" if e.is_dir else e.name)  # S3's key order, as one list
        anything = bool(page.get("Contents") or page.get("CommonPrefixes"))
        next_token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        return entries, next_token, anything

    def _bucket_pages(self) -> Iterator[list[Entry]]:
        root = parse_path("/")
        try:
            response = self._home_client().list_buckets()
        except _S3_FAILURES as exc:
            raise self._fail(exc, root, "list") from exc
        return self._bucket_pages_from(response)

    def _bucket_pages_from(self, response: Any) -> Iterator[list[Entry]]:
        while True:
            buckets = [Entry(b["Name"], True, 0,
                             utc_seconds(b["CreationDate"]) if b.get("CreationDate") else None,
                             unique_for(f"/{b['Name']}")) for b in response.get("Buckets", [])]
            for start in range(0, len(buckets), 1000):
                yield buckets[start:start + 1000]
            token = response.get("ContinuationToken")
            if not token:
                return
            try:
                response = self._home_client().list_buckets(ContinuationToken=token)
            except _S3_FAILURES as exc:
                raise self._fail(exc, "/", "list") from exc

    def mkdir(self, path: str) -> None:
        target = parse_path(path)
        if target.is_root:
            raise PathExists("/: File exists", operation="mkdir")
        if target.is_bucket:
            self._create_bucket(target)
            return
        check_key(target)
        client = self._client(target, "mkdir")
        if self._head(client, target, "mkdir") is not None:
            raise PathExists(f"{path}: a file of that name exists", operation="mkdir")
        if self._keys_under(client, target, target.marker_key, "mkdir"):
            raise PathExists(f"{path}: File exists", operation="mkdir")
        self._require_parent(client, target, "mkdir")
        try:
            client.put_object(Bucket=target.bucket, Key=target.marker_key, Body=b"")
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, "mkdir") from exc

    def _create_bucket(self, target: S3Path) -> None:
        check_bucket_name(target.bucket)
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

    def rmdir(self, path: str) -> None:
        target = parse_path(path)
        if target.is_root:
            raise PermissionDenied("/: the bucket list cannot be removed", operation="rmdir")
        client = self._client(target, "rmdir")
        if target.is_bucket:
            try:
                client.delete_bucket(Bucket=target.bucket)
            except _S3_FAILURES as exc:
                raise self._fail(exc, target, "rmdir") from exc
            self._factory.regions.forget(target.bucket)
            return
        under = self._keys_under(client, target, target.marker_key, "rmdir", limit=2)
        if not under:
            if self._head(client, target, "rmdir") is not None:
                raise NotADirectory(f"{path}: Not a directory", operation="rmdir")
            raise PathNotFound(f"{path}: No such file or directory", operation="rmdir")
        if len(under) > 1 or under[0]["Key"] != target.marker_key:
            raise DirectoryNotEmpty(f"{path}: Directory not empty", operation="rmdir")
        self._delete_key(client, target, target.marker_key, "rmdir")
        self._keep_parent(client, target, "rmdir")

    def _delete_key(self, client: S3Client, target: S3Path, key: str, operation: str) -> None:
        try:
            client.delete_object(Bucket=target.bucket, Key=key)
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc

    def delete(self, path: str) -> None:
        target = parse_path(path)
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{path}: Is a directory", operation="unlink")
        client = self._client(target, "unlink")
        if self._head(client, target, "unlink") is None:
            if self._keys_under(client, target, target.dir_prefix, "unlink"):
                raise IsADirectory(f"{path}: Is a directory", operation="unlink")
            raise PathNotFound(f"{path}: No such file or directory", operation="unlink")
        self._delete_key(client, target, target.key, "unlink")
        self._keep_parent(client, target, "unlink")

    def _keep_parent(self, client: S3Client, target: S3Path, operation: str) -> None:
        """Removing the last key under an implicit directory would make the directory vanish; as on a
        file system it stays, now as an explicit (empty) directory marker."""
        if not target.parent_prefix or self._keys_under(client, target, target.parent_prefix, operation):
            return
        try:
            client.put_object(Bucket=target.bucket, Key=target.parent_prefix, Body=b"")
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc

    def rename(self, src: str, dst: str) -> None:
        source, dest = parse_path(src), parse_path(dst)
        if source.is_root or source.is_bucket:
            raise NotSupported("directory rename is not supported on S3", operation="rename")
        src_client = self._client(source, "rename")
        head = self._head(src_client, source, "rename")
        if head is None:
            if self._keys_under(src_client, source, source.dir_prefix, "rename"):
                raise NotSupported("directory rename is not supported on S3", operation="rename")
            raise PathNotFound(f"{src}: No such file or directory", operation="rename")
        if source.path == dest.path:
            return
        self._check_writable(dest, "rename")
        dst_client = self._client(dest, "rename")
        copy = CopySource(source.bucket, source.key, strip_etag(head["ETag"]), head["ContentLength"],
                          head.get("StorageClass"))
        try:
            if copy.size <= self._config.multipart_copy_threshold:
                copy_object(dst_client, copy, dest.bucket, dest.key)
            else:
                tags = self._read_tags(src_client, source, "rename")
                multipart_copy(dst_client, copy, head, tags, bucket=dest.bucket, key=dest.key,
                               part_size=self._config.copy_part_size, workers=self._config.copy_workers)
        except _S3_FAILURES as exc:
            raise self._fail(exc, dest, "rename") from exc
        self._delete_key(src_client, source, source.key, "rename")
        self._keep_parent(src_client, source, "rename")

    # -- reading ---------------------------------------------------------------------------------------
    def head_object(self, path: str, *, with_tags: bool = False) -> ObjectInfo:
        target = parse_path(path)
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{path}: Is a directory", operation="open")
        client = self._client(target, "open")
        head = self._head(client, target, "open", checksum=self._config.crc32c_checksums)
        if head is None:
            if self._keys_under(client, target, target.dir_prefix, "open"):
                raise IsADirectory(f"{path}: Is a directory", operation="open")
            raise PathNotFound(f"{path}: No such file or directory", operation="open")
        storage_class = head.get("StorageClass", "STANDARD")
        archived = s3errors.archived(path, storage_class, head.get("Restore"), head.get("ArchiveStatus"))
        if archived is not None:
            raise archived
        tags: dict[str, str] = {}
        if with_tags or head.get("TagCount", 0) > 0:
            tags = self._read_tags(client, target, "open")
        return ObjectInfo(path=path, size=head["ContentLength"], etag=strip_etag(head["ETag"]),
                          modified=utc_seconds(head["LastModified"]), storage_class=storage_class, tags=tags,
                          crc32c=full_object_crc32c(head.get("ChecksumCRC32C"), head.get("ChecksumType")))

    def read_range(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        count = min(len(into), info.size - start)
        if count <= 0:
            return 0
        target = parse_path(info.path)
        client = self._client(target, "read")
        view = into.cast("B")[:count] if into.format != "B" else into[:count]
        done, failures = 0, 0
        while done < count:
            try:
                done += self._get_into(client, target, info.etag, start + done, view[done:])
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
            if s3errors.is_not_found(exc):
                raise ObjectChanged(f"{target.path}: object was deleted during the transfer",
                                    operation="read") from exc
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

    def get_tags(self, path: str) -> dict[str, str]:
        target = parse_path(path)
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{path}: Is a directory", operation="tags")
        return self._read_tags(self._client(target, "tags"), target, "tags")

    def set_tags(self, path: str, tags: Mapping[str, str]) -> bool:
        target = parse_path(path)
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{path}: Is a directory", operation="tags")
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

    # -- writing ---------------------------------------------------------------------------------------
    def check_writable(self, path: str) -> None:
        self._check_writable(parse_path(path), "open")

    def _check_writable(self, target: S3Path, operation: str) -> None:
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)
        check_key(target)
        client = self._client(target, operation)
        if self._keys_under(client, target, target.dir_prefix, operation):
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)

    def put_object(self, path: str, data: memoryview, *, crc32c: int | None = None,
                   tags: Mapping[str, str] | None = None) -> ObjectInfo:
        target = parse_path(path)
        check_key(target)
        return self._writer.put_object(self._client(target, "write"), target, data, crc32c=crc32c, tags=tags)

    def create_upload(self, path: str) -> str:
        target = parse_path(path)
        check_key(target)
        return self._writer.create_upload(self._client(target, "write"), target)

    def upload_part(self, path: str, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        target = parse_path(path)
        return self._writer.upload_part(self._client(target, "write"), target, upload_id, number, data,
                                        crc32c=crc32c)

    def complete_upload(self, path: str, upload_id: str, parts: list[tuple[int, str]]) -> ObjectInfo:
        target = parse_path(path)
        self._writer.complete_upload(self._client(target, "close"), target, upload_id, parts)
        return self.head_object(path)

    def abort_upload(self, path: str, upload_id: str) -> None:
        target = parse_path(path)
        self._writer.abort_upload(self._client(target, "abort"), target, upload_id)

    def list_uploads(self, path: str) -> list[UploadInfo]:
        target = parse_path(path)
        return self._writer.list_uploads(self._client(target, "list"), target)

    def list_parts(self, path: str, upload_id: str) -> list[PartInfo]:
        target = parse_path(path)
        return self._writer.list_parts(self._client(target, "list"), target, upload_id)
