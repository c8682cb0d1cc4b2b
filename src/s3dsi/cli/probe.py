"""``s3dsi probe USER [--bucket B]``: with USER's mapped credentials, try every S3 operation the
connector needs (its restart records under ``.s3dsi/`` included), clean up every test artifact, and
print what is allowed, which IAM action is missing for what fails, and the ``s3dsi policy`` command
that grants it; and whether the bucket has a lifecycle rule that aborts incomplete multipart uploads."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from s3dsi.cli.lifecycle import LifecycleFinding, check_lifecycle
from s3dsi.cli.policy import ACCESS_LEVELS
from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account, AccountError
from s3dsi.daemon.userbackends import map_path_for
from s3dsi.identity.usermap import MapEntry, MapError, UserMap
from s3dsi.server.backends import default_map_path
from s3dsi.storage.records import RECORD_PREFIX
from s3dsi.storage.s3clients import ClientPool, S3Config, S3Credentials

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
    Check("PutObject .s3dsi/", "s3:PutObject", "restart records (resuming on any host, the janitor)",
          "upload"),
    Check("GetObject .s3dsi/", "s3:GetObject", "reading restart records", "download"),
    Check("DeleteObject .s3dsi/", "s3:DeleteObject", "removing a finished upload's restart record", "upload"),
)}


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

    def __init__(self, client_for: Callable[[str], Any], *, home_region: str) -> None:
        self.client_for = client_for
        self.home_region = home_region
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
        key = f".s3dsi-probe-{uuid.uuid4().hex[:16]}"
        self.report.key = key
        listed = self._try("ListObjectsV2", lambda: client.list_objects_v2(Bucket=bucket, MaxKeys=10))
        sample = None
        if isinstance(listed, dict):
            sample = next((o["Key"] for o in listed.get("Contents", []) if not o["Key"].endswith("/")), None)
        self._try("ListMultipartUploads", lambda: client.list_multipart_uploads(Bucket=bucket, MaxUploads=1))
        put = self._try("PutObject", lambda: client.put_object(Bucket=bucket, Key=key, Body=PROBE_BODY))
        created = isinstance(put, dict)
        readable = key if created else sample
        try:
            if created:
                self._try("PutObjectTagging", lambda: client.put_object_tagging(
                    Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "s3dsi-probe", "Value": "1"}]}))
            else:
                self._skip("PutObjectTagging", "no test object (PutObject failed)")
            if readable is not None:
                self._try("GetObjectTagging", lambda: client.get_object_tagging(Bucket=bucket, Key=readable))
                def first_byte() -> bytes:
                    response = client.get_object(Bucket=bucket, Key=readable, Range="bytes=0-0")
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
                deleted = self._try("DeleteObject", lambda: client.delete_object(Bucket=bucket, Key=key))
                if not isinstance(deleted, dict):
                    self.report.leftovers.append(f"s3://{bucket}/{key} (test object: delete it with another "
                                                 "identity)")
            else:
                self._skip("DeleteObject", "no test object to delete (PutObject failed)")

    def _records(self, client: Any, bucket: str) -> None:
        """What a restart record takes: write, read and remove a small object under .s3dsi/ (a name the
        janitor does not take for a record)."""
        key = f"{RECORD_PREFIX}probe-{uuid.uuid4().hex[:16]}.json"
        put = self._try("PutObject .s3dsi/", lambda: client.put_object(Bucket=bucket, Key=key, Body=b"{}"))
        if not isinstance(put, dict):
            for operation in ("GetObject .s3dsi/", "DeleteObject .s3dsi/"):
                self._skip(operation, "no test record (PutObject .s3dsi/ failed)")
            return
        def read() -> bytes:
            body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body

        self._try("GetObject .s3dsi/", read)
        deleted = self._try("DeleteObject .s3dsi/", lambda: client.delete_object(Bucket=bucket, Key=key))
        if not isinstance(deleted, dict):
            self.report.leftovers.append(f"s3://{bucket}/{key} (test record: delete it with another "
                                         "identity)")

    def _multipart(self, client: Any, bucket: str, key: str) -> None:
        created = self._try("CreateMultipartUpload",
                            lambda: client.create_multipart_upload(Bucket=bucket, Key=key))
        if not isinstance(created, dict):
            self._skip("ListParts", "no test upload (CreateMultipartUpload failed)")
            self._skip("AbortMultipartUpload", "no test upload (CreateMultipartUpload failed)")
            return
        upload_id = created["UploadId"]
        try:
            self._try("ListParts", lambda: client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id))
        finally:
            aborted = self._try("AbortMultipartUpload", lambda: client.abort_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id))
            if not isinstance(aborted, dict):
                self.report.leftovers.append(f"s3://{bucket}/{key} multipart upload {upload_id} (abort it "
                                             "with another identity, or let a lifecycle rule expire it)")


def render(report: ProbeReport, user: str, entry_key_id: str, endpoint: str) -> str:
    lines = [f"s3dsi probe: user {user}, access key id {entry_key_id}, endpoint {endpoint}"]
    if report.bucket is not None:
        lines.append(f"bucket {report.bucket} (region {report.region}), test object {report.key}")
    lines += [f"note: {note}" for note in report.notes]
    table = [["OPERATION", "IAM ACTION", "RESULT", "USED FOR"]]
    for outcome in report.outcomes:
        result = _SHOWN[outcome.result]
        if outcome.detail:
            result += f" ({outcome.detail})"
        table.append([outcome.check.operation, outcome.check.action, result, outcome.check.purpose])
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines.append("")
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]))
    missing = report.missing_actions
    if missing:
        bucket = report.bucket or "BUCKET"
        lines += ["", f"Missing IAM actions: {', '.join(missing)}",
                  f"Attach to the IAM identity whose keys are mapped for {user} the policy printed by:",
                  f"  s3dsi policy --bucket {bucket} --access {report.fix_level}",
                  "(use the access level you intend: 'download' for read-only, 'delete' for full use.)",
                  f"If {bucket} belongs to another AWS account, its owner must also allow them in the "
                  "bucket policy:",
                  f"  s3dsi policy --bucket {bucket} --access {report.fix_level} "
                  "--principal ARN_OF_THAT_IDENTITY"]
    if report.bucket_unusable == "missing":
        lines += ["", f"Bucket {report.bucket} does not exist at {endpoint} ({report.bucket_detail}): check "
                      f"the name (and host_name); a session can create it with 'MKD /{report.bucket}'. "
                      "The bucket checks were not run."]
    elif report.bucket_unusable == "unreachable":
        hint = ("the map entry's keys" if "rejects these credentials" in report.bucket_detail
                else "host_name, region, addressing_style and the network")
        lines += ["", f"Bucket {report.bucket} is not reachable at {endpoint} ({report.bucket_detail}): "
                      f"check {hint}. The bucket checks were not run."]
    for leftover in report.leftovers:
        lines.append(f"left behind: {leftover}")
    if report.lifecycle is not None and report.bucket is not None:
        lines += ["", report.lifecycle.describe(report.bucket)]
    if report.ok:
        lines += ["", "Everything the connector needs is allowed."]
    return "\n".join(lines)


def map_location(settings: Settings, user: str | None) -> tuple[str, int | None]:
    """The map a session of USER reads, and its owner's uid when the map's owner is not the caller. In the
    per-session model (root without process_user) each user has their own: USER must be given."""
    if os.geteuid() == 0 and settings.process_user:
        return settings.s3_map_filename or "", Account.lookup(settings.process_user).uid
    if os.geteuid() == 0 and not settings.allow_root:
        if user is None:
            raise MapError("every user has a map of their own here (per-session model): name one with --user")
        account = Account.lookup(user)  # per-session model: the user's own map
        return map_path_for(settings, account), account.uid
    return settings.s3_map_filename or default_map_path(), None


def mapped_credentials(settings: Settings, user: str | None) -> tuple[MapEntry, str]:
    """USER's map entry as a session of the daemon would find it (same map, same checks); without USER,
    the first entry of the map."""
    path, owner = map_location(settings, user)
    usermap = UserMap.load(path, owner_uid=owner)
    if user is None:
        user = next(iter(usermap.users()), None)
        if user is None:
            raise MapError(f"{path}: no user in the map")
    entry = usermap.lookup(user)
    if entry is None:
        raise MapError(f"{path}: no entry for {user!r}")
    return entry, path


def bucket_region(client: Any, bucket: str, default: str) -> str:
    """GetBucketLocation, or ``default`` when it cannot be asked."""
    try:
        constraint = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except (ClientError, BotoCoreError):
        return default
    return str({None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint))


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "probe", help="check that a user's mapped S3 credentials allow everything the connector needs",
        description="With USER's mapped credentials, try each S3 operation the connector uses (creating, "
                    "then removing, a small test object and a test multipart upload) and report which "
                    "IAM actions are missing.")
    add_config_arguments(p)
    p.add_argument("user", metavar="USER", help="local user whose map entry to use")
    p.add_argument("--bucket", metavar="NAME", help="bucket to probe (default: the first one listed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None,
        client_for: Callable[[str], Any] | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        settings = settings_from_args(args)
        entry, _ = mapped_credentials(settings, args.user)
    except (ConfigError, MapError, AccountError) as exc:
        err.write(f"s3dsi probe: {exc}\n")
        return 2
    config = dataclasses.replace(S3Config.from_settings(settings), max_attempts=2, connect_timeout=5.0,
                                 read_timeout=30.0)
    if client_for is None:
        pool = ClientPool(config)
        credentials = S3Credentials(entry.access_key_id, entry.secret_access_key)

        def client_for(region: str) -> Any:
            return pool.client(credentials, region)

    report = Prober(client_for, home_region=config.region).run(args.bucket)
    out.write(render(report, args.user, entry.access_key_id, config.endpoint_url) + "\n")
    return 0 if report.ok else 1
