"""The checks of ``s3dsi probe``: every S3 operation the connector needs, tried with a user's credentials
and request options, each test artifact cleaned up, and for each failure the IAM action it needs.

With ``ProbeOptions`` the checks are the user's: test objects under the virtual root's prefix, the
policy's Requester Pays, encryption and storage class on every request that takes them, the ACL the
daemon would send (a PutObject refused only with it means ``s3:PutObjectAcl`` is missing), and for an
append-only destination a conditional PutObject (``If-None-Match: *``) whose repetition the store must
refuse (if it does not, the store ignores conditional writes: ``conditional_writes = no``). The daemon's
restart records (``.s3dsi/`` at the top of the bucket) are written, read and removed too, and whether the
bucket has a lifecycle rule that aborts incomplete multipart uploads is reported (never a failure).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from s3dsi.cli.lifecycle import LifecycleFinding, check_lifecycle
from s3dsi.cli.policy import ACCESS_LEVELS
from s3dsi.storage.records import RECORD_PREFIX

Result = Literal["allowed", "denied", "failed", "skipped"]
BucketState = Literal["missing", "unreachable"]
_NO_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})
_SHOWN: dict[str, str] = {"allowed": "allowed", "denied": "DENIED", "failed": "FAILED", "skipped": "skipped"}
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccessDeniedException"})
_BAD_KEYS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                       "InvalidClientTokenId"})
PROBE_BODY = b"s3dsi probe: safe to delete\n"


@dataclass(frozen=True)
class Check:
    operation: str  # the S3 API call
    action: str  # the IAM action it needs
    purpose: str  # what the connector uses it for
    level: str  # the smallest `s3dsi policy --access` level that grants it


CHECKS: dict[str, Check] = {c.operation: c for c in (
    Check("ListBuckets", "s3:ListAllMyBuckets", "listing / (your buckets)", "browse"),
    Check("GetBucketLocation", "s3:GetBucketLocation", "finding a bucket's region", "browse"),
    Check("HeadBucket", "s3:ListBucket", "checking a bucket, learning its region", "browse"),
    Check("ListObjectsV2", "s3:ListBucket", "listings, stat, directories", "browse"),
    Check("ListMultipartUploads", "s3:ListBucketMultipartUploads", "finding unfinished uploads", "browse"),
    Check("PutObject", "s3:PutObject", "uploads (small files)", "upload"),
    Check("PutObjectTagging", "s3:PutObjectTagging", "storing checksums with uploads", "upload"),
    Check("GetObjectTagging", "s3:GetObjectTagging", "reading stored checksums (CKSM)", "download"),
    Check("GetObject", "s3:GetObject", "downloads", "download"),
    Check("CreateMultipartUpload", "s3:PutObject", "uploads (large files)", "upload"),
    Check("ListParts", "s3:ListMultipartUploadParts", "resuming interrupted uploads", "upload"),
    Check("AbortMultipartUpload", "s3:AbortMultipartUpload", "cleaning up failed uploads", "upload"),
    Check("DeleteObject", "s3:DeleteObject", "DELE, RNTO (rename), RMD", "delete"),
    Check("PutObjectAcl", "s3:PutObjectAcl", "the ACL of new objects (bucket-owner-full-control abroad)",
          "upload"),
    Check("ConditionalPut", "(a store feature)", "append-only commits (If-None-Match: *)", "upload"),
    Check("PutObject .s3dsi/", "s3:PutObject", "restart records (resuming on any host, the janitor)",
          "upload"),
    Check("GetObject .s3dsi/", "s3:GetObject", "reading restart records", "upload"),
    Check("DeleteObject .s3dsi/", "s3:DeleteObject", "removing a finished upload's restart record", "upload"),
)}


@dataclass(frozen=True)
class ProbeOptions:
    """What a user's policy changes in the checks (nothing, by default)."""

    prefix: str = ""  # test keys go under it (a virtual root's prefix, with its trailing /)
    payer: Mapping[str, Any] = field(default_factory=dict)  # RequestPayer, on every object request
    new_object: Mapping[str, Any] = field(default_factory=dict)  # storage class, encryption
    acl: str | None = None  # the canned ACL the daemon would send for new objects in the bucket
    append_only: bool = False


@dataclass(frozen=True)
class Outcome:
    check: Check
    result: Result
    detail: str = ""


@dataclass
class ProbeReport:
    outcomes: list[Outcome] = field(default_factory=list)
    bucket: str | None = None
    region: str | None = None
    key: str | None = None
    leftovers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bucket_unusable: BucketState | None = None  # the bucket checks were not run: why
    bucket_detail: str = ""
    lifecycle: LifecycleFinding | None = None  # informational: never makes the probe fail

    @property
    def missing_actions(self) -> list[str]:
        return list(dict.fromkeys(o.check.action for o in self.outcomes if o.result == "denied"))

    @property
    def fix_level(self) -> str | None:
        levels = [o.check.level for o in self.outcomes if o.result == "denied"]
        return max(levels, key=ACCESS_LEVELS.index) if levels else None

    @property
    def ok(self) -> bool:
        return (all(o.result == "allowed" for o in self.outcomes) and not self.leftovers
                and self.bucket_unusable is None)


def _classify(exc: BaseException) -> tuple[Result, str]:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        if code in _DENIED:
            return "denied", code
        if code in _BAD_KEYS:
            return "failed", f"{code}: the store rejects these credentials"
        return "failed", code
    return "failed", type(exc).__name__


class Prober:
    """Runs the checks; ``client_for(region)`` gives a botocore S3 client with the user's credentials."""

    def __init__(self, client_for: Callable[[str], Any], *, home_region: str,
                 options: ProbeOptions | None = None) -> None:
        self.client_for = client_for
        self.home_region = home_region
        self.options = options or ProbeOptions()
        self.report = ProbeReport()

    def _try(self, operation: str, call: Callable[[], Any]) -> Any:
        try:
            response = call()
        except (ClientError, BotoCoreError) as exc:
            result, detail = _classify(exc)
            self.report.outcomes.append(Outcome(CHECKS[operation], result, detail))
            return exc
        self.report.outcomes.append(Outcome(CHECKS[operation], "allowed"))
        return response

    def _skip(self, operation: str, why: str) -> None:
        self.report.outcomes.append(Outcome(CHECKS[operation], "skipped", why))

    def run(self, bucket: str | None) -> ProbeReport:
        home = self.client_for(self.home_region)
        listing = self._try("ListBuckets", home.list_buckets)
        if bucket is None and isinstance(listing, dict):
            names = [b["Name"] for b in listing.get("Buckets", [])]
            bucket = names[0] if names else None
            if bucket is not None:
                self.report.notes.append(f"no --bucket given: probing {bucket}, the first bucket listed")
        if bucket is None:
            self.report.notes.append("no bucket to probe: give --bucket BUCKET")
            return self.report
        self.report.bucket = bucket
        region = self._region(home, bucket)
        self.report.region = region
        if not self._bucket_usable():
            return self.report  # every other check would fail the same way
        self._bucket_checks(self.client_for(region), bucket)
        return self.report

    def _bucket_usable(self) -> bool:
        """False (and why, in the report) when the bucket does not exist or cannot be reached at all."""
        found = [o for o in self.report.outcomes if o.check.operation in ("GetBucketLocation", "HeadBucket")]
        missing = next((o for o in found if o.result == "failed" and o.detail in _NO_BUCKET), None)
        if missing is not None:
            self.report.bucket_unusable, self.report.bucket_detail = "missing", missing.detail
        elif found and all(o.result == "failed" for o in found):
            self.report.bucket_unusable = "unreachable"
            self.report.bucket_detail = "; ".join(dict.fromkeys(o.detail for o in found))
        return self.report.bucket_unusable is None

    def _region(self, home: Any, bucket: str) -> str:
        location = self._try("GetBucketLocation", lambda: home.get_bucket_location(Bucket=bucket))
        region = None
        if isinstance(location, dict):
            constraint = location.get("LocationConstraint")
            region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)
        head = self._try("HeadBucket", lambda: home.head_bucket(Bucket=bucket))
        response = head.response if isinstance(head, ClientError) else head
        if isinstance(response, dict):
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            region = region or headers.get("x-amz-bucket-region")
        return str(region or self.home_region)

    def _bucket_checks(self, client: Any, bucket: str) -> None:
        opts = self.options
        key = f"{opts.prefix}.s3dsi-probe-{uuid.uuid4().hex[:16]}"
        self.report.key = key
        payer = dict(opts.payer)
        under = {"Prefix": opts.prefix} if opts.prefix else {}
        listed = self._try("ListObjectsV2", lambda: client.list_objects_v2(Bucket=bucket, MaxKeys=10,
                                                                          **under, **payer))
        sample = None
        if isinstance(listed, dict):
            sample = next((o["Key"] for o in listed.get("Contents", []) if not o["Key"].endswith("/")), None)
        self._try("ListMultipartUploads", lambda: client.list_multipart_uploads(Bucket=bucket, MaxUploads=1,
                                                                                **payer))
        created = self._put(client, bucket, key)
        readable = key if created else sample
        try:
            if created and opts.append_only:
                self._conditional_put(client, bucket, key)
            if created:
                tags = {"TagSet": [{"Key": "s3dsi-probe", "Value": "1"}]}
                self._try("PutObjectTagging", lambda: client.put_object_tagging(
                    Bucket=bucket, Key=key, Tagging=tags, **payer))
            else:
                self._skip("PutObjectTagging", "no test object (PutObject failed)")
            if readable is not None:
                self._try("GetObjectTagging", lambda: client.get_object_tagging(Bucket=bucket, Key=readable,
                                                                                **payer))
                def first_byte() -> bytes:
                    response = client.get_object(Bucket=bucket, Key=readable, Range="bytes=0-0", **payer)
                    body: bytes = response["Body"].read()
                    return body

                self._try("GetObject", first_byte)
            else:
                for operation in ("GetObjectTagging", "GetObject"):
                    self._skip(operation, "no object to read (PutObject failed, bucket empty or unlisted)")
            self._multipart(client, bucket, key + ".multipart")
            self._records(client, bucket)
            self.report.lifecycle = check_lifecycle(client, bucket)
        finally:
            if created:
                deleted = self._try("DeleteObject", lambda: client.delete_object(Bucket=bucket, Key=key,
                                                                                 **payer))
                if not isinstance(deleted, dict):
                    self.report.leftovers.append(f"s3://{bucket}/{key} (test object: delete it with another "
                                                 "identity)")
            else:
                self._skip("DeleteObject", "no test object to delete (PutObject failed)")

    def _records(self, client: Any, bucket: str) -> None:
        """What a restart record takes: write, read and remove a small object under .s3dsi/ (whatever the
        policy's prefix: records live at the top of the bucket; a name the janitor does not take for a
        record), as the daemon sends it (encryption, ACL, payer; the bucket's default class)."""
        opts = self.options
        key = f"{RECORD_PREFIX}probe-{uuid.uuid4().hex[:16]}.json"
        extra = {**{k: v for k, v in opts.new_object.items() if k != "StorageClass"}, **opts.payer,
                 **({"ACL": opts.acl} if opts.acl else {})}
        put = self._try("PutObject .s3dsi/", lambda: client.put_object(Bucket=bucket, Key=key, Body=b"{}",
                                                                        **extra))
        if not isinstance(put, dict):
            for operation in ("GetObject .s3dsi/", "DeleteObject .s3dsi/"):
                self._skip(operation, "no test record (PutObject .s3dsi/ failed)")
            return

        def read() -> bytes:
            body: bytes = client.get_object(Bucket=bucket, Key=key, **opts.payer)["Body"].read()
            return body

        self._try("GetObject .s3dsi/", read)
        deleted = self._try("DeleteObject .s3dsi/", lambda: client.delete_object(Bucket=bucket, Key=key,
                                                                                  **opts.payer))
        if not isinstance(deleted, dict):
            self.report.leftovers.append(f"s3://{bucket}/{key} (test record: delete it with another "
                                         "identity)")

    def _put(self, client: Any, bucket: str, key: str) -> bool:
        """PutObject as the daemon sends it; with an ACL, a refusal that goes away without the ACL means
        only s3:PutObjectAcl is missing."""
        opts = self.options
        extra = {**opts.payer, **opts.new_object}
        if opts.append_only:
            extra["IfNoneMatch"] = "*"

        def put(acl: str | None) -> Any:
            return client.put_object(Bucket=bucket, Key=key, Body=PROBE_BODY,
                                     **({**extra, "ACL": acl} if acl else extra))

        if opts.acl is None:
            return isinstance(self._try("PutObject", lambda: put(None)), dict)
        try:
            put(opts.acl)
        except (ClientError, BotoCoreError) as exc:
            result, detail = _classify(exc)
            if result != "denied":
                self.report.outcomes.append(Outcome(CHECKS["PutObject"], result, detail))
                return False
            plain = self._try("PutObject", lambda: put(None))
            if isinstance(plain, dict):
                self.report.outcomes.append(Outcome(CHECKS["PutObjectAcl"], "denied", f"{detail} with "
                                                    f"ACL {opts.acl}, allowed without"))
                return True
            self._skip("PutObjectAcl", "PutObject is refused anyway")
            return False
        self.report.outcomes.append(Outcome(CHECKS["PutObject"], "allowed"))
        self.report.outcomes.append(Outcome(CHECKS["PutObjectAcl"], "allowed", f"ACL {opts.acl}"))
        return True

    def _conditional_put(self, client: Any, bucket: str, key: str) -> None:
        """A second conditional PutObject onto the test object must be refused."""
        try:
            client.put_object(Bucket=bucket, Key=key, Body=PROBE_BODY, IfNoneMatch="*",
                              **{**self.options.payer, **self.options.new_object})
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "PreconditionFailed" or status == 412:
                self.report.outcomes.append(Outcome(CHECKS["ConditionalPut"], "allowed",
                                                    "the store refuses to replace: conditional writes work"))
                return
            self.report.outcomes.append(Outcome(CHECKS["ConditionalPut"], "failed", f"{code or status}: set "
                                                "conditional_writes = no for this store"))
            return
        except BotoCoreError as exc:
            self.report.outcomes.append(Outcome(CHECKS["ConditionalPut"], "failed", type(exc).__name__))
            return
        why = ("the store replaced the object despite If-None-Match: *: it ignores conditional writes (set "
               "conditional_writes = no: a check before each commit instead)")
        self.report.outcomes.append(Outcome(CHECKS["ConditionalPut"], "failed", why))

    def _multipart(self, client: Any, bucket: str, key: str) -> None:
        opts = self.options
        extra = {**opts.payer, **opts.new_object, **({"ACL": opts.acl} if opts.acl else {})}
        created = self._try("CreateMultipartUpload",
                            lambda: client.create_multipart_upload(Bucket=bucket, Key=key, **extra))
        if not isinstance(created, dict):
            self._skip("ListParts", "no test upload (CreateMultipartUpload failed)")
            self._skip("AbortMultipartUpload", "no test upload (CreateMultipartUpload failed)")
            return
        upload_id = created["UploadId"]
        try:
            self._try("ListParts", lambda: client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id,
                                                             **opts.payer))
        finally:
            aborted = self._try("AbortMultipartUpload", lambda: client.abort_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, **opts.payer))
            if not isinstance(aborted, dict):
                self.report.leftovers.append(f"s3://{bucket}/{key} multipart upload {upload_id} (abort it "
                                             "with another identity, or let a lifecycle rule expire it)")
