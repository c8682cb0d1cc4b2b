"""No core dumps and no ptrace for the users a daemon process becomes."""

from __future__ import annotations

import os
import resource

import pytest

from s3dsi.daemon.accounts import Account, drop_privileges
from s3dsi.daemon.hardening import dumpable, no_core_dumps


def in_child(body: object) -> int:
    """Run ``body()`` in a forked process (these attributes must not stick to the test runner); its
    exit status: 0 when every assertion held."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            body()  # type: ignore[operator]
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_no_core_dumps_and_not_dumpable() -> None:
    def body() -> None:
        assert dumpable() is True or os.geteuid() != 0
        no_core_dumps()
        assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
        assert dumpable() is False

    assert in_child(body) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_still_not_dumpable_after_the_drop() -> None:
    """A uid change sets the flag to fs.suid_dumpable: the drop clears it again."""
    def body() -> None:
        no_core_dumps()
        drop_privileges(Account("nobody", 65534, 65534, "/nonexistent"))
        assert dumpable() is False  # so nobody cannot attach to it or read its memory
        assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)

    assert in_child(body) == 0
