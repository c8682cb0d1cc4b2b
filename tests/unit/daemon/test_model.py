"""Which process model a start-up gets, and the refusals."""

from __future__ import annotations

import pwd

import pytest

from s3dsi.config.settings import Settings
from s3dsi.daemon.model import ProcessModel, StartupRefused, choose_process_model


def _unprivileged_account() -> str:
    for entry in pwd.getpwall():
        if entry.pw_uid != 0:
            return entry.pw_name
    pytest.skip("no unprivileged account on this host")


def test_an_unprivileged_start_runs_everything_as_the_invoker() -> None:
    plan = choose_process_model(Settings(), euid=1000, can_switch=False)
    assert plan.model is ProcessModel.INVOKER
    assert plan.warnings == ()


def test_process_user_is_ignored_with_a_warning_when_not_root() -> None:
    plan = choose_process_model(Settings(process_user="globus-s3"), euid=1000, can_switch=False)
    assert plan.model is ProcessModel.INVOKER
    assert "process_user is ignored" in plan.warnings[0]


def test_root_with_process_user_drops_to_that_account() -> None:
    name = _unprivileged_account()
    plan = choose_process_model(Settings(process_user=name), euid=0, can_switch=True)
    assert plan.model is ProcessModel.SERVICE_USER
    assert plan.account is not None
    assert plan.account.name == name
    assert plan.account.uid == pwd.getpwnam(name).pw_uid


def test_process_group_replaces_the_primary_group() -> None:
    name = _unprivileged_account()
    plan = choose_process_model(Settings(process_user=name, process_group="0"), euid=0, can_switch=True)
    assert plan.account is not None
    assert plan.account.gid == 0


def test_a_missing_process_user_is_refused_with_the_fix() -> None:
    with pytest.raises(StartupRefused, match="adduser --system"):
        choose_process_model(Settings(process_user="no-such-user-s3dsi"), euid=0, can_switch=True)


def test_process_user_root_is_refused() -> None:
    with pytest.raises(StartupRefused, match="unprivileged"):
        choose_process_model(Settings(process_user="root"), euid=0, can_switch=True)


def test_process_user_without_setuid_capability_is_refused() -> None:
    with pytest.raises(StartupRefused, match="CAP_SETUID"):
        choose_process_model(Settings(process_user=_unprivileged_account()), euid=0, can_switch=False)


def test_root_without_process_user_forks_per_session() -> None:
    assert choose_process_model(Settings(), euid=0, can_switch=True).model is ProcessModel.PER_SESSION


def test_root_that_cannot_switch_users_is_refused_with_a_clear_message() -> None:
    with pytest.raises(StartupRefused, match=r"refusing to run as root.*process_user globus-s3"):
        choose_process_model(Settings(), euid=0, can_switch=False)


def test_allow_root_is_an_explicit_opt_in_with_a_warning() -> None:
    plan = choose_process_model(Settings(allow_root=True), euid=0, can_switch=False)
    assert plan.model is ProcessModel.ROOT
    assert "run as root" in plan.warnings[0]
