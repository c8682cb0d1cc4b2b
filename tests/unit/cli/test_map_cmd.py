"""s3dsi map list|add|remove|check."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from s3dsi.cli.main import main
from s3dsi.identity.usermap import UserMap

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYMAPCMD0001"
SECRET2 = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbMAPCMD0002"


class TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def map_path(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home / ".globus" / "s3"


def run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_add_from_stdin_creates_private_file(map_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(monkeypatch, ["map", "add", "alice", "--file", str(map_path)], f"AKIAALICE\n{SECRET}\n") == 0
    assert stat.S_IMODE(map_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(map_path.parent.stat().st_mode) == 0o700
    entry = UserMap.load(str(map_path)).lookup("alice")
    assert entry is not None
    assert (entry.access_key_id, entry.secret_access_key) == ("AKIAALICE", SECRET)
    captured = capsys.readouterr()
    assert "added" in captured.out
    assert SECRET not in captured.out + captured.err


def test_add_replaces_and_keeps_others(map_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    run(monkeypatch, ["map", "add", "alice", "--file", str(map_path)], f"AKIAALICE\n{SECRET}\n")
    run(monkeypatch, ["map", "add", "bob", "--file", str(map_path)], f"AKIABOB\n{SECRET2}\n")
    assert run(monkeypatch, ["map", "add", "alice", "--file", str(map_path)], f"AKIANEW\n{SECRET2}\n") == 0
    usermap = UserMap.load(str(map_path))
    assert usermap.users() == ["alice", "bob"]
    alice = usermap.lookup("alice")
    assert alice is not None
    assert alice.access_key_id == "AKIANEW"
    assert "replaced" in capsys.readouterr().out


def test_add_on_a_terminal_hides_the_secret(map_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def answer(value: str) -> object:
        def ask(prompt: str) -> str:
            prompts.append(prompt)
            return value
        return ask

    monkeypatch.setattr("sys.stdin", TtyInput())
    monkeypatch.setattr("builtins.input", answer("AKIATTY"))
    monkeypatch.setattr("getpass.getpass", answer(SECRET))
    assert main(["map", "add", "alice", "--file", str(map_path)]) == 0
    assert prompts == ["Access key ID: ", "Secret access key: "]
    entry = UserMap.load(str(map_path)).lookup("alice")
    assert entry is not None
    assert entry.secret_access_key == SECRET


def test_keys_are_never_accepted_on_the_command_line(map_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(monkeypatch, ["map", "add", "alice", "AKIAALICE", SECRET, "--file", str(map_path)])
    assert not map_path.exists()


@pytest.mark.parametrize(("stdin", "message"), [
    ("", "empty access key id"),
    ("AKIAALICE\n", "empty secret access key"),
    (f"AKIA ALICE\n{SECRET}\n", "access key id contains white space"),
    (f"AKIAALICE\n{SECRET};x\n", "secret access key contains"),
])
def test_bad_key_input(map_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       stdin: str, message: str) -> None:
    assert run(monkeypatch, ["map", "add", "alice", "--file", str(map_path)], stdin) == 1
    err = capsys.readouterr().err
    assert message in err
    assert SECRET not in err
    assert not map_path.exists()


def test_bad_user_name(map_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run(monkeypatch, ["map", "add", "al;ice", "--file", str(map_path)], f"AKIA\n{SECRET}\n") == 1
    assert "user name" in capsys.readouterr().err


def test_list_redacts_secrets(map_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    run(monkeypatch, ["map", "add", "alice", "--file", str(map_path)], f"AKIAALICE\n{SECRET}\n")
    capsys.readouterr()
    assert run(monkeypatch, ["map", "list", "--file", str(map_path)]) == 0
    out = capsys.readouterr().out
    assert "alice" in out
    assert "AKIAALICE" in out
    assert "***" in out
    assert SECRET not in out


def test_remove(map_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run(monkeypatch, ["map", "add", "alice", "--file", str(map_path)], f"AKIAALICE\n{SECRET}\n")
    run(monkeypatch, ["map", "add", "bob", "--file", str(map_path)], f"AKIABOB\n{SECRET2}\n")
    assert run(monkeypatch, ["map", "remove", "alice", "--file", str(map_path)]) == 0
    assert UserMap.load(str(map_path)).users() == ["bob"]
    assert run(monkeypatch, ["map", "remove", "alice", "--file", str(map_path)]) == 1
    assert "no entry for 'alice'" in capsys.readouterr().err


def test_check_reports_format_and_permission_problems(map_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run(monkeypatch, ["map", "add", "alice", "--file", str(map_path)], f"AKIAALICE\n{SECRET}\n")
    capsys.readouterr()
    assert run(monkeypatch, ["map", "check", "--file", str(map_path)]) == 0
    assert "OK, 1 user(s)" in capsys.readouterr().out
    map_path.chmod(0o640)
    assert run(monkeypatch, ["map", "check", "--file", str(map_path)]) == 1
    assert "chmod 600" in capsys.readouterr().err
    map_path.chmod(0o600)
    map_path.write_text(f"alice;AKIAALICE;{SECRET}\nbroken line\n")
    assert run(monkeypatch, ["map", "check", "--file", str(map_path)]) == 1
    err = capsys.readouterr().err
    assert f"{map_path}:2:" in err
    assert SECRET not in err
    assert run(monkeypatch, ["map", "add", "bob", "--file", str(map_path)], f"AKIAB\n{SECRET2}\n") == 1
    assert map_path.read_text() == f"alice;AKIAALICE;{SECRET}\nbroken line\n"


def test_default_file_comes_from_the_configuration(tmp_path: Path, map_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    s3_conf = tmp_path / "s3.conf"
    s3_conf.write_text(f"s3_map_filename = {map_path}\n")
    (tmp_path / "gridftp.d").mkdir()
    config = ["-c", "/dev/null", "-C", str(tmp_path / "gridftp.d"), "--s3-conf", str(s3_conf)]
    assert run(monkeypatch, ["map", "add", "alice", *config], f"AKIAALICE\n{SECRET}\n") == 0
    assert UserMap.load(str(map_path)).users() == ["alice"]


def test_root_edits_keep_the_users_ownership(map_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    os.chown(map_path.parent.parent, 54321, 54321)
    assert run(monkeypatch, ["map", "add", "alice", "--file", str(map_path)], f"AKIAALICE\n{SECRET}\n") == 0
    assert (map_path.stat().st_uid, map_path.parent.stat().st_uid) == (54321, 54321)
    assert run(monkeypatch, ["map", "add", "bob", "--file", str(map_path)], f"AKIAB\n{SECRET2}\n") == 0
    assert map_path.stat().st_uid == 54321
    assert UserMap.load(str(map_path), owner_uid=54321).users() == ["alice", "bob"]


ROLE = "arn:aws:iam::123456789012:role/lab-writer"


def test_add_a_role_and_policy_keys(map_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["map", "add", "alice", "--file", str(map_path), "--role-arn", ROLE, "--external-id", "lab-42",
            "--duration", "2h", "--set", "root=/lab/home/alice", "--set", "append_only=1"]
    assert run(monkeypatch, argv, f"AKIAALICE\n{SECRET}\n") == 0
    entry = UserMap.load(str(map_path)).lookup("alice")
    assert entry is not None and entry.access_key_id == "AKIAALICE"
    assert entry.extra == f"role_arn={ROLE},external_id=lab-42,duration=2h,root=/lab/home/alice,append_only=1"
    # new keys later keep the options; --unset drops one
    argv = ["map", "add", "alice", "--file", str(map_path), "--unset", "append_only"]
    assert run(monkeypatch, argv, f"AKIANEW\n{SECRET2}\n") == 0
    entry = UserMap.load(str(map_path)).lookup("alice")
    assert entry is not None and entry.access_key_id == "AKIANEW"
    assert entry.extra == f"role_arn={ROLE},external_id=lab-42,duration=2h,root=/lab/home/alice"
    assert SECRET not in capsys.readouterr().out


def test_add_with_a_source_reads_no_keys(map_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["map", "add", "carol", "--file", str(map_path), "--source", "default", "--role-arn", ROLE]
    assert run(monkeypatch, argv, "") == 0  # nothing on stdin: nothing was asked for
    assert map_path.read_text().splitlines()[-1] == f"carol;;;role_arn={ROLE},source=default"


@pytest.mark.parametrize(("flags", "message"), [
    (["--set", "rooot=/x"], "unknown key 'rooot'"),
    (["--duration", "1h"], "duration needs role_arn"),
    (["--set", "append_only"], "expected KEY=VALUE"),
    (["--profile", "lab"], "profile needs source=default"),
])
def test_add_refuses_bad_options(map_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    keys = f"AKIAD\n{SECRET}\n"
    assert run(monkeypatch, ["map", "add", "dave", "--file", str(map_path), *flags], keys) == 1
    assert message in capsys.readouterr().err
    assert not map_path.exists()


def test_check_validates_lines_against_the_site_policy(map_path: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run(monkeypatch, ["map", "add", "alice", "--file", str(map_path), "--role-arn", ROLE,
                      "--set", "root=/lab/home/alice"], f"AKIAALICE\n{SECRET}\n")
    run(monkeypatch, ["map", "add", "bob", "--file", str(map_path), "--source", "default"])
    conf_dir = tmp_path / "gridftp.d"
    conf_dir.mkdir()
    s3_conf = tmp_path / "s3.conf"
    s3_conf.write_text("root = /lab/home\nappend_only = 1\n")
    common = ["--file", str(map_path), "-c", "/dev/null", "-C", str(conf_dir), "--s3-conf", str(s3_conf)]
    capsys.readouterr()
    assert run(monkeypatch, ["map", "check", *common]) == 0
    out = capsys.readouterr().out
    assert f"alice: role {ROLE} assumed with keys AKIAALICE; root=/lab/home/alice, append_only=1" in out
    assert "bob: botocore's default chain; root=/lab/home, append_only=1" in out
    run(monkeypatch, ["map", "add", "bob", "--file", str(map_path), "--set", "append_only=0"])
    assert run(monkeypatch, ["map", "check", *common]) == 1
    out = capsys.readouterr().out
    assert "bob: ERROR: the line goes beyond the site's S3 policy: append_only=0 cannot lift" in out
