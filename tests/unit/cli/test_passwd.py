"""s3dsi passwd USER."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from s3dsi.cli.main import main
from s3dsi.identity import passwords
from s3dsi.identity.passwords import PasswordFile


class TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    real = passwords.hash_password
    monkeypatch.setattr(passwords, "hash_password", lambda pw: real(pw, time_cost=1, memory_cost=1024))


def test_password_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["passwd", "alice", "--file", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("alice:$argon2id$")
    assert PasswordFile.load(str(path)).verify("alice", "correct horse")
    captured = capsys.readouterr()
    assert "correct horse" not in captured.out + captured.err


def test_password_from_terminal_asked_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "passwd"
    answers = iter(["first-try", "first-tyr", "second", "second"])
    monkeypatch.setattr("sys.stdin", TtyInput())
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["passwd", "alice", "--file", str(path)]) == 1
    assert "do not match" in capsys.readouterr().err
    assert not path.exists()
    assert main(["passwd", "alice", "--file", str(path)]) == 0
    assert PasswordFile.load(str(path)).verify("alice", "second")


def test_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["passwd", "alice", "--file", str(path)]) == 1
    assert "empty password" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert main(["passwd", "al:ice", "--file", str(path)]) == 1
    assert "user name" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert main(["passwd", "alice", "-c", "/dev/null", "-C", str(tmp_path), "--s3-conf", "/dev/null"]) == 1
    assert "no password file is configured" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["passwd", "alice", "hunter2", "--file", str(path)])


def test_default_file_from_pw_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "passwd"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "gridftp-s3").write_text(f"pw_file {path}\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-s3cret\n"))
    config = ["-c", "/dev/null", "-C", str(tmp_path / "d"), "--s3-conf", "/dev/null"]
    assert main(["passwd", "bob", *config]) == 0
    assert PasswordFile.load(str(path)).verify("bob", "s3cret-s3cret")
