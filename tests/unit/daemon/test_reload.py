"""What a SIGHUP may change at once, what only a restart changes, and what a reload does with log files
it cannot open."""

from __future__ import annotations

import errno
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from s3dsi.config.settings import Settings
from s3dsi.daemon.configsource import restart_only_changes
from s3dsi.daemon.runtime import adopt_reloaded, keep_restart_only, status_line
from s3dsi.daemon.services import apply_logging
from s3dsi.observability.transferlog import TransferLog
from tests.unit.observability.conftest import restore_logging  # noqa: F401 - the fixture


def test_restart_only_settings_keep_their_running_values() -> None:
    old = Settings(port=2811, memory_budget=160 << 20, banner="old")
    new = Settings(port=2812, memory_budget=64 << 20, banner="new", idle_timeout=5)
    assert restart_only_changes(old, new) == ["port", "memory_budget"]
    merged, changed = keep_restart_only(old, new)
    assert changed == ["port", "memory_budget"]
    assert (merged.port, merged.memory_budget) == (2811, 160 << 20)
    assert (merged.banner, merged.idle_timeout) == ("new", 5)


def test_status_line() -> None:
    assert status_line(1, 0) == "STATUS=1 session, 0 transfers running"
    assert status_line(3, 1) == "STATUS=3 sessions, 1 transfer running"


def refuse(path: str) -> int:
    """The LogOpener of a process that may no longer open anything (after its privilege drop)."""
    raise PermissionError(errno.EACCES, "Permission denied", path)


@pytest.mark.usefixtures("restore_logging")
def test_a_reload_applies_log_levels_even_when_log_files_cannot_be_opened(tmp_path: Path) -> None:
    main, transfers = tmp_path / "s3dsi.log", tmp_path / "transfer.log"
    old = Settings(log_level="ERROR,WARN", log_single=str(main), log_transfer=str(transfers),
                   s3_debug=f"1023,{tmp_path / 's3.log'}")
    apply_logging(old)
    transfer_log = TransferLog(str(transfers), host="gw")
    try:
        moved = tmp_path / "moved-transfer.log"
        new = replace(old, log_level="ERROR,WARN,INFO", log_transfer=str(moved), s3_debug="0")
        settings = adopt_reloaded(old, new, transfer_log, opener=refuse)
        assert settings.log_level == "ERROR,WARN,INFO"
        lines = main.read_text().splitlines()  # unchanged path: the open file keeps being written
        assert any("configuration reloaded" in line for line in lines)  # INFO took effect
        [warning] = [line for line in lines if "log file not opened" in line]
        assert f"path={moved}" in warning and "Permission denied" in warning
        assert f"writing_to={transfers}" in warning
        assert transfer_log.path == str(transfers) and not moved.exists()
        logging.getLogger("botocore").debug("after the reload")
        assert "after the reload" not in (tmp_path / "s3.log").read_text()  # GLOBUS_S3_DEBUG 0: off
    finally:
        transfer_log.close()
