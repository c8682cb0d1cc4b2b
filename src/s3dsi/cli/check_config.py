"""``s3dsi check-config``: load the configuration as ``serve`` would, show it with its origins, and say
whether the daemon would start (exit 0) or not (exit 1, naming the file and line at fault).
"""

from __future__ import annotations

import argparse
import dataclasses
import grp
import os
import pwd
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from s3dsi.cli.lifecycle import check_lifecycle
from s3dsi.cli.probe import bucket_region, first_mapped_user, user_clients
from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.config.loader import BOOKKEEPING_FIELDS, is_per_user_path
from s3dsi.config.s3policy import PolicyError, narrow, site_policy
from s3dsi.config.settings import Settings
from s3dsi.config.values import format_size
from s3dsi.daemon.accounts import Account, AccountError
from s3dsi.daemon.statedir import JOURNAL_SUBDIR, service_state_problem
from s3dsi.daemon.workers import worker_count
from s3dsi.identity.passwords import PasswordFile, PasswordFileError
from s3dsi.identity.usermap import MapError, UserMap
from s3dsi.observability.levels import parse_s3_debug
from s3dsi.observability.logging import REDACTED, is_secret_name, redact_text
from s3dsi.protocol.disabled import list_warnings
from s3dsi.protocol.errors import DsiError
from s3dsi.security.credentials import CredentialError
from s3dsi.security.gridmap import GridMap, GridMapError
from s3dsi.security.trust import TrustStore
from s3dsi.server.security import SecurityServices

_SIZE_FIELDS = frozenset({"part_size_min", "part_size_max", "memory_budget"})


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check-config", help="validate the configuration and show where each setting comes from",
        description="Load the configuration exactly as 'serve' would and report problems. Exit status 0 "
                    "means the daemon would start.")
    add_config_arguments(p)
    p.add_argument("--strict", action="store_true", help="also fail (exit 1) when there are warnings")
    p.add_argument("--bucket", action="append", default=[], metavar="NAME",
                   help="also ask S3 whether this bucket has a lifecycle rule that aborts incomplete "
                        "multipart uploads (repeat for several)")
    p.add_argument("--user", metavar="USER",
                   help="whose mapped credentials --bucket uses (default: the first user of the map)")
    p.set_defaults(func=run)


def _process_uid(settings: Settings) -> int | None:
    """The uid sessions will run as (process_user when root and it exists), None when unknown."""
    if os.geteuid() != 0 or not settings.process_user:
        return os.geteuid()
    try:
        return pwd.getpwnam(settings.process_user).pw_uid
    except KeyError:
        return None


def _check_disabled_commands(settings: Settings, found: Findings) -> None:
    source = settings.sources.get("disable_command_list", "disable_command_list")
    found.warnings.extend(list_warnings(settings.disable_command_list, source))


def _check_accounts(settings: Settings, found: Findings) -> None:
    if settings.process_user:
        try:
            pwd.getpwnam(settings.process_user)
        except KeyError:
            found.warnings.append(f"{settings.sources['process_user']}: process_user "
                                  f"{settings.process_user!r} does not exist on this host; 'serve' started "
                                  "as root refuses to start until it does")
    elif os.geteuid() == 0 and settings.allow_root:
        found.warnings.append("process_user is not set and allow_root is 1: sessions would run as root")
    elif os.geteuid() == 0:
        found.notes.append("process_user is not set: started as root, 'serve' runs each session in its own "
                           "process as the logged-in user, who needs a local account")
    if settings.process_group:
        try:
            grp.getgrnam(settings.process_group)
        except KeyError:
            found.warnings.append(f"{settings.sources['process_group']}: process_group "
                                  f"{settings.process_group!r} does not exist on this host")


def _per_session(settings: Settings) -> bool:
    """Whether ``serve`` would run each session in its own process as the logged-in user."""
    return os.geteuid() == 0 and not settings.process_user and not settings.allow_root


def _check_map(settings: Settings, found: Findings) -> UserMap | None:
    path = settings.s3_map_filename
    template = settings.s3_map_template
    if _per_session(settings) and (template is None or is_per_user_path(template)):
        # s3_map_filename was expanded for root here; sessions expand it for their own user
        found.notes.append(f"credential maps: each user's own {template or '~/.globus/s3'}, read as that "
                           "user at login (check one with 's3dsi map check' run as that user)")
        return None
    if path is None:
        return None
    explicit = settings.sources["s3_map_filename"] != "default"
    uid = _process_uid(settings)
    if uid is None:
        found.warnings.append(f"{path}: not checked (process_user does not exist)")
        return None
    if not os.path.lexists(path):
        message = f"{path}: credential map does not exist"
        if explicit:
            found.errors.append(f"{settings.sources['s3_map_filename']}: s3_map_filename: {message}")
        else:
            found.warnings.append(f"{message}; every login fails until 's3dsi map add' creates it")
        return None
    try:
        usermap = UserMap.load(path, owner_uid=uid)
    except MapError as exc:
        found.errors.append(str(exc))
        return None
    found.notes.append(f"credential map {path}: {len(usermap)} user(s)")
    for entry in usermap:  # a line whose policy widens the site's cannot log in
        try:
            narrow(site_policy(settings, entry.user), entry.options.policy)
        except PolicyError as exc:
            found.errors.append(f"{path}: {entry.user}: the line goes beyond the site's S3 policy: {exc}")
    if settings.allow_anonymous and settings.anonymous_user not in usermap:
        found.warnings.append(f"{settings.sources['anonymous_user']}: anonymous_user "
                              f"{settings.anonymous_user!r} has no entry in {path}")
    return usermap


def _check_passwords(settings: Settings, usermap: UserMap | None, found: Findings) -> None:
    if not settings.password_file:
        if not settings.allow_anonymous:
            found.warnings.append("neither password_file (pw_file) nor allow_anonymous is set: every "
                                  "clear-text login will be refused")
        return
    try:
        passwords = PasswordFile.load(settings.password_file)
    except PasswordFileError as exc:
        found.errors.append(f"{settings.sources['password_file']}: password_file: {exc}")
        return
    found.warnings.extend(passwords.warnings)
    found.notes.append(f"password file {settings.password_file}: {len(passwords.users())} user(s)")
    if usermap is not None:
        for user in passwords.users():
            if user not in usermap:
                found.warnings.append(f"{settings.password_file}: user {user!r} has a password but no entry "
                                      "in the credential map")


def _check_writable(settings: Settings, name: str, path: str | None, found: Findings) -> None:
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path)) or "."
    target = path if os.path.exists(path) else directory
    if not os.path.isdir(directory):
        found.errors.append(f"{settings.sources[name]}: {name}: directory {directory} does not exist")
    elif not os.access(target, os.W_OK):
        found.errors.append(f"{settings.sources[name]}: {name}: {target} is not writable")


def _nearest_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.lexists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def _check_state_dir(settings: Settings, found: Findings) -> None:
    """Whether the account that writes the restart journal could write it under state_dir."""
    path = settings.state_dir
    if path is None:
        return
    where = f"{settings.sources.get('state_dir', 'state_dir')}: state_dir"
    if os.geteuid() == 0 and settings.process_user:
        try:
            account = Account.lookup(settings.process_user, settings.process_group)
        except AccountError:
            return  # reported with process_user
        problem = service_state_problem(path, account)
        if problem is not None:
            found.errors.append(f"{where}: {problem}")
        elif not os.path.lexists(path):
            found.notes.append(f"state_dir {path}: created at start for {account.name} (mode 0700)")
        return
    if _per_session(settings):
        # root makes state_dir/users/NAME for each user, who must be able to enter state_dir to reach it
        existing = _nearest_existing(path)
        info = os.stat(existing)
        if not info.st_mode & stat.S_IXOTH:
            found.errors.append(f"{where}: {existing}: sessions run as their users, who cannot enter it "
                                f"(mode {stat.S_IMODE(info.st_mode):04o}): chmod 0755 it")
        return
    journal = os.path.join(path, JOURNAL_SUBDIR)
    target = _nearest_existing(journal)
    if not os.path.isdir(target) or not os.access(target, os.W_OK | os.X_OK):
        found.errors.append(f"{where}: {target} is not writable by {Account.current().name}, who keeps the "
                            "restart journal there")


def _check_security(settings: Settings, found: Findings) -> None:
    """GSI/FTPS: the host (and FTPS) credential as ``serve`` loads it, the CAs, the grid-mapfile."""
    try:
        services = SecurityServices.load(settings)
    except CredentialError as err:
        found.errors.append(f"GSI/FTPS credential: {err}")
        return
    if services.gsi is None:
        found.notes.append("GSI (gsiftp://): off, no host certificate (X509_USER_CERT / X509_USER_KEY)")
    else:
        store = TrustStore.load(services.cert_dir)
        found.warnings.extend(f"X509_CERT_DIR: {problem}" for problem in store.problems)
        found.notes.append(f"GSI (gsiftp://): host certificate {services.host_dn}; {len(store.cas)} CA(s) in "
                           f"{services.cert_dir}")
        try:
            gridmap = GridMap.load(services.gridmap)
            found.notes.append(f"grid-mapfile {services.gridmap}: {len(gridmap.entries)} DN(s)")
        except GridMapError as err:
            found.warnings.append(f"grid-mapfile: {err} (every GSI login would be refused)")
    found.notes.append(f"FTPS (AUTH TLS): {'on' if services.ftps is not None else 'off, no certificate'}")
    if settings.require_tls and not services.mechanisms:
        found.errors.append("require_tls 1 without a certificate for GSI or FTPS: every login would be "
                            "refused")


def _check_workers(settings: Settings, found: Findings) -> None:
    if _per_session(settings):
        if settings.workers > 1:
            found.warnings.append(f"{settings.sources['workers']}: workers is ignored in the per-session "
                                  "process model (one process per connection)")
        return
    count = worker_count(settings)
    how = "as configured" if settings.workers else f"auto: {os.cpu_count() or 1} core(s), memory_budget"
    if count > 1:
        found.notes.append(f"workers: {count} session-serving processes ({how}), each with "
                           f"{format_size(settings.memory_budget // count)} of memory_budget")
    else:
        found.notes.append(f"workers: 1, every session in one process ({how})")


def check_settings(settings: Settings) -> Findings:
    """Everything ``serve`` would trip over at start-up, beyond what loading already validated."""
    found = Findings(warnings=list(settings.warnings))
    _check_accounts(settings, found)
    _check_workers(settings, found)
    _check_disabled_commands(settings, found)
    usermap = _check_map(settings, found)
    _check_passwords(settings, usermap, found)
    _check_writable(settings, "log_single", settings.log_single, found)
    _check_writable(settings, "log_transfer", settings.log_transfer, found)
    _check_state_dir(settings, found)
    _check_security(settings, found)
    if settings.s3_debug:
        level, path = parse_s3_debug(settings.s3_debug)
        if level:
            _check_writable(settings, "s3_debug", path, found)
    if settings.ca_bundle and not os.path.isfile(settings.ca_bundle):
        found.errors.append(f"{settings.sources['ca_bundle']}: ca_bundle: {settings.ca_bundle} is not a file")
    return found


def check_lifecycles(settings: Settings, buckets: list[str], user: str | None, found: Findings) -> None:
    """Each bucket's AbortIncompleteMultipartUpload rule, asked with a mapped user's credentials: a note
    when one covers every key, a warning otherwise (the daemon still starts)."""
    try:
        client_for, config = user_clients(settings, user or first_mapped_user(settings))
    except (MapError, AccountError, OSError) as err:
        found.warnings.append(f"lifecycle rules not checked: {err}")
        return
    except DsiError as err:  # credentials that cannot be obtained, a line beyond the site's policy
        found.warnings.append(f"lifecycle rules not checked: {err.text}")
        return
    for bucket in buckets:
        region = bucket_region(client_for(config.region), bucket, config.region)
        finding = check_lifecycle(client_for(region), bucket)
        (found.notes if finding.state == "rule" else found.warnings).append(finding.describe(bucket))


def format_value(name: str, value: object) -> str:
    if value is None:
        return "(unset)"
    if name == "workers" and value == 0:
        return "auto"
    if name in _SIZE_FIELDS and isinstance(value, int):
        return f"{format_size(value)} ({value} bytes)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value) or "(none)"
    return redact_text(str(value))


def render(settings: Settings, found: Findings, out: TextIO) -> None:
    out.write("Configuration files read, in order:\n")
    for path in settings.config_files or ("(none: built-in defaults only)",):
        out.write(f"  {path}\n")
    names = [f.name for f in dataclasses.fields(Settings) if f.name not in BOOKKEEPING_FIELDS]
    width = max(len(n) for n in names)
    rows = [(n, format_value(n, getattr(settings, n)), settings.sources.get(n, "default")) for n in names]
    value_width = min(max(len(r[1]) for r in rows), 44)
    out.write("\nEffective settings (value, then where it comes from):\n")
    for name, value, source in rows:
        out.write(f"  {name:<{width}}  {value:<{value_width}}  {source}\n")
    if settings.environment:
        out.write("\nEnvironment set by $NAME lines:\n")
        for env_name, env_value in settings.environment.items():
            shown = REDACTED if is_secret_name(env_name) else redact_text(env_value)
            out.write(f"  {env_name}={shown}\n")
    if found.notes:
        out.write("\n")
    for note in found.notes:
        out.write(f"{note}\n")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdout = out if out is not None else sys.stdout
    stderr = err if err is not None else sys.stderr
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        stderr.write(f"s3dsi check-config: error: {redact_text(str(exc))}\n")
        stderr.write("s3dsi check-config: the daemon would NOT start\n")
        return 1
    found = check_settings(settings)
    if args.bucket:
        check_lifecycles(settings, list(dict.fromkeys(args.bucket)), args.user, found)
    else:
        found.notes.append("lifecycle rules not checked: give --bucket NAME to see whether a bucket aborts "
                           "incomplete multipart uploads (docs/admin.md recommends it)")
    render(settings, found, stdout)
    if found.warnings:
        stdout.write("\nWarnings:\n")
    for warning in found.warnings:
        stdout.write(f"  warning: {redact_text(warning)}\n")
    stdout.flush()
    for error in found.errors:
        stderr.write(f"error: {redact_text(error)}\n")
    failed = bool(found.errors) or (args.strict and bool(found.warnings))
    if failed:
        stderr.write("s3dsi check-config: the daemon would NOT start\n" if found.errors else
                     "s3dsi check-config: warnings present (--strict)\n")
        return 1
    stdout.write(f"\nConfiguration OK ({len(found.warnings)} warning(s)): the daemon would start.\n")
    return 0
