"""SITE TASKID (sent by FTS and globus-url-copy -taskid) is kept for the transfer log."""

from __future__ import annotations

from s3dsi.protocol.lines import ControlLineBuffer
from s3dsi.protocol.session import ProtocolCore


def handle(core: ProtocolCore, text: str) -> object:
    (line,) = ControlLineBuffer().feed(text.encode() + b"\r\n")
    return core.handle(line)


def test_site_taskid_is_remembered_and_answered_like_the_reference() -> None:
    core = ProtocolCore()
    handle(core, "USER alice")
    core.login_succeeded("alice")
    reply = handle(core, "SITE TASKID 6f1c-transfer-42")
    assert reply.lines == ("250 OK.",)  # type: ignore[attr-defined]
    assert core.state.task_id == "6f1c-transfer-42"
    assert handle(core, "SITE TASKID").lines[0].startswith("501")  # type: ignore[attr-defined]
