"""What a SIGHUP may change at once, and what only a restart changes."""

from __future__ import annotations

from s3dsi.config.settings import Settings
from s3dsi.daemon.configsource import restart_only_changes
from s3dsi.daemon.runtime import keep_restart_only, status_line


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
