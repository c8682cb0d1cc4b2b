"""``s3dsi passwd USER``: set a clear-text login password (argon2id) in the password file.

The password comes from the terminal (asked twice, not echoed) or, when stdin is not a terminal, from
its first line; never from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, TextIO

from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.identity.passwords import (
    MAX_PASSWORD_CHARS,
    PasswordFileError,
    check_user_name,
    update_password_file,
)
from s3dsi.identity.securefile import admin_owner_uid
from s3dsi.observability.logging import register_secret


class CommandError(Exception):
    pass


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "passwd", help="set USER's clear-text login password in the password file (pw_file)")
    p.add_argument("user", metavar="USER")
    p.add_argument("--file", metavar="F", help="password file (default: pw_file from the configuration)")
    add_config_arguments(p)
    p.set_defaults(func=run)


def password_path(args: argparse.Namespace) -> str:
    if args.file:
        return str(args.file)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        raise CommandError(f"{exc} (give the password file with --file)") from None
    if not settings.password_file:
        raise CommandError("no password file is configured (pw_file); give one with --file")
    return settings.password_file


def read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        first = getpass.getpass("New password: ")
        register_secret(first, transient=True)
        if getpass.getpass("Retype new password: ") != first:
            raise CommandError("the passwords do not match")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
        register_secret(password, transient=True)
    if not password:
        raise CommandError("empty password")
    if len(password) > MAX_PASSWORD_CHARS:
        raise CommandError(f"password longer than {MAX_PASSWORD_CHARS} characters")
    return password


def run(args: argparse.Namespace, stdin: TextIO | None = None, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    stdin = stdin if stdin is not None else sys.stdin
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        check_user_name(args.user)
        path = password_path(args)
        password = read_password(stdin)
        update_password_file(path, args.user, password, owner_uid=admin_owner_uid(path))
    except (CommandError, PasswordFileError) as exc:
        err.write(f"s3dsi passwd: error: {exc}\n")
        return 1
    out.write(f"password of {args.user!r} set in {path}\n")
    return 0
