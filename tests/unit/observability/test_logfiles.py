"""Log files across a reconfiguration: an unchanged path keeps its open file (no reopen needed after a
privilege drop), a rotated or new one is opened through the opener, and a reload that cannot open a
file still applies levels and format, names the file and keeps writing where it wrote before."""

from __future__ import annotations

import errno
import io
import logging
import os
from pathlib import Path

import pytest

from s3dsi.config.settings import Settings
from s3dsi.observability.logfiles import open_log_file, reuse_or_open
from s3dsi.observability.logging import configure_logging, get_logger, reconfigure_logging


class Opener:
    """A LogOpener that records its calls and refuses (like a process after its privilege drop)."""

    def __init__(self, allow: bool = False) -> None:
        self.allow = allow
        self.calls: list[str] = []

    def __call__(self, path: str) -> int:
        self.calls.append(path)
        if not self.allow:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return open_log_file(path)


def test_an_unchanged_path_keeps_its_descriptor_and_a_rotated_one_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    fd = open_log_file(str(path))
    try:
        refusing = Opener()
        assert reuse_or_open(str(path), fd, refusing) == fd
        assert refusing.calls == []  # not even tried
        path.rename(tmp_path / "x.log.1")
        with pytest.raises(PermissionError):
            reuse_or_open(str(path), fd, refusing)
        new = reuse_or_open(str(path), fd, Opener(allow=True))
        assert new != fd and path.exists()
        os.close(new)
    finally:
        os.close(fd)


def test_a_reload_that_cannot_open_files_still_applies_levels_and_names_the_files(tmp_path: Path) -> None:
    main, debug = tmp_path / "main.log", tmp_path / "s3.log"
    configure_logging(Settings(log_level="ERROR", log_single=str(main), s3_debug=f"1023,{debug}"))
    log = get_logger("s3dsi.x")
    log.info("hidden at ERROR")
    logging.getLogger("botocore").debug("debug on")

    opener = Opener()
    problems = reconfigure_logging(Settings(log_level="ALL", log_single=str(main), s3_debug="0"),
                                   opener=opener)
    assert problems == [] and opener.calls == []  # same file: kept open, nothing to open
    log.info("shown at ALL")
    logging.getLogger("botocore").debug("debug off")
    text = main.read_text()
    assert "hidden at ERROR" not in text and "shown at ALL" in text
    assert "debug on" in debug.read_text() and "debug off" not in debug.read_text()

    moved = tmp_path / "other.log"
    problems = reconfigure_logging(Settings(log_level="ERROR", log_single=str(moved),
                                            s3_debug=f"1023,{tmp_path / 'new-s3.log'}"), opener=opener)
    assert {(p.setting, p.path) for p in problems} == {("log_single", str(moved)),
                                                        ("GLOBUS_S3_DEBUG", str(tmp_path / "new-s3.log"))}
    by_setting = {p.setting: p for p in problems}
    assert by_setting["log_single"].instead == f"{main} (the previous file)"
    assert by_setting["log_single"].error == "Permission denied"
    assert by_setting["GLOBUS_S3_DEBUG"].instead == "nowhere"
    log.info("hidden again at ERROR")
    log.error("still in the old file")
    text = main.read_text()
    assert "hidden again" not in text and "still in the old file" in text  # the level changed anyway
    assert not moved.exists()

    opener.allow = True
    assert reconfigure_logging(Settings(log_level="ERROR", log_single=str(moved)), opener=opener) == []
    log.error("in the new file")
    assert "in the new file" in moved.read_text() and "in the new file" not in main.read_text()


def test_a_log_file_that_never_opened_falls_back_to_the_stream(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ERROR"), stream=out)
    problems = reconfigure_logging(Settings(log_level="WARN", log_single=str(tmp_path / "no" / "x.log")),
                                   stream=out)
    assert [(p.setting, p.instead) for p in problems] == [("log_single", "the log stream")]
    get_logger("s3dsi.x").warning("warned")
    assert "warned" in out.getvalue()
