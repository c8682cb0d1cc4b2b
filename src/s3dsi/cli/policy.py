"""``s3dsi policy``: print the least-privilege IAM documents the connector needs.

* Identity policy (default): for the IAM identity whose credentials a map line uses; ``--access``
  chooses the level, ``--append-only`` the append-only variant (objects can be written, never deleted:
  ``s3:DeleteObject`` only on the test objects of ``s3dsi probe``, and an explicit Deny of deletes
  elsewhere), ``--prefix`` confines object access to a virtual root's prefix, ``--object-acl`` adds
  ``s3:PutObjectAcl`` (needed where new objects carry an ACL, such as ``bucket-owner-full-control`` in
  buckets of other accounts), ``--kms-key`` the KMS actions of ``sse=aws:kms``.
* ``--principal ARN``: the bucket policy the owner of a bucket in another account attaches so that this
  principal can use it (its own account must also allow the same actions); with uploads it includes
  ``s3:PutObjectAcl``, since new objects there carry ``bucket-owner-full-control``.
* ``--assume ROLE_ARN``: the identity policy of keys whose only permission is to assume the role(s).
* ``--trust ARN|ACCOUNT|ec2`` (with ``--external-id``) or ``--web-identity PROVIDER_ARN``: the trust
  policy of a role the daemon's identity assumes (``role_arn=`` in the map, an instance profile, or
  web identity).

Every level that uploads also needs the daemon's own restart records (``.s3dsi/`` at the top of each
bucket, storage/records.py), whatever ``--prefix`` confines: ``s3:PutObject``, ``s3:GetObject`` and
``s3:DeleteObject`` on ``bucket/.s3dsi/*`` (a record is removed once its upload is completed or
aborted, also under ``--append-only``, whose Deny spares them).
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

_RECORD_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")  # the restart records' own
RECORD_KEYS = ".s3dsi/*"  # where the daemon keeps them in every bucket (storage/records.py)

_BUCKET_ACTIONS = ("s3:ListBucket", "s3:ListBucketMultipartUploads")
_BUCKET_ADMIN_ACTIONS = ("s3:CreateBucket", "s3:DeleteBucket")
_ACCOUNT_ACTIONS = ("s3:ListAllMyBuckets", "s3:GetBucketLocation")
_DELETES = ("s3:DeleteObject", "s3:DeleteObjectVersion")
_KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
PROBE_KEYS = ".s3dsi-probe-*"  # the test objects s3dsi probe writes and deletes (probechecks)

_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_ARN_RE = re.compile(r"arn:[a-z0-9-]+:[a-z0-9-]+:[a-z0-9-]*:\d{12}:\S+")
_ROLE_RE = re.compile(r"arn:[a-z0-9-]+:iam::\d{12}:role/\S+")
_OIDC_RE = re.compile(r"arn:[a-z0-9-]+:iam::\d{12}:oidc-provider/(\S+)")
_KMS_RE = re.compile(r"arn:[a-z0-9-]+:kms:[a-z0-9-]+:\d{12}:(key|alias)/\S+")
_PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc")
_SERVICES = {"ec2": "ec2.amazonaws.com", "ecs-tasks": "ecs-tasks.amazonaws.com"}


class PolicyError(ValueError):
    pass


def _statement(sid: str, actions: tuple[str, ...], resources: list[str] | str,
               principal: str | None = None, effect: str = "Allow") -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": effect}
    if principal is not None:
        statement["Principal"] = {"AWS": principal}
    statement["Action"] = list(actions)
    statement["Resource"] = resources
    return statement


def check_bucket(name: str) -> str:
    if not _BUCKET_RE.fullmatch(name) or ".." in name:
        raise PolicyError(f"not a valid bucket name: {name!r}")
    return name


def check_prefix(prefix: str | None) -> str:
    value = (prefix or "").strip("/")
    if any(seg in ("", ".", "..") for seg in value.split("/")) and value:
        raise PolicyError(f"not a valid prefix: {prefix!r}")
    if re.search(r"[*?\s]", value):
        raise PolicyError(f"a prefix cannot hold wildcards or white space: {prefix!r}")
    return value


def principal_arn(value: str, partition: str = "aws") -> str:
    """An IAM principal ARN; a bare 12-digit account id means that account's root."""
    if re.fullmatch(r"\d{12}", value):
        return f"arn:{partition}:iam::{value}:root"
    if not _ARN_RE.fullmatch(value):
        raise PolicyError(f"not an IAM principal ARN or account id: {value!r}")
    return value


def _object_actions(access: str, append_only: bool, object_acl: bool) -> tuple[str, ...]:
    actions = _OBJECT_ACTIONS["upload" if append_only else access]
    return (*actions, "s3:PutObjectAcl") if object_acl and "s3:PutObject" in actions else actions


def _object_arns(bucket_arns: list[str], prefix: str) -> list[str]:
    return [f"{arn}/{prefix}/*" if prefix else f"{arn}/*" for arn in bucket_arns]


def _record_arns(bucket_arns: list[str]) -> list[str]:
    return [f"{arn}/{RECORD_KEYS}" for arn in bucket_arns]


def _record_actions(object_acl: bool) -> tuple[str, ...]:
    return (*_RECORD_ACTIONS, "s3:PutObjectAcl") if object_acl else _RECORD_ACTIONS


def _probe_arns(bucket_arns: list[str], prefix: str) -> list[str]:
    if prefix:
        return [f"{arn}/{prefix}/{PROBE_KEYS}" for arn in bucket_arns]
    return [f"{arn}/{PROBE_KEYS}" for arn in bucket_arns]


def identity_policy(buckets: list[str], access: str, partition: str = "aws", *, append_only: bool = False,
                    prefix: str = "", object_acl: bool = False, kms_keys: list[str] | None = None
                    ) -> dict[str, Any]:
    """The policy to attach to the IAM identity whose credentials the connector uses."""
    bucket_arns = [f"arn:{partition}:s3:::{check_bucket(b)}" for b in buckets]
    prefix = check_prefix(prefix)
    admin = access == "full" and not append_only
    bucket_actions = _BUCKET_ACTIONS + (_BUCKET_ADMIN_ACTIONS if admin else ())
    statements = [
        _statement("S3dsiListBuckets", _ACCOUNT_ACTIONS, "*"),
        _statement("S3dsiBucketAccess", bucket_actions, bucket_arns),
    ]
    objects = _object_actions(access, append_only, object_acl)
    if objects:
        statements.append(_statement("S3dsiObjectAccess", objects, _object_arns(bucket_arns, prefix)))
    records = _record_arns(bucket_arns) if "s3:PutObject" in objects else []
    if records:
        statements.append(_statement("S3dsiRestartRecords", _record_actions(object_acl), records))
    if append_only:
        probe = _probe_arns(bucket_arns, prefix)
        statements.append(_statement("S3dsiProbeCleanup", ("s3:DeleteObject",), probe))
        deny = _statement("S3dsiAppendOnly", _DELETES, "*", effect="Deny")
        del deny["Resource"]
        # every delete but the probe's and the restart records' is refused, whatever else allows it
        deny["NotResource"] = [*probe, *records]
        statements.append(deny)
    if kms_keys:
        statements.append(_statement("S3dsiKms", _KMS_ACTIONS, kms_keys))
    return {"Version": "2012-10-17", "Statement": statements}


def bucket_policy(bucket: str, access: str, principal: str, partition: str = "aws", *,
                  append_only: bool = False, prefix: str = "", object_acl: bool = True) -> dict[str, Any]:
    """The bucket policy granting ``principal`` (another account's identity) access to ``bucket``.

    Uploads into a bucket of another account carry ``bucket-owner-full-control`` (the owner owns what
    is written), which needs ``s3:PutObjectAcl`` as well: it is included unless ``object_acl`` is False.
    """
    arn = f"arn:{partition}:s3:::{check_bucket(bucket)}"
    prefix = check_prefix(prefix)
    # creating a bucket in another account is not possible, so "full" adds only DeleteBucket here
    extra = ("s3:DeleteBucket",) if access == "full" and not append_only else ()
    bucket_actions: tuple[str, ...] = (*_BUCKET_ACTIONS, "s3:GetBucketLocation", *extra)
    statements = [_statement("S3dsiBucketAccess", bucket_actions, arn, principal)]
    objects = _object_actions(access, append_only, object_acl)
    if objects:
        statements.append(_statement("S3dsiObjectAccess", objects, _object_arns([arn], prefix)[0], principal))
    if "s3:PutObject" in objects:
        statements.append(_statement("S3dsiRestartRecords", _record_actions(object_acl),
                                     _record_arns([arn])[0], principal))
    if append_only:
        statements.append(_statement("S3dsiProbeCleanup", ("s3:DeleteObject",), _probe_arns([arn], prefix)[0],
                                     principal))
    return {"Version": "2012-10-17", "Statement": statements}


def assume_policy(roles: list[str]) -> dict[str, Any]:
    """For keys whose only permission is to assume the role(s) (map: ``KEYS;role_arn=ROLE``)."""
    for role in roles:
        if not _ROLE_RE.fullmatch(role):
            raise PolicyError(f"not an IAM role ARN: {role!r}")
    return {"Version": "2012-10-17", "Statement": [_statement("S3dsiAssumeRole", ("sts:AssumeRole",), roles)]}


def trust_policy(principal: str, partition: str = "aws", external_id: str | None = None) -> dict[str, Any]:
    """The trust policy of a role the daemon's identity assumes (``principal``: its ARN or account, or
    ``ec2`` / ``ecs-tasks`` for an instance profile or a task role)."""
    statement: dict[str, Any] = {"Sid": "S3dsiAssume", "Effect": "Allow"}
    if principal in _SERVICES:
        statement["Principal"] = {"Service": _SERVICES[principal]}
    else:
        statement["Principal"] = {"AWS": principal_arn(principal, partition)}
    statement["Action"] = "sts:AssumeRole"
    if external_id is not None:
        if principal in _SERVICES:
            raise PolicyError("--external-id goes with a principal of another account, not a service")
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def web_identity_trust(provider: str, audience: str | None = None,
                       subject: str | None = None) -> dict[str, Any]:
    """The trust policy of a role assumed with a web identity token (``AWS_WEB_IDENTITY_TOKEN_FILE``)."""
    match = _OIDC_RE.fullmatch(provider)
    if match is None:
        raise PolicyError(f"not an OIDC provider ARN: {provider!r}")
    host = match.group(1)
    statement: dict[str, Any] = {"Sid": "S3dsiWebIdentity", "Effect": "Allow",
                                 "Principal": {"Federated": provider},
                                 "Action": "sts:AssumeRoleWithWebIdentity"}
    conditions = {f"{host}:{name}": value for name, value in (("aud", audience), ("sub", subject)) if value}
    if conditions:
        statement["Condition"] = {"StringEquals": conditions}
    return {"Version": "2012-10-17", "Statement": [statement]}


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "policy", help="print the minimal IAM policy JSON for some buckets and an access level",
        description="Print the least-privilege IAM policy the connector needs. With --principal, print "
                    "instead the bucket policy that grants a principal of another account access; with "
                    "--assume, the policy of keys that only assume a role; with --trust or --web-identity, "
                    "the trust policy of a role the daemon's identity assumes.")
    p.add_argument("--bucket", action="append", metavar="NAME", help="bucket to grant (repeat for several)")
    p.add_argument("--access", choices=ACCESS_LEVELS, default="download",
                   help="browse: list only; download: + read; upload: + write; delete: + delete; "
                        "full: + create/delete buckets (default: download)")
    p.add_argument("--append-only", action="store_true",
                   help="an append-only destination: write new objects, never delete (but the probe's)")
    p.add_argument("--prefix", metavar="PREFIX", help="only objects under this prefix (a virtual root)")
    p.add_argument("--object-acl", action="store_true", help="add s3:PutObjectAcl (object_acl in use)")
    p.add_argument("--kms-key", action="append", metavar="ARN", help="KMS key of sse=aws:kms (repeatable)")
    p.add_argument("--principal", metavar="ARN",
                   help="principal (IAM ARN or 12-digit account id) of another account to grant")
    p.add_argument("--assume", action="append", metavar="ROLE_ARN",
                   help="print the policy of keys that may only assume this role (repeatable)")
    p.add_argument("--trust", metavar="ARN|ACCOUNT|ec2|ecs-tasks",
                   help="print the trust policy of a role this principal assumes")
    p.add_argument("--external-id", metavar="ID", help="with --trust: the ExternalId the role requires")
    p.add_argument("--web-identity", metavar="PROVIDER_ARN",
                   help="print the trust policy of a role assumed with this OIDC provider's tokens")
    p.add_argument("--audience", metavar="AUD", help="with --web-identity: the token's audience")
    p.add_argument("--subject", metavar="SUB", help="with --web-identity: the token's subject")
    p.add_argument("--partition", choices=_PARTITIONS, default="aws", help="AWS partition (default: aws)")
    p.set_defaults(func=run)


def _document(args: argparse.Namespace) -> dict[str, Any]:
    if args.trust is not None:
        return trust_policy(args.trust, args.partition, args.external_id)
    if args.web_identity is not None:
        return web_identity_trust(args.web_identity, args.audience, args.subject)
    if args.assume:
        return assume_policy(list(dict.fromkeys(args.assume)))
    buckets = list(dict.fromkeys(args.bucket or []))
    if not buckets:
        raise PolicyError("give --bucket (or --assume, --trust, --web-identity)")
    if args.principal is None:
        kms = list(dict.fromkeys(args.kms_key or []))
        for key in kms:
            if not _KMS_RE.fullmatch(key):
                raise PolicyError(f"not a KMS key or alias ARN: {key!r}")
        return identity_policy(buckets, args.access, args.partition, append_only=args.append_only,
                               prefix=args.prefix, object_acl=args.object_acl, kms_keys=kms)
    if len(buckets) != 1:
        raise PolicyError("a bucket policy belongs to one bucket: with --principal give exactly one "
                          "--bucket (run once per bucket)")
    return bucket_policy(buckets[0], args.access, principal_arn(args.principal, args.partition),
                         args.partition, append_only=args.append_only, prefix=args.prefix)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if not (args.bucket or args.assume or args.trust or args.web_identity):
        err.write("s3dsi policy: error: give --bucket (or --assume, --trust, --web-identity)\n")
        raise SystemExit(2)
    try:
        document = _document(args)
    except PolicyError as exc:
        err.write(f"s3dsi policy: error: {exc}\n")
        return 2
    out.write(json.dumps(document, indent=2) + "\n")
    return 0
