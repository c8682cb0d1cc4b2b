"""Binding the admin socket as root: only in a directory only root may change, and handed to the
service account through the directory's descriptor, never by a name someone else could swap."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from s3dsi.daemon import sockets
from s3dsi.daemon.accounts import Account
from s3dsi.daemon.sockets import AdminSocketError, bind_admin

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="handing a socket to another account needs root")
SERVICE = Account("svc", 4242, 4243, "/nonexistent")


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir(mode=0o755)
    return directory


def test_handed_over_with_mode_0660_through_the_directory_descriptor(root_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    chowns: list[tuple[Any, ...]] = []
    chmods: list[Any] = []
    real_chown = os.chown

    def spy_chown(path: Any, uid: int, gid: int, **kwargs: Any) -> None:
        chowns.append((path, uid, gid, kwargs))
        real_chown(path, uid, gid, **kwargs)

    monkeypatch.setattr(sockets.os, "chown", spy_chown)
    monkeypatch.setattr(sockets.os, "chmod", lambda *a, **k: chmods.append(a))
    path = root_dir / "admin.sock"
    with bind_admin(str(path), SERVICE):
        info = path.lstat()
        assert stat.S_ISSOCK(info.st_mode)
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4242, 4243, 0o660)
    assert chmods == []  # the mode comes from the umask at bind: no chmod by name
    assert len(chowns) == 1
    name, uid, gid, kwargs = chowns[0]
    assert (name, uid, gid) == ("admin.sock", 4242, 4243)
    assert kwargs.get("follow_symlinks") is False and isinstance(kwargs.get("dir_fd"), int)


@pytest.mark.parametrize(("owner", "mode"), [(4242, 0o755), (0, 0o775), (0, 0o1777), (0, 0o757)])
def test_a_directory_others_may_change_is_refused(root_dir: Path, owner: int, mode: int) -> None:
    os.chown(root_dir, owner, 0)
    root_dir.chmod(mode)
    target = root_dir / "admin.sock"
    with pytest.raises(AdminSocketError, match="only root may change"):
        bind_admin(str(target), SERVICE)
    assert not os.path.lexists(target)


def test_a_link_left_at_the_name_is_replaced_not_followed(root_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    victim.chmod(0o600)
    (root_dir / "admin.sock").symlink_to(victim)
    with bind_admin(str(root_dir / "admin.sock"), SERVICE):
        assert stat.S_ISSOCK((root_dir / "admin.sock").lstat().st_mode)
    info = victim.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    assert victim.read_text() == "root's file"
