"""The per-session model's password hashes: loaded by a forked loader with the usual checks, kept in a
mapping, and unmapped by a session process once it became one user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3dsi.identity import pwstore
from s3dsi.identity.auth import Authenticator
from s3dsi.identity.passwords import PasswordFileError, hash_password
from s3dsi.identity.pwstore import load_isolated


def cheap(password: str) -> str:
    return hash_password(password, time_cost=1, memory_cost=1024)


@pytest.fixture
def pw_file(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text(f"alice:{cheap('alice pw')}\nbob:{cheap('bob pw')}\n# comment\ncarol:!\n")
    path.chmod(0o600)
    return path


def test_verification_over_the_mapping(pw_file: Path) -> None:
    store = load_isolated(str(pw_file))
    assert store.users() == ["alice", "bob", "carol"]
    assert store.verify("alice", "alice pw")
    assert not store.verify("alice", "bob pw")
    assert store.verify("bob", "bob pw")
    assert not store.verify("carol", "")
    assert not store.verify("mallory", "x")
    assert len(store.warnings) == 1 and "carol" not in store.warnings[0] and ":3" not in store.warnings[0]


def test_the_loaders_checks_are_the_usual_ones(pw_file: Path) -> None:
    pw_file.chmod(0o666)
    with pytest.raises(PasswordFileError, match=r"writable by group or others|too open"):
        load_isolated(str(pw_file))
    with pytest.raises(PasswordFileError, match="no such file"):
        load_isolated(str(pw_file.parent / "missing"))
    pw_file.chmod(0o600)
    pw_file.write_text("alice\n")
    with pytest.raises(PasswordFileError, match=":1: expected 'user:HASH'"):
        load_isolated(str(pw_file))


def test_forgetting_keeps_only_the_users_own_hash(pw_file: Path) -> None:
    authenticator = Authenticator(load_isolated(str(pw_file)))
    assert authenticator.authenticate("bob", "bob pw") == "bob"
    authenticator.forget(keep="alice")
    assert authenticator.authenticate("alice", "alice pw") == "alice"
    assert authenticator.authenticate("bob", "bob pw") is None
    store = authenticator.password_file
    assert store is not None and store.closed  # type: ignore[attr-defined]
    authenticator.forget()
    assert authenticator.authenticate("alice", "alice pw") is None


def test_the_caller_never_builds_the_hashes_it_does_not_verify(pw_file: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent reads user names and offsets only: PasswordFile.load runs in the loader, not here."""
    calls: list[int] = []
    real = pwstore.PasswordFile.load

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(os.getpid())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pwstore.PasswordFile, "load", spy)
    store = load_isolated(str(pw_file))
    assert calls == []  # the loader's call happened in the forked process, not in this one
    assert store.verify("bob", "bob pw")
