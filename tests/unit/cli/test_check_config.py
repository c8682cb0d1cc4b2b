"""s3dsi check-config: exit status, origins shown, problems named by file and line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.cli.main import main

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = ["-c", "/dev/null", "-C", str(REPO / "etc/gridftp.d"),
            "--s3-conf", str(REPO / "etc/globus-gridftp-server-s3.conf")]
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCHECKCONF1"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GLOBUS_TCP_PORT_RANGE", "GLOBUS_S3_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def write_config(tmp_path: Path, gridftp: str, s3: str = "") -> list[str]:
    (tmp_path / "d").mkdir(exist_ok=True)
    (tmp_path / "d" / "gridftp-s3").write_text(gridftp)
    (tmp_path / "s3.conf").write_text(s3)
    return ["check-config", "-c", "/dev/null", "-C", str(tmp_path / "d"),
            "--s3-conf", str(tmp_path / "s3.conf")]


def private_map(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    directory = tmp_path / "home" / ".globus"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "s3"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_example_files_pass_and_show_origins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", *EXAMPLES]) == 0
    out = capsys.readouterr().out
    example = str(REPO / "etc/gridftp.d/gridftp-s3")
    assert f"{example}:" in out
    threads = next(line for line in out.splitlines() if line.strip().startswith("threads "))
    assert threads.split()[1] == "2"
    assert threads.split()[2].startswith(example + ":")
    assert "(from host_name)" in out
    assert "default" in out
    assert "the daemon would start" in out


def test_example_files_through_the_console_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "s3dsi", "check-config", *EXAMPLES], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "Effective settings" in result.stdout


def test_missing_process_user_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = write_config(tmp_path, "process_user no-such-user-s3dsi\n")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "no-such-user-s3dsi' does not exist on this host" in out
    assert main([*args, "--strict"]) == 1


def test_broken_file_exits_non_zero_naming_the_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    args = write_config(tmp_path, "threads 2\n\nport twenty\n")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'd' / 'gridftp-s3'}:3: port: expected" in err
    assert "would NOT start" in err


def test_wrong_dsi_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(write_config(tmp_path, "load_dsi_module file\n")) == 1
    assert "gridftp-s3:1: load_dsi_module" in capsys.readouterr().err


def test_broken_file_via_subprocess(tmp_path: Path) -> None:
    args = write_config(tmp_path, "threads 2\nbanner not quoted\n")
    result = subprocess.run([sys.executable, "-m", "s3dsi", *args], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "gridftp-s3:2: unexpected text after the value" in result.stderr


def test_map_file_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n")
    args = write_config(tmp_path, "threads 2\n", f"s3_map_filename = {path}\n")
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "credential map" in captured.out
    assert "1 user(s)" in captured.out
    assert SECRET not in captured.out + captured.err
    path.chmod(0o644)
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "too open" in captured.err
    assert SECRET not in captured.out + captured.err
    path.chmod(0o600)
    path.write_text(f"alice;AKIAALICE;{SECRET}\nalice;AKIAB;{SECRET}\n")
    assert main(args) == 1
    captured = capsys.readouterr()
    assert f"{path}:2: duplicate" in captured.err
    assert SECRET not in captured.out + captured.err


def test_map_lines_that_widen_the_site_policy_are_errors(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET};root=/lab/home/alice\n"
                                 f"bob;AKIABOB;{SECRET};root=/lab/elsewhere\n")
    gridftp = "allow_root 1\n" if os.geteuid() == 0 else ""
    args = write_config(tmp_path, gridftp, f"s3_map_filename = {path}\nroot = /lab/home\n")
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "bob: the line goes beyond the site's S3 policy: root=/lab/elsewhere is outside" in captured.err
    assert "alice" not in captured.err and SECRET not in captured.out + captured.err


def test_explicit_missing_map_is_an_error_default_missing_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = write_config(tmp_path, "", f"s3_map_filename = {tmp_path / 'absent'}\n")
    assert main(args) == 1
    assert "credential map does not exist" in capsys.readouterr().err
    # allow_root: as root, sessions then read root's own default map (without it each user reads theirs)
    args = write_config(tmp_path, "allow_root 1\n", "")
    os.environ["HOME"], home = str(tmp_path / "nohome"), os.environ.get("HOME", "")
    try:
        assert main(args) == 0
    finally:
        os.environ["HOME"] = home
    assert "every login fails until 's3dsi map add'" in capsys.readouterr().out


def test_password_file_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwd = tmp_path / "passwd"
    args = write_config(tmp_path, f"pw_file {passwd}\n", f"s3_map_filename = {tmp_path / 'nomap'}\n")
    assert main(args) == 1
    assert f"gridftp-s3:1: password_file: {passwd}: no such file" in capsys.readouterr().err
    passwd.write_text("alice:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFd"
                      "cbYEdFCoEOfaS35inz1\nbob:*\n")
    passwd.chmod(0o600)
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n")
    args = write_config(tmp_path, f"pw_file {passwd}\n", f"s3_map_filename = {path}\n")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 user(s)" in out
    assert "cannot log in" in out
    assert "user 'bob' has a password but no entry" in out


def test_unwritable_log_location_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = write_config(tmp_path, f"log_single {tmp_path / 'no' / 'such' / 'dir' / 'x.log'}\n")
    assert main(args) == 1
    assert "log_single: directory" in capsys.readouterr().err


def test_secret_environment_lines_are_not_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.delenv("S3DSI_VISIBLE", raising=False)
    args = write_config(tmp_path, f"$AWS_SECRET_ACCESS_KEY {SECRET}\n$S3DSI_VISIBLE shown\n")
    try:
        assert main(args) == 0
    finally:
        os.environ.pop("AWS_SECRET_ACCESS_KEY", None)
        os.environ.pop("S3DSI_VISIBLE", None)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "AWS_SECRET_ACCESS_KEY=***" in captured.out
    assert "S3DSI_VISIBLE=shown" in captured.out


@pytest.mark.parametrize("s3_conf", ["", "s3_map_filename = $HOME/.globus/s3\n",
                                     "s3_map_filename = /srv/s3maps/$USER\n"])
def test_per_session_model_does_not_check_roots_map(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, s3_conf: str) -> None:
    # root without process_user: each session reads its own user's map, never root's
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("HOME", str(tmp_path / "roothome"))
    args = write_config(tmp_path, "threads 2\n", s3_conf)
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "credential map does not exist" not in captured.out + captured.err
    assert "each user's own" in captured.out
    args = write_config(tmp_path, "allow_root 1\n", s3_conf)  # sessions run as root: root's map it is
    main(args)
    assert "credential map does not exist" in "".join(capsys.readouterr())


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="s3dsi-cc-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the service-user model is root's")
def test_a_state_dir_process_user_cannot_enter_is_an_error(open_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    state = open_dir / "state"
    state.mkdir(mode=0o750)  # root's, as systemd's StateDirectoryMode=0750 made /var/lib/s3dsi
    args = write_config(tmp_path, "process_user nobody\n", f"state_dir = {state}\n")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"state_dir: {state}: nobody cannot enter it" in err and "chmod 0755" in err
    state.chmod(0o755)
    assert main(args) == 0
    state.rmdir()
    assert main(args) == 0
    assert f"state_dir {state}: created at start for nobody (mode 0700)" in capsys.readouterr().out
    (open_dir / "hidden").mkdir(mode=0o700)
    for state_dir in (open_dir / "hidden" / "state", open_dir / "hidden" / "new" / "state"):
        args = write_config(tmp_path, "process_user nobody\n", f"state_dir = {state_dir}\n")
        assert main(args) == 1  # whether state_dir exists yet or not: nobody could never reach it
        assert f"{open_dir / 'hidden'}: nobody cannot enter it" in capsys.readouterr().err


def test_gsi_and_ftps_are_reported(tmp_path: Path, pki: object, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.pki import Pki  # noqa: PLC0415

    for name in ("X509_USER_CERT", "X509_USER_KEY", "X509_CERT_DIR", "GRIDMAP"):  # `$` lines set them
        monkeypatch.setenv(name, "unset-by-the-test")

    assert isinstance(pki, Pki)
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n")
    env = "".join(f"${name} {value}\n" for name, value in pki.server_env().items())
    args = write_config(tmp_path, env, f"s3_map_filename = {path}\n")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "GSI (gsiftp://): host certificate /C=XX/O=GSITest/CN=localhost; 2 CA(s)" in out
    assert f"grid-mapfile {pki.gridmap}: 1 DN(s)" in out
    assert "FTPS (AUTH TLS): on" in out
    key = tmp_path / "hostkey.pem"
    key.write_bytes(pki.host_key.read_bytes())
    key.chmod(0o644)
    env = env.replace(str(pki.host_key), str(key))
    args = write_config(tmp_path, env + "require_tls 1\n", f"s3_map_filename = {path}\n")
    assert main(args) == 1
    assert "too open" in capsys.readouterr().err
    args = write_config(tmp_path, "$X509_USER_CERT /nonexistent\n$X509_USER_KEY /nonexistent\n"
                        "require_tls 1\n", f"s3_map_filename = {path}\n")
    assert main(args) == 1
    assert "require_tls 1 without a certificate" in capsys.readouterr().err
