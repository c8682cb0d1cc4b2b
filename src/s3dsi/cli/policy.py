"""``s3dsi policy``: print the least-privilege IAM policy the connector needs for some buckets.

Without ``--principal``: an identity policy for the IAM user (or role) whose keys are in the map. With
``--principal ARN``: the bucket policy the owner of a bucket in another account attaches so that this
principal can use it (the principal's own account must also allow the same actions).

Uploading needs one action on the daemon's own restart records (``.s3dsi/`` at the top of each bucket,
storage/records.py) beyond the object actions: ``s3:DeleteObject``, to remove a record once its upload
is completed or aborted. Writing and reading records are PutObject and GetObject, which the object
statement already grants.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, TextIO

ACCESS_LEVELS = ("browse", "download", "upload", "delete", "full")

_OBJECT_ACTIONS: dict[str, tuple[str, ...]] = {
    "browse": (),
    "download": ("s3:GetObject", "s3:GetObjectTagging"),  # the daemon reads stored checksums from tags
}
_OBJECT_ACTIONS["upload"] = (*_OBJECT_ACTIONS["download"], "s3:PutObject", "s3:PutObjectTagging",
                             "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
_OBJECT_ACTIONS["delete"] = (*_OBJECT_ACTIONS["upload"], "s3:DeleteObject")
_OBJECT_ACTIONS["full"] = _OBJECT_ACTIONS["delete"]

_RECORD_ACTIONS = ("s3:DeleteObject",)  # on bucket/.s3dsi/*, for upload: removing a finished upload's record
_RECORDS = ".s3dsi/*"

_BUCKET_ACTIONS = ("s3:ListBucket", "s3:ListBucketMultipartUploads")
_BUCKET_ADMIN_ACTIONS = ("s3:CreateBucket", "s3:DeleteBucket")
_ACCOUNT_ACTIONS = ("s3:ListAllMyBuckets", "s3:GetBucketLocation")

_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_ARN_RE = re.compile(r"arn:[a-z0-9-]+:[a-z0-9-]+:[a-z0-9-]*:\d{12}:\S+")
_PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc")


class PolicyError(ValueError):
    pass


def _statement(sid: str, actions: tuple[str, ...], resources: list[str] | str,
               principal: str | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow"}
    if principal is not None:
        statement["Principal"] = {"AWS": principal}
    statement["Action"] = list(actions)
    statement["Resource"] = resources
    return statement


def check_bucket(name: str) -> str:
    if not _BUCKET_RE.fullmatch(name) or ".." in name:
        raise PolicyError(f"not a valid bucket name: {name!r}")
    return name


def principal_arn(value: str, partition: str = "aws") -> str:
    """An IAM principal ARN; a bare 12-digit account id means that account's root."""
    if re.fullmatch(r"\d{12}", value):
        return f"arn:{partition}:iam::{value}:root"
    if not _ARN_RE.fullmatch(value):
        raise PolicyError(f"not an IAM principal ARN or account id: {value!r}")
    return value


def identity_policy(buckets: list[str], access: str, partition: str = "aws") -> dict[str, Any]:
    """The policy to attach to the IAM identity whose keys the connector uses."""
    bucket_arns = [f"arn:{partition}:s3:::{check_bucket(b)}" for b in buckets]
    bucket_actions = _BUCKET_ACTIONS + (_BUCKET_ADMIN_ACTIONS if access == "full" else ())
    statements = [
        _statement("S3dsiListBuckets", _ACCOUNT_ACTIONS, "*"),
        _statement("S3dsiBucketAccess", bucket_actions, bucket_arns),
    ]
    if _OBJECT_ACTIONS[access]:
        statements.append(_statement("S3dsiObjectAccess", _OBJECT_ACTIONS[access],
                                     [f"{arn}/*" for arn in bucket_arns]))
    if access == "upload":
        statements.append(_statement("S3dsiRestartRecords", _RECORD_ACTIONS,
                                     [f"{arn}/{_RECORDS}" for arn in bucket_arns]))
    return {"Version": "2012-10-17", "Statement": statements}


def bucket_policy(bucket: str, access: str, principal: str, partition: str = "aws") -> dict[str, Any]:
    """The bucket policy granting ``principal`` (another account's identity) access to ``bucket``."""
    arn = f"arn:{partition}:s3:::{check_bucket(bucket)}"
    # creating a bucket in another account is not possible, so "full" adds only DeleteBucket here
    extra = ("s3:DeleteBucket",) if access == "full" else ()
    bucket_actions: tuple[str, ...] = (*_BUCKET_ACTIONS, "s3:GetBucketLocation", *extra)
    statements = [_statement("S3dsiBucketAccess", bucket_actions, arn, principal)]
    if _OBJECT_ACTIONS[access]:
        statements.append(_statement("S3dsiObjectAccess", _OBJECT_ACTIONS[access], f"{arn}/*", principal))
    if access == "upload":
        statements.append(_statement("S3dsiRestartRecords", _RECORD_ACTIONS, f"{arn}/{_RECORDS}", principal))
    return {"Version": "2012-10-17", "Statement": statements}


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "policy", help="print the minimal IAM policy JSON for some buckets and an access level",
        description="Print the least-privilege IAM policy the connector needs. With --principal, print "
                    "instead the bucket policy that grants a principal of another account access.")
    p.add_argument("--bucket", action="append", required=True, metavar="NAME",
                   help="bucket to grant (repeat for several)")
    p.add_argument("--access", choices=ACCESS_LEVELS, default="download",
                   help="browse: list only; download: + read; upload: + write; delete: + delete; "
                        "full: + create/delete buckets (default: download)")
    p.add_argument("--principal", metavar="ARN",
                   help="principal (IAM ARN or 12-digit account id) of another account to grant")
    p.add_argument("--partition", choices=_PARTITIONS, default="aws", help="AWS partition (default: aws)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    buckets = list(dict.fromkeys(args.bucket))
    try:
        if args.principal is None:
            document = identity_policy(buckets, args.access, args.partition)
        elif len(buckets) != 1:
            raise PolicyError("a bucket policy belongs to one bucket: with --principal give exactly one "
                              "--bucket (run once per bucket)")
        else:
            document = bucket_policy(buckets[0], args.access, principal_arn(args.principal, args.partition),
                                     args.partition)
    except PolicyError as exc:
        err.write(f"s3dsi policy: error: {exc}\n")
        return 2
    out.write(json.dumps(document, indent=2) + "\n")
    return 0
