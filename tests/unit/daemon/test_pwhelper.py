"""The password-file helper: it loads the configuration itself and returns the pw_file it names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.pwhelper import HelperError, PasswordHelper, read_password_file


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
