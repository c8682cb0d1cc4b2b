"""Server-side copy of one S3 object: CopyObject up to the threshold, UploadPartCopy above it.

CopyObject keeps user metadata and tags by itself; a multipart copy does not, so they are read from
the source and given to CreateMultipartUpload. The abort of the multipart upload is armed as soon as
the upload id exists, so no failure path can leave parts behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from s3dsi.storage.paths import quote_etag

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

MAX_PARTS = 10_000
MIN_PART = 5 * 1024 * 1024

# Headers of the source object that describe its content; CopyObject keeps them, multipart copy must
# pass them on explicitly.
_CONTENT_FIELDS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage",
                   "CacheControl", "Expires", "WebsiteRedirectLocation")


@dataclass(frozen=True)
class CopySource:
    bucket: str
    key: str
    etag: str
    size: int
    storage_class: str | None

    @property
    def ref(self) -> dict[str, str]:
        return {"Bucket": self.bucket, "Key": self.key}


def copy_part_size(size: int, preferred: int) -> int:
    """``preferred`` unless that needs more than 10,000 parts; never below S3's 5 MiB minimum."""
    part = max(preferred, MIN_PART)
    while -(-size // part) > MAX_PARTS:
        part *= 2
    return part


def _storage_class(source: CopySource) -> dict[str, Any]:
    # CopyObject writes STANDARD unless told otherwise; a rename keeps the class.
    if source.storage_class and source.storage_class != "STANDARD":
        return {"StorageClass": source.storage_class}
    return {}


def copy_object(client: S3Client, source: CopySource, bucket: str, key: str,
                extra: Mapping[str, Any] | None = None) -> None:
    """``extra``: the writer's request options (RequestPayer, encryption, ACL; see s3options)."""
    client.copy_object(Bucket=bucket, Key=key, CopySource=source.ref,  # type: ignore[arg-type]
                       CopySourceIfMatch=quote_etag(source.etag), MetadataDirective="COPY",
                       TaggingDirective="COPY", **{**(extra or {}), **_storage_class(source)})


def multipart_copy(client: S3Client, source: CopySource, head: HeadObjectOutputTypeDef,
                   tags: Mapping[str, str], *, bucket: str, key: str, part_size: int,
                   workers: int, options: Mapping[str, Any] | None = None,
                   payer: Mapping[str, Any] | None = None) -> None:
    """``options``: the writer's new-object options; ``payer``: RequestPayer for the part requests."""
    part = copy_part_size(source.size, part_size)
    payer = dict(payer or {})
    extra: dict[str, Any] = {name: head[name] for name in _CONTENT_FIELDS if head.get(name)}  # type: ignore[literal-required]
    if tags:
        extra["Tagging"] = urlencode(dict(tags))
    extra.update(options or {})
    extra.update(_storage_class(source))
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=head.get("Metadata", {}),
                                               **extra)["UploadId"]
    with contextlib.ExitStack() as on_failure:
        on_failure.callback(_abort_quietly, client, bucket, key, upload_id, payer)

        def copy_one(number: int) -> dict[str, Any]:
            first = (number - 1) * part
            last = min(first + part, source.size) - 1
            result = client.upload_part_copy(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                CopySource=source.ref, CopySourceRange=f"bytes={first}-{last}",  # type: ignore[arg-type]
                CopySourceIfMatch=quote_etag(source.etag), **payer)
            return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

        count = max(1, -(-source.size // part))
        with ThreadPoolExecutor(max_workers=max(1, min(workers, count)),
                                thread_name_prefix="s3-copy") as pool:
            parts = list(pool.map(copy_one, range(1, count + 1)))
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts}, **payer)  # type: ignore[typeddict-item]
        on_failure.pop_all()


def _abort_quietly(client: S3Client, bucket: str, key: str, upload_id: str, payer: Mapping[str, Any]) -> None:
    with contextlib.suppress(Exception):  # the original failure is what the caller must see
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, **payer)
