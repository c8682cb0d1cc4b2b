"""``s3dsi probe USER [--bucket B] [--append-only]``: the connection test. With USER's credentials, from
whatever source the map line names (keys, an assumed role, botocore's chain), and USER's S3 policy, try
every S3 operation the connector needs, clean up every test artifact, and print what is allowed, which
IAM action is missing for what fails, and the ``s3dsi policy`` command that grants it. The checks
themselves are in ``probechecks``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from s3dsi.cli.probechecks import CHECKS, Outcome, ProbeOptions, Prober, ProbeReport
from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.config.s3policy import BUCKET_OWNER_FULL_CONTROL, S3Policy
from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account, AccountError
from s3dsi.daemon.userbackends import map_path_for
from s3dsi.identity.usermap import MapEntry, MapError, UserMap
from s3dsi.protocol.errors import CredentialsUnavailable, PermissionDenied
from s3dsi.server.backends import credential_spec, default_map_path, user_policy
from s3dsi.storage.s3clients import ClientPool, S3Config
from s3dsi.storage.s3credentials import CredentialResolver
from s3dsi.storage.s3options import RequestOptions

__all__ = ["CHECKS", "Outcome", "ProbeOptions", "ProbeReport", "Prober", "register", "render", "run"]

_SHOWN: dict[str, str] = {"allowed": "allowed", "denied": "DENIED", "failed": "FAILED", "skipped": "skipped"}


def render(report: ProbeReport, user: str, credentials: str, endpoint: str, *,
           append_only: bool = False) -> str:
    lines = [f"s3dsi probe: user {user}, credentials {credentials}, endpoint {endpoint}"]
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
    missing = [a for a in report.missing_actions if a.startswith("s3:")]
    if missing:
        bucket = report.bucket or "BUCKET"
        grant = "--append-only" if append_only else f"--access {report.fix_level}"
        acl = " --object-acl" if "s3:PutObjectAcl" in missing else ""
        lines += ["", f"Missing IAM actions: {', '.join(missing)}",
                  f"Attach to the IAM identity of {user}'s credentials the policy printed by:",
                  f"  s3dsi policy --bucket {bucket} {grant}{acl}"]
        if not append_only:
            lines.append("(use the access level you intend: 'download' for read-only, 'delete' for full "
                         "use.)")
        lines += [f"If {bucket} belongs to another AWS account, its owner must also allow them in the "
                  "bucket policy:",
                  f"  s3dsi policy --bucket {bucket} {grant}{acl} --principal ARN_OF_THAT_IDENTITY"]
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


def mapped_credentials(settings: Settings, user: str) -> tuple[MapEntry, str]:
    """USER's map entry as a session of the daemon would find it (same map, same checks)."""
    owner: int | None = None
    if os.geteuid() == 0 and settings.process_user:
        owner = Account.lookup(settings.process_user).uid
        path = settings.s3_map_filename or ""
    elif os.geteuid() == 0 and not settings.allow_root:
        account = Account.lookup(user)  # per-session model: the user's own map
        owner, path = account.uid, map_path_for(settings, account)
    else:
        path = settings.s3_map_filename or default_map_path()
    entry = UserMap.load(path, owner_uid=owner).lookup(user)
    if entry is None:
        raise MapError(f"{path}: no entry for {user!r}")
    return entry, path


def first_mapped_user(settings: Settings) -> str:
    """The first user of the map ``serve`` reads (not in the per-session model: a map per user)."""
    if os.geteuid() == 0 and settings.process_user:
        owner: int | None = Account.lookup(settings.process_user).uid
        path = settings.s3_map_filename or ""
    elif os.geteuid() == 0 and not settings.allow_root:
        raise MapError("every user has a map of their own here (per-session model): name one with --user")
    else:
        owner, path = None, settings.s3_map_filename or default_map_path()
    users = UserMap.load(path, owner_uid=owner).users()
    if not users:
        raise MapError(f"{path}: no user in the map")
    return users[0]


def user_clients(settings: Settings, user: str) -> tuple[Callable[[str], Any], S3Config]:
    """A botocore S3 client per region with ``user``'s credentials (whatever their source), and the S3
    configuration; MapError, CredentialsUnavailable and PermissionDenied as ``run`` meets them."""
    entry, _ = mapped_credentials(settings, user)
    config = dataclasses.replace(S3Config.from_settings(settings), max_attempts=2, connect_timeout=5.0,
                                 read_timeout=30.0)
    credentials = CredentialResolver(config).resolve(credential_spec(entry, user))
    pool = ClientPool(config)
    return (lambda region: pool.client(credentials, region)), config


def bucket_region(client: Any, bucket: str, default: str) -> str:
    """GetBucketLocation, or ``default`` when it cannot be asked."""
    try:
        constraint = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except (ClientError, BotoCoreError):
        return default
    return str({None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint))


def probe_options(policy: S3Policy, bucket: str | None, append_only: bool, owned: bool) -> ProbeOptions:
    """The checks as the daemon would send them for ``policy`` in ``bucket``."""
    options = RequestOptions(policy)
    acl = policy.object_acl or (None if owned or bucket is None else BUCKET_OWNER_FULL_CONTROL)
    prefix = f"{policy.root.prefix}/" if policy.root is not None and policy.root.prefix else ""
    return ProbeOptions(prefix=prefix, payer=options.payer(bucket) if bucket else {},
                        new_object=options.new_object(bucket, acl=None) if bucket else {}, acl=acl,
                        append_only=append_only or policy.append_only)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "probe", help="check that a user's S3 credentials allow everything the connector needs",
        description="With USER's credentials (whatever their source) and S3 policy, try each S3 operation "
                    "the connector uses (creating, then removing, a small test object and a test multipart "
                    "upload) and report which IAM actions are missing.")
    add_config_arguments(p)
    p.add_argument("user", metavar="USER", help="local user whose map entry to use")
    p.add_argument("--bucket", metavar="NAME",
                   help="bucket to probe (default: the root's, else the first allowed or listed one)")
    p.add_argument("--append-only", action="store_true",
                   help="an append-only destination: conditional writes, no deletes but the test object's "
                        "(implied by append_only=1 in the policy)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None,
        client_for: Callable[[str], Any] | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        settings = settings_from_args(args)
        entry, _ = mapped_credentials(settings, args.user)
        policy = user_policy(settings, entry, args.user)
    except (ConfigError, MapError, AccountError, PermissionDenied) as exc:
        err.write(f"s3dsi probe: {getattr(exc, 'text', None) or exc}\n")
        return 2
    config = dataclasses.replace(S3Config.from_settings(settings), max_attempts=2, connect_timeout=5.0,
                                 read_timeout=30.0)
    spec = credential_spec(entry, args.user)
    described = spec.describe()
    if client_for is None:
        try:
            credentials = CredentialResolver(config).resolve(spec)
        except CredentialsUnavailable as exc:
            out.write(f"s3dsi probe: user {args.user}, credentials {described}\n\n"
                      f"The credentials cannot be obtained: {exc.text}\n")
            if spec.role_arn is not None:
                out.write(f"The identity that assumes the role needs sts:AssumeRole on it (s3dsi policy "
                          f"--assume {spec.role_arn}), and the role's trust policy must name that identity "
                          "(s3dsi policy --trust ARN_OF_THAT_IDENTITY).\n")
            return 1
        pool = ClientPool(config)

        def client_for(region: str) -> Any:
            return pool.client(credentials, region)

    bucket = args.bucket or (policy.root.bucket if policy.root is not None else None) or \
        (policy.buckets[0] if policy.buckets else None)
    home = client_for(config.region)
    owned = _owns(home, bucket)
    report = Prober(client_for, home_region=config.region,
                    options=probe_options(policy, bucket, args.append_only, owned)).run(bucket)
    out.write(render(report, args.user, described, config.endpoint_url,
                     append_only=args.append_only or policy.append_only) + "\n")
    return 0 if report.ok else 1


def _owns(client: Any, bucket: str | None) -> bool:
    """Whether the credentials' account owns ``bucket`` (in its ListBuckets); True when unknown."""
    if bucket is None:
        return True
    try:
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    except Exception:
        return True
    return bucket in names
