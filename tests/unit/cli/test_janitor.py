"""s3dsi janitor: which restart journal it sweeps."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from s3dsi.cli.janitor import journal_directory
from s3dsi.config.settings import Settings


@pytest.fixture
def nobody(monkeypatch: pytest.MonkeyPatch) -> str:
    entry = pwd.getpwnam("nobody")
    monkeypatch.setattr(os, "geteuid", lambda: entry.pw_uid)
    return entry.pw_name


def test_a_user_of_the_per_session_model_sweeps_their_own_journal(tmp_path: Path, nobody: str) -> None:
    # root without process_user runs each session as its user, journalling under state_dir/users/NAME
    (tmp_path / "users" / nobody).mkdir(parents=True)
    assert journal_directory(Settings(state_dir=str(tmp_path))) == str(tmp_path / "users" / nobody)


def test_other_models_sweep_state_dir(tmp_path: Path, nobody: str) -> None:
    (tmp_path / "users" / nobody).mkdir(parents=True)
    for settings in (Settings(state_dir=str(tmp_path), process_user="globus-s3"),
                     Settings(state_dir=str(tmp_path), allow_root=True)):
        assert journal_directory(settings) == str(tmp_path)
    # no per-user directory: the daemon ran as this user itself (invoker model)
    assert journal_directory(Settings(state_dir=str(tmp_path / "other"))) == str(tmp_path / "other")
    assert journal_directory(Settings()) is None  # the user's own default
