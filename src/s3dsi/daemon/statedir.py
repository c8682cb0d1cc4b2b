"""The service-user model's state directory: root makes ``state_dir/uploads`` (the restart journal) the
service account's before the privilege drop, and says when the account could not use it.

``state_dir`` itself is left as it is when it exists (systemd's StateDirectory=, root-owned: systemd
changes a tree back to root when its top belongs to someone else), but the account must be able to enter
it; a missing one is created for the account, mode 0700. ``uploads`` becomes the account's, mode 0700;
journal entries root left in it (an older run as root) are handed over too. Nothing is followed through
a symbolic link, so a directory the account controls cannot point root at another file.
"""

from __future__ import annotations

import contextlib
import os
import stat

from s3dsi.daemon.accounts import Account

JOURNAL_SUBDIR = "uploads"


class StateDirError(Exception):
    """The service account could not use state_dir; the message says what to change."""


def can_enter(info: os.stat_result, account: Account, groups: frozenset[int] | None = None) -> bool:
    """Whether ``account`` may traverse a directory with ``info`` (by its mode bits, as the kernel does)."""
    if account.uid == 0:
        return True
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    member = groups if groups is not None else frozenset(os.getgrouplist(account.name, account.gid))
    if info.st_gid in member:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _path_to(directory: str) -> list[str]:
    """``directory`` and every directory above it, top first."""
    parts = [directory]
    while os.path.dirname(parts[-1]) != parts[-1]:
        parts.append(os.path.dirname(parts[-1]))
    return parts[::-1]


def service_state_problem(state_dir: str, account: Account) -> str | None:
    """Why ``account`` could not keep its restart journal under ``state_dir`` once root prepared it
    (None: it could). For check-config and for the start-up check."""
    existing = os.path.abspath(state_dir)
    while not os.path.lexists(existing):  # the rest is created at start, for the account
        existing = os.path.dirname(existing)
    try:
        info = os.stat(existing)
    except OSError as err:
        return f"{existing}: {err.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{existing}: not a directory"
    groups = frozenset(os.getgrouplist(account.name, account.gid))
    for directory in _path_to(os.path.realpath(existing)):
        info = os.stat(directory)
        if not can_enter(info, account, groups):
            return (f"{directory}: {account.name} cannot enter it (owner uid {info.st_uid}, mode "
                    f"{stat.S_IMODE(info.st_mode):04o}), so not state_dir either: make it searchable by "
                    "that account (chmod 0755, as the packaged unit's StateDirectoryMode does for "
                    "/var/lib/s3dsi) or give state_dir to the account")
    journal = os.path.join(state_dir, JOURNAL_SUBDIR)
    try:
        entry = os.lstat(journal)
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"{journal}: {err.strerror}"
    if not stat.S_ISDIR(entry.st_mode):
        return f"{journal}: not a directory (a symbolic link or a file): remove it"
    return None


def prepare_service_state_dir(state_dir: str, account: Account) -> str:
    """As root, before dropping to ``account``: its journal directory ``state_dir/uploads``, owned by
    it, mode 0700 (returned). StateDirError when the account could not use it."""
    problem = service_state_problem(state_dir, account)
    if problem is not None:
        raise StateDirError(problem)
    missing = [d for d in _path_to(os.path.abspath(state_dir)) if not os.path.lexists(d)]
    for directory in missing[:-1]:
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
            os.chmod(directory, 0o755)  # noqa: S103 - whatever the umask: the account passes through
    if missing:
        with contextlib.suppress(FileExistsError):
            os.mkdir(state_dir, 0o700)
            os.chown(state_dir, account.uid, account.gid)
    journal = os.path.join(state_dir, JOURNAL_SUBDIR)
    with contextlib.suppress(FileExistsError):
        os.mkdir(journal, 0o700)
    try:
        fd = os.open(journal, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise StateDirError(f"{journal}: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if info.st_uid != account.uid:
            os.fchown(fd, account.uid, account.gid)
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
        _hand_over_entries(fd, account)
    finally:
        os.close(fd)
    return journal


def _hand_over_entries(dir_fd: int, account: Account) -> None:
    """Journal entries root wrote become the account's (plain files with one name only)."""
    for name in os.listdir(dir_fd):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and info.st_uid == 0:
                os.fchown(fd, account.uid, account.gid)
        finally:
            os.close(fd)
