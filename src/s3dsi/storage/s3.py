"""``S3Store``: the object-store seam on Amazon S3 and S3-compatible stores; ``S3Backend``: the namespace
layer on it; ``S3BackendFactory`` makes one per logged-in user from the process-wide client pool and
bucket-region cache.

Everything S3-specific is here or in the ``s3*`` modules beside it: buckets of other accounts are
reached by path, each bucket's region learnt once per process from HeadBucket (``x-amz-bucket-region``,
also sent with 301/403) and served by a client of that region; botocore failures become ``DsiError``s in
``s3errors``; ranged GETs read straight into the caller's buffer and are retried when the body breaks
off; renames above ``multipart_copy_threshold`` copy in parts. Directories are the namespace layer's
(``s3dsi.storage.namespace``).

Each ``S3Store`` serves one user with that user's credentials (static keys, or refreshing ones from
``s3credentials``) and request options (``s3options``: Requester Pays, storage class, encryption, ACL).
New objects in a bucket the credentials do not own (not in their ListBuckets, asked once per store on
the first write) get ``bucket-owner-full-control`` unless the policy names an ACL; a bucket that
refuses it is written without. Commits carry the caller's ``WriteCondition`` as conditional headers;
on a store without conditional writes the condition is checked with HeadObject just before the commit.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import botocore.session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from s3dsi.config.s3policy import BUCKET_OWNER_FULL_CONTROL, S3Policy
from s3dsi.protocol.errors import DsiError, InvalidPath, PathNotFound
from s3dsi.storage import s3errors
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo, WriteCondition
from s3dsi.storage.namespace import Namespace, object_info
from s3dsi.storage.paths import S3Path, quote_etag, strip_etag
from s3dsi.storage.s3clients import BucketRegions, ClientCredentials, ClientPool, S3Config, S3Credentials
from s3dsi.storage.s3copy import CopySource, copy_object, multipart_copy
from s3dsi.storage.s3credentials import CredentialResolver
from s3dsi.storage.s3io import read_body_into, stored_checksums, utc_seconds
from s3dsi.storage.s3options import (
    CHECKSUM_MODE,
    CONDITIONAL_WRITES,
    RequestOptions,
    StoreFeatures,
    refuses_acl,
    rejects_feature,
)
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
T = TypeVar("T")


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


def _total_size(content_range: str | None, length: int) -> int:
    """The object's size from a 206's ``Content-Range: bytes a-b/TOTAL`` (a 200 gives it whole)."""
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return length


class S3BackendFactory:
    """Shared by the whole process: one client pool and one bucket-region cache for every user."""

    def __init__(self, config: S3Config, *, session: botocore.session.Session | None = None) -> None:
        self.config = config
        self.clients = ClientPool(config, session)
        self.regions = BucketRegions()
        self.features = StoreFeatures(full_object_checksums=config.full_object_checksums,
                                      conditional_writes=config.conditional_writes)
        self.credentials = CredentialResolver(config)

    def for_credentials(self, access_key_id: str, secret_access_key: str,
                        session_token: str | None = None) -> S3Backend:
        return S3Backend(self, S3Credentials(access_key_id, secret_access_key, session_token))

    def for_user(self, credentials: ClientCredentials, policy: S3Policy | None = None) -> S3Backend:
        """A user's back end: ``credentials`` (static or refreshing) and the request options of ``policy``."""
        return S3Backend(self, credentials, policy)


class S3Backend(Namespace):
    """One user's view of S3: the namespace layer on that user's ``S3Store``."""

    store: S3Store

    def __init__(self, factory: S3BackendFactory, credentials: ClientCredentials,
                 policy: S3Policy | None = None) -> None:
        super().__init__(S3Store(factory, credentials, policy))

    def __repr__(self) -> str:
        return f"S3Backend(access_key_id={self.store.credentials.access_key_id!r})"


class S3Store:
    """One user's S3 requests (thread-safe: botocore clients are, and our own state is locked)."""

    def __init__(self, factory: S3BackendFactory, credentials: ClientCredentials,
                 policy: S3Policy | None = None) -> None:
        self._factory = factory
        self._config = factory.config
        self._features = factory.features
        self.credentials = credentials
        self.policy = policy if policy is not None else S3Policy(storage_class=self._config.storage_class)
        self._options = RequestOptions(self.policy)
        self._writer = S3Writer(self._config, self._fail, self._features)
        self._owned: frozenset[str] | None = None  # buckets of the credentials' account (ListBuckets)
        self._owned_known = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(access_key_id={self.credentials.access_key_id!r})"

    # -- plumbing --------------------------------------------------------------------------------------
    def _fail(self, exc: BaseException, target: S3Path | str, operation: str) -> DsiError:
        path = target.path if isinstance(target, S3Path) else target
        if isinstance(target, S3Path) and s3errors.is_redirect(exc):
            self._factory.regions.forget(target.bucket)
        return s3errors.translate(exc, path=path, operation=operation, secrets=self.credentials.secrets)

    def _payer(self, target: S3Path) -> dict[str, Any]:
        return self._options.payer(target.bucket)

    # -- what new objects carry ------------------------------------------------------------------------
    def _owned_buckets(self) -> frozenset[str] | None:
        """The credentials' own buckets, listed once per store; None when listing is not allowed."""
        with self._lock:
            if self._owned_known:
                return self._owned
        names: set[str] | None = set()
        token: str | None = None
        try:
            while True:
                listing = self.list_buckets(token)
                names.update(name for name, _ in listing.names)  # type: ignore[union-attr]
                token = listing.next_token
                if not token:
                    break
        except DsiError:
            names = None  # unknown: behave as before (no ACL of our own)
        with self._lock:
            self._owned, self._owned_known = (frozenset(names) if names is not None else None), True
            return self._owned

    def _acl(self, bucket: str) -> tuple[str | None, bool]:
        """(canned ACL for a new object in ``bucket``, whether it is only our default)."""
        if self.policy.object_acl:
            return self.policy.object_acl, False
        if not self._features.acl_accepted(bucket):
            return None, True
        owned = self._owned_buckets()
        if owned is None or bucket in owned:
            return None, True
        return BUCKET_OWNER_FULL_CONTROL, True

    def _creating(self, target: S3Path, call: Callable[[dict[str, Any]], T], *, marker: bool = False) -> T:
        """Run a request that creates an object with the user's options; a bucket that refuses our
        default ACL is written without it from then on (an ACL the policy names is never dropped)."""
        acl, default = self._acl(target.bucket)
        try:
            return call(self._options.new_object(target.bucket, acl=acl, marker=marker))
        except DsiError as exc:
            if acl is None or not default or not refuses_acl(exc):
                raise
            self._features.refuse_acl(target.bucket, s3errors.error_code(_root_cause(exc)) or exc.text)
            return call(self._options.new_object(target.bucket, acl=None, marker=marker))

    # -- conditional commits ---------------------------------------------------------------------------
    def _conditional(self, client: S3Client, target: S3Path, condition: WriteCondition | None,
                     commit: Callable[[WriteCondition | None], T]) -> T:
        """``commit`` with the condition as headers; on a store without conditional writes, a HeadObject
        check right before a commit sent without them."""
        if condition is None:
            return commit(None)
        if self._features.has(CONDITIONAL_WRITES):
            try:
                return commit(condition)
            except DsiError as exc:
                if not rejects_feature(exc):
                    raise
                self._features.lacks(CONDITIONAL_WRITES, s3errors.error_code(_root_cause(exc)) or exc.text)
        self._check_condition(client, target, condition)
        return commit(None)

    def _check_condition(self, client: S3Client, target: S3Path, condition: WriteCondition) -> None:
        head = self._head(client, target, "close")
        if condition.must_not_exist and head is not None:
            raise s3errors.from_code("PreconditionFailed", path=target.path, operation="close")
        if condition.etag is not None:
            if head is None:
                raise s3errors.from_code("NoSuchKey", path=target.path, operation="close")
            if strip_etag(head["ETag"]) != strip_etag(condition.etag):
                raise s3errors.from_code("PreconditionFailed", path=target.path, operation="close")

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

    def _head(self, client: S3Client, target: S3Path, operation: str, *,
              with_checksums: bool = False) -> HeadObjectOutputTypeDef | None:
        """HeadObject, or None when there is no object of that name. ``with_checksums``: with S3's
        stored checksums (a store that refuses ChecksumMode is asked without it from then on)."""
        mode: dict[str, Any] = {}
        if with_checksums and self._features.has(CHECKSUM_MODE):
            mode = {"ChecksumMode": "ENABLED"}
        try:
            try:
                return client.head_object(Bucket=target.bucket, Key=target.key, **mode, **self._payer(target))
            except ClientError as exc:
                if not mode or not rejects_feature(exc):
                    raise
                self._features.lacks(CHECKSUM_MODE, s3errors.error_code(exc) or "refused")
                return client.head_object(Bucket=target.bucket, Key=target.key, **self._payer(target))
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
                          crc32c=full_object_crc32c(head.get("ChecksumCRC32C"), head.get("ChecksumType")),
                          checksums=stored_checksums(cast("dict[str, Any]", head)))

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
    def head(self, target: S3Path, operation: str, *, with_checksums: bool = False) -> ObjectHead | None:
        # S3's own checksums come with every HeadObject when uploads carry them (CKSM, tag proofs)
        head = self._head(self._client(target, operation), target, operation,
                          with_checksums=with_checksums or self._config.crc32c_checksums)
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
            page = client.list_objects_v2(Bucket=target.bucket, Prefix=prefix, **extra, **self._payer(target))
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc
        keys = [ListedKey(obj["Key"], obj["Size"], utc_seconds(obj["LastModified"]),
                          strip_etag(obj.get("ETag", "")), obj.get("StorageClass", "STANDARD"))
                for obj in page.get("Contents", [])]
        prefixes = [common["Prefix"] for common in page.get("CommonPrefixes", [])]
        next_token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        return KeyPage(keys, prefixes, next_token or None)

    def put(self, target: S3Path, data: memoryview, *, crc32c: int | None = None,
            tags: Mapping[str, str] | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        client = self._client(target, "write")

        def commit(cond: WriteCondition | None) -> ObjectInfo:
            return self._creating(target, lambda extra: self._writer.put_object(
                client, target, data, crc32c=crc32c, tags=tags, extra=extra, condition=cond))

        return self._conditional(client, target, condition, commit)

    def put_marker(self, target: S3Path, key: str, operation: str) -> None:
        client = self._client(target, operation)

        def put(extra: dict[str, Any]) -> None:
            try:
                client.put_object(Bucket=target.bucket, Key=key, Body=b"", **extra)
            except _S3_FAILURES as exc:
                raise self._fail(exc, target, operation) from exc

        self._creating(target, put, marker=True)

    def delete(self, target: S3Path, key: str, operation: str) -> None:
        client = self._client(target, operation)
        try:
            client.delete_object(Bucket=target.bucket, Key=key, **self._payer(target))
        except _S3_FAILURES as exc:
            raise self._fail(exc, target, operation) from exc

    def put_small(self, target: S3Path, key: str, body: bytes, operation: str) -> None:
        client = self._client(target, operation)

        def put(extra: dict[str, Any]) -> None:  # the user's encryption, ACL and payer, not their class
            try:
                client.put_object(Bucket=target.bucket, Key=key, Body=body, ContentType="application/json",
                                  **extra)
            except _S3_FAILURES as exc:
                raise self._fail(exc, target, operation) from exc

        self._creating(target, put, marker=True)

    def get_small(self, target: S3Path, key: str, operation: str,
                  limit: int) -> tuple[bytes, datetime] | None:
        client = self._client(target, operation)
        try:
            response = client.get_object(Bucket=target.bucket, Key=key, **self._payer(target))
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
        payer = {**self._payer(source), **self._payer(dest)}

        def run(extra: dict[str, Any]) -> None:
            try:
                if copy.size <= self._config.multipart_copy_threshold:
                    copy_object(dst_client, copy, dest.bucket, dest.key, {**extra, **payer})
                    return
                # A multipart copy must repeat the source's content headers, metadata and tags itself.
                src_client = self._client(source, "rename")
                tags = self._read_tags(src_client, source, "rename")
                full = self._head(src_client, source, "rename")
                if full is None:
                    raise s3errors.from_code("NoSuchKey", path=source.path, operation="rename")
                multipart_copy(dst_client, copy, full, tags, bucket=dest.bucket, key=dest.key,
                               part_size=self._config.copy_part_size, workers=self._config.copy_workers,
                               options=extra, payer=payer)
            except _S3_FAILURES as exc:
                raise self._fail(exc, dest, "rename") from exc

        # the copy keeps the source's storage class (copy_object), not the policy's
        self._creating(dest, lambda extra: run({k: v for k, v in extra.items() if k != "StorageClass"}))

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

    def read_first(self, target: S3Path, start: int, into: memoryview) -> tuple[ObjectHead, int] | None:
        client = self._client(target, "open")
        try:
            response = client.get_object(Bucket=target.bucket, Key=target.key,
                                         Range=f"bytes={start}-{start + len(into) - 1}",
                                         **self._payer(target))
        except _S3_FAILURES as exc:
            if s3errors.is_not_found(exc):
                return None
            if s3errors.error_code(exc) == "InvalidRange":  # an empty object, or a start past its end
                found = self._head(client, target, "open")
                return (self._object_head(found), 0) if found is not None else None
            raise self._fail(exc, target, "open") from exc
        head = ObjectHead(size=_total_size(response.get("ContentRange"), response["ContentLength"]),
                          etag=strip_etag(response["ETag"]), modified=utc_seconds(response["LastModified"]),
                          storage_class=response.get("StorageClass", "STANDARD"),
                          tag_count=response.get("TagCount", 0), restore=response.get("Restore"))
        body = response["Body"]
        try:
            got = read_body_into(body, into)
        except _STREAM_FAILURES:
            got = 0  # the body broke off: read the range again, pinned to the ETag now known
        finally:
            body.close()
        wanted = min(len(into), max(0, head.size - start))
        if got < wanted:
            got += self.read_into(target, head.etag, start + got, into[got:wanted])
        return head, got

    def _get_into(self, client: S3Client, target: S3Path, etag: str, start: int, view: memoryview) -> int:
        try:
            response = client.get_object(Bucket=target.bucket, Key=target.key, IfMatch=quote_etag(etag),
                                         Range=f"bytes={start}-{start + len(view) - 1}",
                                         **self._payer(target))
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
            response = client.get_object_tagging(Bucket=target.bucket, Key=target.key, **self._payer(target))
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
                                      Tagging={"TagSet": tag_set}, **self._payer(target))  # type: ignore[typeddict-item]
        except _S3_FAILURES as exc:
            if s3errors.error_code(exc) in _TAGS_UNAVAILABLE:
                return False
            raise self._fail(exc, target, "tags") from exc
        return True

    # -- multipart uploads -----------------------------------------------------------------------------
    def create_upload(self, target: S3Path) -> str:
        client = self._client(target, "write")
        return self._creating(target, lambda extra: self._writer.create_upload(client, target, extra))

    def upload_part(self, target: S3Path, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        return self._writer.upload_part(self._client(target, "write"), target, upload_id, number, data,
                                        crc32c=crc32c, extra=self._payer(target))

    def complete_upload(self, target: S3Path, upload_id: str, parts: list[tuple[int, str]], *,
                        crc32c: int | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        client = self._client(target, "close")
        self._conditional(client, target, condition, lambda cond: self._writer.complete_upload(
            client, target, upload_id, parts, crc32c=crc32c, extra=self._payer(target), condition=cond))
        # What was stored, as S3 reports it (size, multipart ETag, time); no archive check: an upload in
        # an archive storage class is complete, not unreadable.
        head = self._head(client, target, "open")
        if head is None:
            raise s3errors.from_code("NoSuchKey", path=target.path, operation="open")  # deleted meanwhile
        info = self._object_head(head)
        tags = self._read_tags(client, target, "open") if info.tag_count else {}
        return object_info(target.path, info, tags)

    def abort_upload(self, target: S3Path, upload_id: str) -> None:
        self._writer.abort_upload(self._client(target, "abort"), target, upload_id, self._payer(target))

    def list_uploads(self, target: S3Path) -> list[UploadInfo]:
        return self._writer.list_uploads(self._client(target, "list"), target, self._payer(target))

    def list_parts(self, target: S3Path, upload_id: str) -> list[PartInfo]:
        return self._writer.list_parts(self._client(target, "list"), target, upload_id, self._payer(target))


def _root_cause(exc: BaseException) -> BaseException:
    """The botocore failure behind a translated DsiError (or the error itself)."""
    while exc.__cause__ is not None and s3errors.error_code(exc) is None:
        exc = exc.__cause__
    return exc
