"""The service account's restart journal directory, prepared by root before the privilege drop."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.daemon.accounts import Account
from s3dsi.daemon.statedir import StateDirError, prepare_service_state_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hands directories to another account: needs root")
NOBODY = Account.lookup("nobody")


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="s3dsi-statedir-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def owner_and_mode(path: Path) -> tuple[str, int]:
    info = path.lstat()
    return pwd.getpwuid(info.st_uid).pw_name, stat.S_IMODE(info.st_mode)


def test_a_missing_state_dir_is_created_for_the_account(base: Path) -> None:
    old_umask = os.umask(0o027)  # the unit's UMask
    try:
        journal = prepare_service_state_dir(str(base / "var" / "state"), NOBODY)
    finally:
        os.umask(old_umask)
    assert journal == str(base / "var" / "state" / "uploads")
    assert owner_and_mode(base / "var") == ("root", 0o755)
    assert owner_and_mode(base / "var" / "state") == ("nobody", 0o700)
    assert owner_and_mode(base / "var" / "state" / "uploads") == ("nobody", 0o700)


def test_an_existing_root_state_dir_stays_roots_and_the_journal_becomes_the_accounts(base: Path) -> None:
    state = base / "state"
    state.mkdir(mode=0o755)  # systemd's StateDirectory=, StateDirectoryMode=0755
    (state / "uploads").mkdir(mode=0o755)
    (state / "uploads" / "entry.json").write_text("{}")  # left by an earlier run as root
    (state / "uploads" / "link.json").symlink_to("/etc/passwd")
    prepare_service_state_dir(str(state), NOBODY)
    assert owner_and_mode(state) == ("root", 0o755)
    assert owner_and_mode(state / "uploads") == ("nobody", 0o700)
    assert owner_and_mode(state / "uploads" / "entry.json")[0] == "nobody"
    assert os.stat("/etc/passwd").st_uid == 0 and (state / "uploads" / "link.json").lstat().st_uid == 0
    prepare_service_state_dir(str(state), NOBODY)  # again at the next start: nothing changes
    assert owner_and_mode(state / "uploads") == ("nobody", 0o700)


def test_what_the_account_could_not_use_is_refused(base: Path) -> None:
    state = base / "state"
    state.mkdir(mode=0o750)  # systemd's former StateDirectoryMode=0750
    with pytest.raises(StateDirError, match="nobody cannot enter it"):
        prepare_service_state_dir(str(state), NOBODY)
    assert not (state / "uploads").exists()
    state.chmod(0o755)
    (state / "uploads").symlink_to(base)
    with pytest.raises(StateDirError, match="not a directory"):
        prepare_service_state_dir(str(state), NOBODY)
    assert owner_and_mode(base)[0] == "root"
