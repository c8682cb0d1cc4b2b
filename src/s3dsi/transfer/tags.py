"""The object tags an upload leaves behind so CKSM can answer without reading the object back.

Keys: ``s3dsi-<alg>`` (lower-case algorithm, lower-case hex digest), ``s3dsi-size`` and, when the
object's ETag is known when tagging (multipart uploads tag after CompleteMultipartUpload),
``s3dsi-etag`` without quotes (S3 tag values cannot hold ``"``). A single PutObject carries its
tags in the same request, so they can only describe that very object and need no ETag.
"""

from __future__ import annotations

from collections.abc import Mapping

from s3dsi.storage.backend import ObjectInfo

TAG_PREFIX = "s3dsi-"
SIZE_TAG = "s3dsi-size"
ETAG_TAG = "s3dsi-etag"


def digest_tag(algorithm: str) -> str:
    return f"{TAG_PREFIX}{algorithm.lower()}"


def digest_tags(digests: Mapping[str, str], size: int, etag: str | None) -> dict[str, str]:
    tags = {digest_tag(alg): value for alg, value in digests.items()}
    tags[SIZE_TAG] = str(size)
    if etag:
        tags[ETAG_TAG] = etag.strip('"')
    return tags


def digest_from_tags(tags: Mapping[str, str], algorithm: str, info: ObjectInfo) -> str | None:
    """The stored digest if the tags provably describe the object ``info`` describes, else None."""
    value = tags.get(digest_tag(algorithm))
    if not value or tags.get(SIZE_TAG) != str(info.size):
        return None
    etag = tags.get(ETAG_TAG)
    if etag is not None and etag != info.etag.strip('"'):
        return None
    return value.lower()
