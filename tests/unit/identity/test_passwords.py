"""The clear-text login password file and the authenticator."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from s3dsi.config.settings import Settings
from s3dsi.identity import passwords
from s3dsi.identity.auth import Authenticator
from s3dsi.identity.passwords import PasswordFile, PasswordFileError, hash_password, update_password_file
from s3dsi.observability.logging import redact_text

SHA512 = ("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35"
          "inz1")  # "Hello world!"
SHA256 = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"  # "Hello world!"


def cheap(password: str) -> str:
    return hash_password(password, time_cost=1, memory_cost=1024)


def pwfile(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "passwd"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_new_hashes_are_argon2id() -> None:
    stored = hash_password("s3cret-pass")
    assert stored.startswith("$argon2id$")
    assert passwords.verify_hash(stored, "s3cret-pass")
    assert not passwords.verify_hash(stored, "s3cret-pasS")


def test_all_three_schemes_verify() -> None:
    table = PasswordFile.parse(f"alice:{SHA512}\nbob:{SHA256}\ncarol:{cheap('pw-carol')}\n".encode())
    assert table.verify("alice", "Hello world!")
    assert table.verify("bob", "Hello world!")
    assert table.verify("carol", "pw-carol")
    assert not table.verify("alice", "hello world!")
    assert not table.verify("carol", "pw-Carol")
    assert not table.verify("dave", "Hello world!")
    assert table.warnings == ()


def test_passwd_style_lines_comments_crlf_bom_unicode() -> None:
    text = f"\ufeff# users\r\n\r\n  alice:{SHA512}:1000:1000:Alice:/home/alice:/bin/sh\r\nzoë:{SHA256}\r\n"
    table = PasswordFile.parse(text.encode())
    assert table.users() == ["alice", "zoë"]
    assert table.verify("zoë", "Hello world!")
    assert table.verify("alice", "Hello world!")


@pytest.mark.parametrize(("text", "message"), [
    ("alice\n", r"f:1: expected 'user:HASH'"),
    ("alice:\n", r"f:1: expected 'user:HASH'"),
    (f"# x\n:{SHA512}\n", r"f:2: user name"),
    (f"al ice:{SHA512}\n", r"f:1: user name"),
    (f"alice:{SHA512}\nalice:{SHA256}\n", r"f:2: duplicate entry .* line 1"),
    ("alice:$6$x\x00y\n", r"f:1: contains a NUL byte"),
])
def test_malformed_files(text: str, message: str) -> None:
    with pytest.raises(PasswordFileError, match=message) as info:
        PasswordFile.parse(text.encode(), "f")
    assert SHA512 not in str(info.value)


def test_unusable_hashes_are_warnings_and_never_verify() -> None:
    text = ("a:x\nb:!\nc:*\nd:$1$abc$def\ne:$6$rounds=5000000$salt$" + "a" * 86 + "\n"
            "f:$argon2id$v=19$m=4194304,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n")
    table = PasswordFile.parse(text.encode(), "f")
    assert len(table.warnings) == 6
    assert all(w.startswith("f:") and "cannot log in" in w for w in table.warnings)
    assert not any(table.verify(user, "x") for user in "abcdef")


def test_every_verification_costs_one_argon2_and_one_sha_crypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing must not tell which names exist: an unknown name, a locked entry, a SHA-crypt user and an
    argon2id user each cost one argon2id and one SHA-crypt verification (the user's own hash for one of
    them, dummies of default cost for the rest)."""
    argon2_user = cheap("pw")
    table = PasswordFile.parse(f"alice:{SHA512}\nbob:!\ncarol:{argon2_user}\ndave:{SHA256}\n".encode())
    argon2: list[str] = []
    sha: list[str] = []
    real_verify = passwords.verify_hash
    real_sha = passwords.shacrypt.verify

    def spy_verify(stored: str, password: str) -> bool:
        if stored.startswith("$argon2id$"):
            argon2.append(stored)
        return real_verify(stored, password)

    def spy_sha(password: str, stored: str) -> bool:
        sha.append(stored)
        return real_sha(password, stored)

    monkeypatch.setattr(passwords, "verify_hash", spy_verify)
    monkeypatch.setattr(passwords.shacrypt, "verify", spy_sha)
    cases = [("mallory", "guess", False), ("bob", "guess", False), ("alice", "Hello world!", True),
             ("alice", "guess", False), ("carol", "pw", True), ("carol", "guess", False),
             ("dave", "Hello world!", True)]
    for user, password, expected in cases:
        argon2.clear()
        sha.clear()
        assert table.verify(user, password) is expected, user
        assert len(argon2) == 1 and len(sha) == 1, (user, argon2, sha)
        assert argon2[0].startswith("$argon2id$") and sha[0].startswith(("$5$", "$6$"))
    sha.clear()
    table.verify("alice", "x")
    assert sha == [SHA512]  # the user's own hash, not a dummy
    argon2.clear()
    table.verify("carol", "x")
    assert argon2 == [argon2_user]


def test_absurdly_long_passwords_are_refused_without_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    table = PasswordFile.parse(f"alice:{SHA512}\n".encode())
    monkeypatch.setattr(passwords, "verify_hash", lambda *_a: pytest.fail("hashed"))
    assert not table.verify("alice", "x" * 100_000)


def test_load_checks_owner_type_and_write_permission(tmp_path: Path) -> None:
    path = pwfile(tmp_path, f"alice:{SHA512}\n")
    assert PasswordFile.load(str(path)).verify("alice", "Hello world!")
    path.chmod(0o644)
    assert any("readable by group or others" in w for w in PasswordFile.load(str(path)).warnings)
    for mode in (0o620, 0o602, 0o666):
        path.chmod(mode)
        with pytest.raises(PasswordFileError, match="too open"):
            PasswordFile.load(str(path))
    path.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(PasswordFileError, match="symbolic link"):
        PasswordFile.load(str(link))
    with pytest.raises(PasswordFileError, match="no such file"):
        PasswordFile.load(str(tmp_path / "absent"))
    if os.geteuid() == 0:
        os.chown(path, 54321, 54321)
        with pytest.raises(PasswordFileError, match="owned by uid 54321"):
            PasswordFile.load(str(path))


def test_update_creates_and_changes_entries_atomically(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "hash_password", cheap)
    path = tmp_path / "etc" / "passwd"
    update_password_file(str(path), "alice", "first-pass")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PasswordFile.load(str(path)).verify("alice", "first-pass")
    path.write_text(path.read_text() + f"# keep me\nbob:{SHA512}:1000:100\n")
    update_password_file(str(path), "bob", "second-pass")
    update_password_file(str(path), "alice", "third-pass")
    table = PasswordFile.load(str(path))
    assert table.verify("bob", "second-pass")
    assert table.verify("alice", "third-pass")
    assert not table.verify("alice", "first-pass")
    text = path.read_text()
    assert "# keep me" in text
    assert text.count("bob:") == 1
    assert ":1000:100\n" in text
    assert "third-pass" not in text
    assert sorted(os.listdir(path.parent)) == ["passwd"]
    with pytest.raises(PasswordFileError, match="user name"):
        update_password_file(str(path), "bad:user", "x")


def test_authenticator_with_a_password_file() -> None:
    table = PasswordFile.parse(f"alice:{SHA512}\n".encode())
    auth = Authenticator(table)
    assert auth.authenticate("alice", "Hello world!") == "alice"
    assert auth.authenticate("alice", "wrong") is None
    assert auth.authenticate("anonymous", "x@y") is None
    assert auth.authenticate("ftp", "") is None


def test_authenticator_without_password_file_refuses_everyone_but_anonymous() -> None:
    assert Authenticator(None).authenticate("alice", "Hello world!") is None
    anon = Authenticator(None, allow_anonymous=True, anonymous_user="public")
    assert anon.authenticate("anonymous", "me@example.org") == "public"
    assert anon.authenticate("ftp", "") == "public"
    assert anon.authenticate("alice", "Hello world!") is None
    star = Authenticator(None, allow_anonymous=True, anonymous_user="public", anonymous_names=("*",))
    assert star.authenticate("whoever", "x") == "public"
    with pytest.raises(ValueError, match="anonymous_user"):
        Authenticator(None, allow_anonymous=True)


def test_authenticator_from_settings(tmp_path: Path) -> None:
    path = pwfile(tmp_path, f"alice:{SHA256}\n")
    auth = Authenticator.from_settings(Settings(password_file=str(path)))
    assert auth.authenticate("alice", "Hello world!") == "alice"
    assert Authenticator.from_settings(Settings()).authenticate("alice", "Hello world!") is None
    with pytest.raises(PasswordFileError):
        Authenticator.from_settings(Settings(password_file=str(tmp_path / "absent")))


def test_only_right_passwords_are_registered_for_redaction() -> None:
    """A wrong password is client-chosen text: registering it would let anyone blank out log words."""
    auth = Authenticator(PasswordFile.parse(f"alice:{SHA512}\n".encode()))
    assert auth.authenticate("alice", "a-password-someone-typed") is None
    assert redact_text("PASS a-password-someone-typed") == "PASS a-password-someone-typed"
    assert auth.authenticate("alice", "Hello world!") == "alice"
    assert "Hello world!" not in redact_text("said Hello world! once")
