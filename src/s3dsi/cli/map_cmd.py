"""``s3dsi map list|add|remove|check``: maintain the S3 credential map (``~/.globus/s3``).

Keys are read from stdin (two lines: access key id, then secret) or, on a terminal, asked for with the
secret hidden; never taken from the command line, where other users could see them in ``ps``. The
fourth field (where credentials come from, the user's S3 policy) is set with options: ``--role-arn``,
``--external-id``, ``--session-name``, ``--duration``, ``--source default`` (no keys are read then),
``--profile``, ``--set KEY=VALUE`` for the policy keys, ``--unset KEY``; options already on the line
are kept unless changed (``--reset-options`` starts afresh). ``check`` also checks every line's policy
against the site's (a line may only narrow it).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, TextIO

from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.config.s3policy import PolicyError, narrow, site_policy
from s3dsi.config.settings import Settings
from s3dsi.identity.mapoptions import OptionError, parse_options
from s3dsi.identity.securefile import admin_owner_uid
from s3dsi.identity.usermap import (
    MapEntry,
    MapError,
    UserMap,
    check_entry,
    edit_map_text,
    read_map_text,
    write_map_text,
)
from s3dsi.observability.logging import REDACTED, register_secret


class CommandError(Exception):
    pass


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--file", metavar="F", help="map file (default: s3_map_filename from the "
                                                    "configuration, i.e. ~/.globus/s3 of the process user)")
    add_config_arguments(common)
    p: argparse.ArgumentParser = subparsers.add_parser(
        "map", help="list, add, remove or check entries of the S3 credential map (~/.globus/s3)")
    actions = p.add_subparsers(dest="map_action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="show users and access key ids (secrets hidden)")
    add = actions.add_parser("add", parents=[common],
                             help="add or replace USER's keys (read from stdin or asked for) and options")
    add.add_argument("user", metavar="USER")
    fourth = add.add_argument_group("credential source and policy (the line's fourth field)")
    for option, key, text in (("--role-arn", "role_arn", "assume this IAM role (with the keys, or --source)"),
                              ("--external-id", "external_id", "ExternalId for the role's trust policy"),
                              ("--session-name", "session_name", "RoleSessionName (default s3dsi-USER)"),
                              ("--duration", "duration", "role session length, 900s to 12h (default 1h)"),
                              ("--source", "source", "'default': botocore's chain of the daemon's "
                                                     "account instead of keys (none are read)"),
                              ("--profile", "profile", "with --source default: a shared-config profile")):
        fourth.add_argument(option, dest=key, metavar=key.split("_")[-1].upper(), help=text)
    fourth.add_argument("--set", dest="set_options", action="append", default=[], metavar="KEY=VALUE",
                        help="a policy key (root, buckets, append_only, overwrite, requester_pays, "
                             "storage_class, sse, sse_kms_key_id, object_acl); repeat as needed")
    fourth.add_argument("--unset", dest="unset_options", action="append", default=[], metavar="KEY",
                        help="drop an option from the line")
    fourth.add_argument("--reset-options", action="store_true", help="drop every option of the line first")
    remove = actions.add_parser("remove", parents=[common], help="remove USER's entry")
    remove.add_argument("user", metavar="USER")
    actions.add_parser("check", parents=[common], help="check the format, ownership and permissions")
    p.set_defaults(func=run)


def map_path(args: argparse.Namespace) -> str:
    if args.file:
        return str(args.file)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        raise CommandError(f"{exc} (give the map file with --file)") from None
    if settings.s3_map_filename is None:
        raise CommandError("cannot tell where the map file is (process_user does not exist); use --file")
    return settings.s3_map_filename


def read_keys(stdin: TextIO) -> tuple[str, str]:
    if stdin.isatty():
        access_key_id = input("Access key ID: ").strip()
        secret = getpass.getpass("Secret access key: ").strip()
    else:
        access_key_id = stdin.readline().strip()
        secret = stdin.readline().strip()
    register_secret(secret)
    return access_key_id, secret


_CREDENTIAL_FLAGS = ("role_arn", "external_id", "session_name", "duration", "source", "profile")


def _options(args: argparse.Namespace, existing: MapEntry | None) -> str | None:
    """The new fourth field: the existing options, changed as the command line says."""
    options: dict[str, str] = {}
    if existing is not None and not args.reset_options:
        options.update(existing.options.written)
    for key in _CREDENTIAL_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    for item in args.set_options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--set {item!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    for key in args.unset_options:
        options.pop(key.strip(), None)
    return ",".join(f"{k}={v}" for k, v in options.items()) or None


def _add(path: str, args: argparse.Namespace, stdin: TextIO, out: TextIO) -> None:
    user = args.user
    check_entry(user, "x", "x")
    owner = admin_owner_uid(path)
    text = read_map_text(path, owner_uid=owner)
    existing = UserMap.parse(text.encode("utf-8"), path).lookup(user)
    extra = _options(args, existing)
    try:
        sourced = parse_options(extra or "").source is not None
    except OptionError as exc:
        raise MapError(f"fourth field: {exc}") from None
    access_key_id, secret = ("", "") if sourced else read_keys(stdin)
    entry = check_entry(user, access_key_id, secret, extra)
    write_map_text(path, edit_map_text(text, put=entry), owner_uid=owner)
    out.write(f"{'replaced' if existing else 'added'} the entry of {user!r} in {path}\n")


def _remove(path: str, user: str, out: TextIO) -> None:
    owner = admin_owner_uid(path)
    text = read_map_text(path, owner_uid=owner)
    if user not in UserMap.parse(text.encode("utf-8"), path):
        raise CommandError(f"{path}: no entry for {user!r}")
    write_map_text(path, edit_map_text(text, remove=user), owner_uid=owner)
    out.write(f"removed the entry of {user!r} from {path}\n")


def _check(path: str, args: argparse.Namespace, out: TextIO) -> bool:
    """Format, owner and permissions; each line's credential source and policy against the site's."""
    usermap = UserMap.load(path, owner_uid=admin_owner_uid(path))
    try:
        settings: Settings | None = settings_from_args(args)
    except ConfigError as exc:
        settings = None
        out.write(f"note: the site's S3 policy was not checked (configuration: {exc})\n")
    ok = True
    for entry in usermap:
        source = entry.options.describe_source(entry.access_key_id)
        policy = ""
        if settings is not None:
            try:
                effective = narrow(site_policy(settings, entry.user), entry.options.policy)
            except PolicyError as exc:
                out.write(f"{entry.user}: ERROR: the line goes beyond the site's S3 policy: {exc}\n")
                ok = False
                continue
            policy = ", ".join(effective.describe())
        out.write(f"{entry.user}: {source}" + (f"; {policy}" if policy else "") + "\n")
    if ok:
        out.write(f"{path}: OK, {len(usermap)} user(s)\n")
    return ok


def _list(path: str, out: TextIO) -> None:
    usermap = UserMap.load(path, owner_uid=admin_owner_uid(path))
    rows = [("USER", "ACCESS_KEY_ID", "SECRET", "EXTRA")]
    rows += [(e.user, e.access_key_id, REDACTED, e.extra or "") for e in usermap]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        out.write(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip()
                  + "\n")


def run(args: argparse.Namespace, stdin: TextIO | None = None, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    stdin = stdin if stdin is not None else sys.stdin
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        path = map_path(args)
        if args.map_action == "add":
            _add(path, args, stdin, out)
        elif args.map_action == "remove":
            _remove(path, args.user, out)
        elif args.map_action == "list":
            _list(path, out)
        elif not _check(path, args, out):
            return 1
    except (CommandError, MapError) as exc:
        err.write(f"s3dsi map {args.map_action}: error: {exc}\n")
        return 1
    return 0
