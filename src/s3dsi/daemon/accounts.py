"""Local accounts the daemon runs as, and the one-way privilege drop (setgid, initgroups, setuid).

A drop is proven before anything runs on: every real, effective and saved id must be the target's,
the supplementary groups must be the account's, and ``setuid(0)`` must fail. A process that cannot
prove it dropped raises PrivilegeError and must stop; it never carries on as root.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from s3dsi.daemon.hardening import no_core_dumps

CAP_SETGID = 6
CAP_SETUID = 7


class AccountError(Exception):
    """A user or group the configuration names does not exist, or may not be used."""


class PrivilegeError(Exception):
    """Switching to another account failed or could not be verified: the process must not go on."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int  # primary group, or process_group's
    home: str

    @classmethod
    def lookup(cls, user: str, group: str | None = None) -> Account:
        """The account ``user`` (name or numeric uid), with ``group`` as its group when given."""
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except (KeyError, OverflowError):
            raise AccountError(f"no local account named {user!r}") from None
        gid = entry.pw_gid
        if group:
            try:
                gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
            except (KeyError, OverflowError):
                raise AccountError(f"no local group named {group!r}") from None
        return cls(entry.pw_name, entry.pw_uid, gid, entry.pw_dir)

    @classmethod
    def current(cls) -> Account:
        uid = os.geteuid()
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return cls(str(uid), uid, os.getegid(), os.environ.get("HOME", "/"))
        return cls(entry.pw_name, uid, os.getegid(), entry.pw_dir)

    def describe(self) -> str:
        return f"{self.name} (uid {self.uid}, gid {self.gid})"


def effective_capabilities() -> int | None:
    """The CapEff mask of this process, or None when /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        return None
    return None


def can_switch_users() -> bool:
    """Whether this process may become another user (root with CAP_SETUID and CAP_SETGID, and fork)."""
    if os.geteuid() != 0 or not hasattr(os, "fork"):
        return False
    caps = effective_capabilities()
    if caps is None:
        return True
    needed = (1 << CAP_SETUID) | (1 << CAP_SETGID)
    return caps & needed == needed


def drop_privileges(account: Account) -> None:
    """Become ``account`` for good (all threads: glibc applies set*id to every thread), then prove it."""
    if account.uid == 0:
        raise PrivilegeError("refusing to drop privileges to root (uid 0)")
    try:
        os.setresgid(account.gid, account.gid, account.gid)
        os.initgroups(account.name, account.gid)
        os.setresuid(account.uid, account.uid, account.uid)
    except OSError as err:
        raise PrivilegeError(f"cannot switch to {account.describe()}: {err.strerror}") from None
    verify_dropped(account)
    no_core_dumps()  # a uid change reset the dumpable flag to fs.suid_dumpable
    os.environ.update(HOME=account.home, USER=account.name, LOGNAME=account.name)


def verify_dropped(account: Account) -> None:
    """Raise PrivilegeError unless the process is ``account`` with no way back to root."""
    uids, gids = os.getresuid(), os.getresgid()
    if uids != (account.uid,) * 3 or gids != (account.gid,) * 3:
        raise PrivilegeError(f"privilege drop to {account.describe()} incomplete: uids {uids}, gids {gids}")
    expected = set(os.getgrouplist(account.name, account.gid))
    if not set(os.getgroups()) <= expected:
        raise PrivilegeError(f"privilege drop to {account.describe()} kept foreign supplementary groups")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PrivilegeError("setuid(0) still succeeds after the privilege drop")
