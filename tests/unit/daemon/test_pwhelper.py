"""The root helper: it loads the configuration itself and returns the pw_file it names, or opens one of
the log files it names and passes the descriptor back."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.pwhelper import HelperError, PasswordHelper, open_log_for, read_password_file


def site(tmp_path: Path, pw_line: str | None) -> ConfigSource:
    conf = tmp_path / "gridftp.d"
    conf.mkdir(exist_ok=True)
    (conf / "s3").write_text(f"pw_file {tmp_path / 'passwd'}\n" if pw_line is not None else "threads 2\n")
    (tmp_path / "s3.conf").write_text("host_name = http://127.0.0.1:9\n")
    if pw_line is not None:
        (tmp_path / "passwd").write_text(pw_line)
        (tmp_path / "passwd").chmod(0o600)
    return ConfigSource("/dev/null", str(conf), str(tmp_path / "s3.conf"))


def test_the_helper_returns_the_file_the_configuration_names_now(tmp_path: Path) -> None:
    source = site(tmp_path, "alice:$6$salt$hash\n")
    helper = PasswordHelper.spawn(source, os.geteuid())
    try:
        first = helper.read()
        assert (first.path, first.data) == (str(tmp_path / "passwd"), b"alice:$6$salt$hash\n")
        (tmp_path / "passwd").write_text("bob:$6$salt$other\n")
        assert helper.read().data == b"bob:$6$salt$other\n"  # read again at every request
        (tmp_path / "passwd").chmod(0o666)
        with pytest.raises(HelperError, match=r"writable by group or others|too open"):
            helper.read()
        (tmp_path / "passwd").chmod(0o600)
        assert helper.read().data == b"bob:$6$salt$other\n"  # the helper survives a refusal
    finally:
        helper.close()
    with pytest.raises(HelperError, match="did not answer"):
        helper.read()


def test_no_pw_file_and_a_broken_configuration(tmp_path: Path) -> None:
    source = site(tmp_path, None)
    assert read_password_file(source, os.geteuid()).path is None
    (tmp_path / "gridftp.d" / "s3").write_text("port nonsense\n")
    with pytest.raises(HelperError, match="configuration"):
        read_password_file(source, os.geteuid())


NOBODY = pwd.getpwnam("nobody")


def log_site(tmp_path: Path) -> tuple[ConfigSource, Path]:
    """A configuration whose log files live in ``logs``, a directory only root (or this user) can write."""
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o750)
    conf = tmp_path / "gridftp.d"
    conf.mkdir()
    (conf / "s3").write_text(f"log_single {logs / 'main.log'}\nlog_transfer {logs / 'transfer.log'}\n"
                             f'$GLOBUS_S3_DEBUG "1023,{logs / "s3.log"}"\n')
    (tmp_path / "s3.conf").write_text("host_name = http://127.0.0.1:9\n")
    return ConfigSource("/dev/null", str(conf), str(tmp_path / "s3.conf")), logs


def test_the_helper_opens_the_configured_log_files_and_passes_the_descriptor(tmp_path: Path) -> None:
    source, logs = log_site(tmp_path)
    helper = PasswordHelper.spawn(source, NOBODY.pw_uid)
    try:
        for name in ("main.log", "transfer.log", "s3.log"):
            fd = helper.open_log(str(logs / name))
            try:
                os.write(fd, b"appended\n")
            finally:
                os.close(fd)
            info = (logs / name).stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o600)
            assert (logs / name).read_bytes() == b"appended\n"
        with pytest.raises(HelperError, match="not a log file of the current configuration"):
            helper.open_log(str(logs / "other.log"))
        with pytest.raises(HelperError, match="not a log file"):
            helper.open_log("/etc/passwd")
        (logs / "main.log").unlink()
        (logs / "main.log").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(HelperError, match="symbolic link"):
            helper.open_log(str(logs / "main.log"))
        assert not (tmp_path / "elsewhere").exists()
        (logs / "main.log").unlink()
        (tmp_path / "secret").write_text("x")
        os.link(tmp_path / "secret", logs / "main.log")
        with pytest.raises(HelperError, match="single name"):
            helper.open_log(str(logs / "main.log"))
        fd = helper.open_log(str(logs / "s3.log"))  # the helper still serves after refusals
        os.close(fd)
    finally:
        helper.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="hands a directory to another account: needs root")
def test_the_helper_refuses_a_directory_the_service_account_can_change(tmp_path: Path) -> None:
    source, logs = log_site(tmp_path)
    os.chown(logs, NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(HelperError, match=r"service account can change .*logs"):
        open_log_for(source, NOBODY.pw_uid, str(logs / "main.log"))
    os.chown(logs, 0, 0)
    os.chmod(logs, 0o777)
    with pytest.raises(HelperError, match="service account can change"):
        open_log_for(source, NOBODY.pw_uid, str(logs / "main.log"))
    os.chmod(logs, 0o1777)  # sticky, like /tmp: others' entries cannot be replaced
    os.close(open_log_for(source, NOBODY.pw_uid, str(logs / "main.log")))
