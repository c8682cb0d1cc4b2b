"""Account look-ups and the verified privilege drop (the drop itself runs in a forked child)."""

from __future__ import annotations

import os
import pwd

import pytest

from s3dsi.daemon.accounts import (
    Account,
    AccountError,
    PrivilegeError,
    can_switch_users,
    drop_privileges,
    effective_capabilities,
    verify_dropped,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")


def test_lookup_by_name_and_by_uid() -> None:
    entry = pwd.getpwuid(os.geteuid())
    by_name = Account.lookup(entry.pw_name)
    assert (by_name.uid, by_name.gid, by_name.home) == (entry.pw_uid, entry.pw_gid, entry.pw_dir)
    assert Account.lookup(str(entry.pw_uid)) == by_name


def test_unknown_user_and_group_are_account_errors() -> None:
    with pytest.raises(AccountError, match="no local account"):
        Account.lookup("no-such-user-s3dsi")
    with pytest.raises(AccountError, match="no local group"):
        Account.lookup(pwd.getpwuid(os.geteuid()).pw_name, "no-such-group-s3dsi")


def test_capabilities_are_read_from_proc() -> None:
    caps = effective_capabilities()
    if os.path.exists("/proc/self/status"):
        assert caps is not None
        if os.geteuid() != 0:
            assert caps == 0 or not can_switch_users()


def test_dropping_to_root_is_refused() -> None:
    with pytest.raises(PrivilegeError, match="root"):
        drop_privileges(Account("root", 0, 0, "/root"))


def test_verification_fails_while_still_privileged() -> None:
    other = next((e for e in pwd.getpwall() if e.pw_uid not in (0, os.geteuid())), None)
    if other is None:
        pytest.skip("no other account")
    with pytest.raises(PrivilegeError, match="incomplete"):
        verify_dropped(Account(other.pw_name, other.pw_uid, other.pw_gid, other.pw_dir))


@needs_root
def test_a_drop_is_complete_and_irreversible() -> None:
    nobody = Account.lookup("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports what it sees, then exits without running pytest's cleanup
        os.close(read_end)
        try:
            drop_privileges(nobody)
            try:
                os.setuid(0)
                verdict = b"regained root"
            except PermissionError:
                verdict = b"ok %d %d %s" % (os.getuid(), os.getgid(), os.environ["HOME"].encode())
        except BaseException as exc:
            verdict = repr(exc).encode()
        os.write(write_end, verdict)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        verdict = pipe.read()
    os.waitpid(pid, 0)
    assert verdict == b"ok %d %d %s" % (nobody.uid, nobody.gid, nobody.home.encode())
