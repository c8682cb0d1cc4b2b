"""What S3 requests carry for one user's policy, and which optional S3 features a store turned out to lack.

Per user (``RequestOptions``, from the user's ``S3Policy``): ``RequestPayer=requester`` on every request
to a Requester Pays bucket the policy names; on every new object the storage class, server-side
encryption (``AES256`` or ``aws:kms`` with its key) and a canned ACL.

Per store (``StoreFeatures``, shared by every user of the process): newer S3 features that older or
S3-compatible stores (MinIO-style, Ceph) refuse or ignore: full-object checksums (``ChecksumType=
FULL_OBJECT``), checksums in HeadObject (``ChecksumMode``), conditional writes (``If-None-Match`` /
``If-Match`` on PutObject and CompleteMultipartUpload), object ACLs on a bucket. Each is assumed
present until the store refuses it; the first refusal switches it off for the process with one log
line, and the request is sent again without it (conditional writes then become a HeadObject check
just before the commit, which narrows the race but cannot close it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from s3dsi.config.s3policy import S3Policy
from s3dsi.observability.logging import get_logger
from s3dsi.storage import s3errors

log = get_logger("s3dsi.storage")

# What a store answers to a header it does not implement (or a parameter combination it rejects).
_REJECTED = frozenset({"NotImplemented", "501", "InvalidArgument", "InvalidRequest", "400",
                       "UnsupportedArgument", "XNotImplemented", "MalformedXML", "InvalidHeader"})
# What a bucket answers to an ACL it does not accept from this writer.
_ACL_REFUSED = frozenset({"AccessControlListNotSupported", "AccessDenied", "403", "NotImplemented", "501",
                          "InvalidArgument", "400", "UnsupportedArgument"})

FULL_OBJECT_CHECKSUMS = "full-object checksums (ChecksumType=FULL_OBJECT)"
CHECKSUM_MODE = "stored checksums in HeadObject (ChecksumMode=ENABLED)"
CONDITIONAL_WRITES = "conditional writes (If-None-Match/If-Match on PutObject and CompleteMultipartUpload)"


def rejects_feature(exc: BaseException | None) -> bool:
    """Whether a failure looks like the store refusing a header or parameter it does not implement."""
    while exc is not None and s3errors.error_code(exc) is None:
        exc = exc.__cause__
    return exc is not None and s3errors.error_code(exc) in _REJECTED


def refuses_acl(exc: BaseException | None) -> bool:
    while exc is not None and s3errors.error_code(exc) is None:
        exc = exc.__cause__
    return exc is not None and s3errors.error_code(exc) in _ACL_REFUSED


class StoreFeatures:
    """Optional S3 features of one store, learnt as requests are refused; thread-safe."""

    def __init__(self, *, full_object_checksums: bool = True, conditional_writes: bool = True) -> None:
        self._lock = threading.Lock()
        self._off: dict[str, str] = {}  # feature -> why
        self._acl_refused: set[str] = set()
        if not full_object_checksums:
            self._off[FULL_OBJECT_CHECKSUMS] = "full_object_checksums no"
        if not conditional_writes:
            self._off[CONDITIONAL_WRITES] = "conditional_writes no"

    def has(self, feature: str) -> bool:
        with self._lock:
            return feature not in self._off

    def lacks(self, feature: str, why: str) -> None:
        """The store refused ``feature``: stop using it, and say so once."""
        with self._lock:
            if feature in self._off:
                return
            self._off[feature] = why
        log.warning("the object store does not support a feature; working without it", feature=feature,
                    reason=why)

    def acl_accepted(self, bucket: str) -> bool:
        with self._lock:
            return bucket not in self._acl_refused

    def refuse_acl(self, bucket: str, why: str) -> None:
        with self._lock:
            if bucket in self._acl_refused:
                return
            self._acl_refused.add(bucket)
        log.warning("bucket does not accept object ACLs from this writer; writing without the default ACL",
                    bucket=bucket, reason=why)


@dataclass(frozen=True)
class RequestOptions:
    """The request parameters one user's policy adds (botocore keyword arguments)."""

    policy: S3Policy

    def payer(self, bucket: str) -> dict[str, Any]:
        return {"RequestPayer": "requester"} if self.policy.pays_for(bucket) else {}

    def new_object(self, bucket: str, *, acl: str | None, marker: bool = False) -> dict[str, Any]:
        """Parameters of a request that creates an object (directory markers keep the default class)."""
        extra = self.payer(bucket)
        if self.policy.storage_class and not marker:
            extra["StorageClass"] = self.policy.storage_class
        if self.policy.sse:
            extra["ServerSideEncryption"] = self.policy.sse
            if self.policy.sse_kms_key_id:
                extra["SSEKMSKeyId"] = self.policy.sse_kms_key_id
        if acl:
            extra["ACL"] = acl
        return extra
