"""``s3dsi janitor``: abort this service's unfinished multipart uploads that nobody resumed, whichever
host created them.

The uploads are found from the restart records in S3 (``transfer/janitor.py``), in every bucket the
credentials of the map can list, plus the buckets the local cache names and those given with
``--bucket``. It runs with the identity the daemon runs with: as root with ``process_user`` set, it
first drops to that account for good and reads that account's map (and local cache under its
state_dir/uploads or its own ``~/.local/state/s3dsi``); in the per-session model each user runs it with
their own map (and cache, ``journal_directory``)."""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from typing import Any

from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account, AccountError, PrivilegeError, drop_privileges
from s3dsi.server.backends import MapFileBackends
from s3dsi.storage.s3 import S3BackendFactory
from s3dsi.storage.s3clients import S3Config
from s3dsi.transfer.janitor import sweep_all
from s3dsi.transfer.journal import UploadJournal


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "janitor", help="abort unfinished uploads kept for restart that are older than orphan_upload_age")
    add_config_arguments(p)
    p.add_argument("--max-age", type=float, metavar="SECONDS",
                   help="abort uploads untouched for this long (default: orphan_upload_age)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be aborted")
    p.add_argument("--bucket", action="append", default=[], metavar="NAME",
                   help="also sweep this bucket (e.g. one of another account, which ListBuckets does not "
                        "show); repeat for several")
    p.set_defaults(func=run)


def journal_directory(settings: Settings) -> str | None:
    """The state directory whose journal this user's sessions wrote (None: the user's own default).

    A root daemon without process_user runs each session as its user, journalling under
    ``state_dir/users/NAME`` (docs/admin.md); that directory exists only if such a daemon made it.
    """
    state_dir = settings.state_dir
    if state_dir is None or os.geteuid() == 0 or settings.process_user or settings.allow_root:
        return state_dir
    try:
        name = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return state_dir
    own = os.path.join(state_dir, "users", name)
    return own if os.path.isdir(own) else state_dir


def become_service_account(settings: Settings) -> Account | None:
    """Root with process_user set: drop to that account for good, as the daemon does, so that the sweep
    reads the journal and the credential map the daemon uses (its state_dir or its own default, its map)
    with its identity. None when there is nothing to switch (not root, or no process_user)."""
    if os.geteuid() != 0 or not settings.process_user:
        return None
    account = Account.lookup(settings.process_user, settings.process_group)
    drop_privileges(account)
    return account


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        become_service_account(settings)
    except (ConfigError, AccountError) as err:
        print(f"s3dsi janitor: {err}", file=sys.stderr)
        return 2
    except PrivilegeError as err:
        print(f"s3dsi janitor: {err}", file=sys.stderr)
        return 1
    journal = UploadJournal(journal_directory(settings))
    backends = MapFileBackends(settings, S3BackendFactory(S3Config.from_settings(settings)))
    max_age = args.max_age if args.max_age is not None else float(settings.orphan_upload_age)
    result = sweep_all(backends.users(), backends.backend_for, journal, max_age=max_age, hints=args.bucket,
                       dry_run=args.dry_run)
    verb = "would abort" if args.dry_run else "aborted"
    for swept in result.aborted:
        print(f"{verb}: {swept.describe()}")
    for swept, reason in result.failed:
        print(f"failed: {swept.describe()}: {reason}", file=sys.stderr)
    for where, reason in result.unreadable:
        print(f"not swept: {where}: {reason}", file=sys.stderr)
    print(f"{len(result.aborted)} {verb}, {result.kept} kept (younger than {max_age:.0f} s), "
          f"{len(result.failed)} failed, {len(result.buckets)} bucket(s) swept")
    return 1 if result.failed else 0
