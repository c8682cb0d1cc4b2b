"""``s3dsi map list|add|remove|check``: maintain the S3 credential map (``~/.globus/s3``).

Keys are read from stdin (two lines: access key id, then secret) or, on a terminal, asked for with the
secret hidden; never taken from the command line, where other users could see them in ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, TextIO

from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.identity.securefile import admin_owner_uid
from s3dsi.identity.usermap import (
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
                             help="add or replace USER's keys (read from stdin or asked for)")
    add.add_argument("user", metavar="USER")
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


def _add(path: str, user: str, stdin: TextIO, out: TextIO) -> None:
    check_entry(user, "x", "x")
    owner = admin_owner_uid(path)
    text = read_map_text(path, owner_uid=owner)
    existing = UserMap.parse(text.encode("utf-8"), path).lookup(user)
    access_key_id, secret = read_keys(stdin)
    entry = check_entry(user, access_key_id, secret, existing.extra if existing else None)
    write_map_text(path, edit_map_text(text, put=entry), owner_uid=owner)
    out.write(f"{'replaced' if existing else 'added'} the entry of {user!r} in {path}\n")


def _remove(path: str, user: str, out: TextIO) -> None:
    owner = admin_owner_uid(path)
    text = read_map_text(path, owner_uid=owner)
    if user not in UserMap.parse(text.encode("utf-8"), path):
        raise CommandError(f"{path}: no entry for {user!r}")
    write_map_text(path, edit_map_text(text, remove=user), owner_uid=owner)
    out.write(f"removed the entry of {user!r} from {path}\n")


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
            _add(path, args.user, stdin, out)
        elif args.map_action == "remove":
            _remove(path, args.user, out)
        elif args.map_action == "list":
            _list(path, out)
        else:
            usermap = UserMap.load(path, owner_uid=admin_owner_uid(path))
            out.write(f"{path}: OK, {len(usermap)} user(s)\n")
    except (CommandError, MapError) as exc:
        err.write(f"s3dsi map {args.map_action}: error: {exc}\n")
        return 1
    return 0
