"""Per-session model: whose map a session reads, and what a session process refuses before dropping."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3dsi.config.loader import load_settings
from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account
from s3dsi.daemon.userbackends import SessionUserBackends, map_path_for, user_state_dir
from s3dsi.protocol.errors import PermissionDenied

ALICE = Account("alice", 1500, 1500, "/home/alice")


def test_default_map_is_the_users_own() -> None:
    assert map_path_for(Settings(), ALICE) == "/home/alice/.globus/s3"


def test_a_map_template_is_expanded_for_each_user(tmp_path: Path) -> None:
    conf = tmp_path / "s3.conf"
    conf.write_text("s3_map_filename = $HOME/.config/s3map-$USER\n")
    (tmp_path / "gridftp.d").mkdir()
    settings = load_settings(config_file="/dev/null", config_dir=str(tmp_path / "gridftp.d"),
                             s3_conf=str(conf), environ={"HOME": "/root-home"})
    assert settings.s3_map_template == "$HOME/.config/s3map-$USER"
    assert map_path_for(settings, ALICE) == "/home/alice/.config/s3map-alice"


def test_state_dir_gets_a_directory_per_user() -> None:
    assert user_state_dir(Settings(), ALICE) is None
    assert user_state_dir(Settings(state_dir="/var/lib/s3dsi"), ALICE) == "/var/lib/s3dsi/users/alice"


def never() -> object:
    raise AssertionError("no S3 factory may be made before a successful drop")


def test_logins_without_a_local_account_are_refused_before_any_drop() -> None:
    backends = SessionUserBackends(Settings(), never)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="no local account"):
        backends.backend_for("no-such-user-s3dsi")
    assert backends.account is None


def test_root_sessions_are_refused() -> None:
    backends = SessionUserBackends(Settings(), never)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="never run as root"):
        backends.backend_for("root")
    assert backends.account is None
