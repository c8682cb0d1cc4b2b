"""`s3dsi status` prints what clients named (paths, user names) without their control characters."""

from __future__ import annotations

from s3dsi.cli.status import render
from s3dsi.daemon import admin

NOW = 1_700_000_000.0


def test_paths_and_names_with_control_characters_are_shown_escaped() -> None:
    status = admin.DaemonStatus(
        pid=7, version="0.1.0", model="service-user", started=NOW - 5, account="globus-s3",
        sessions=(admin.SessionSnapshot(id="000001", remote="192.0.2.1", opened=NOW, user="al\x1b]0;x\x07ice",
                                        pid=7, kind="STOR", path="/b/a\rFAKE\x1b[31m\x9b2J", nbytes=1,
                                        transfer_started=NOW - 1),))
    text = render(status, now=NOW)
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text), repr(text)
    assert "/b/a\\x0dFAKE\\x1b[31m\\x9b2J" in text
    assert "al\\x1b]0;x\\x07ice" in text
