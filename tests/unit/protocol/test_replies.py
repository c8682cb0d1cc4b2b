from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3dsi.protocol.errors import (
    BackendUnavailable,
    DataChannelError,
    DirectoryNotEmpty,
    DsiError,
    IsADirectory,
    NoSpace,
    NotSupported,
    PathExists,
    PathNotFound,
    PermissionDenied,
    TransferAborted,
)
from s3dsi.protocol.replies import (
    Reply,
    cksm_reply,
    cwd_failed_reply,
    error_reply,
    mdtm_reply,
    mkd_reply,
    pwd_reply,
    sanitize,
    transfer_failed_reply,
)

from .transcript import load


def _gt_reply(name: str, command: str) -> list[str]:
    return next(e.replies for e in load(name) if e.command == command)


def test_line() -> None:
    reply = Reply.line(226, "Transfer Complete.")
    assert reply.lines == ("226 Transfer Complete.",)
    assert reply.encode() == b"226 Transfer Complete.\r\n"
    assert reply.wire_lines() == reply.lines
    assert reply.is_final
    assert not reply.is_preliminary


def test_multi_and_block() -> None:
    multi = Reply.multi(211, "Extensions supported", [" SIZE", " MDTM"], "End.")
    assert multi.encode() == b"211-Extensions supported\r\n SIZE\r\n MDTM\r\n211 End.\r\n"
    block = Reply.block(550, ["a", "b"])
    assert block.lines == ("550-a", "550-b", "550 End.")
    assert Reply.line(112, "x").is_preliminary


def test_multi_body_cannot_end_the_reply_early() -> None:
    reply = Reply.multi(213, "status of x", ["213 forged"], "End.")
    assert reply.lines[1] == " 213 forged"
    assert [line for line in reply.lines if line.startswith("213 ")] == ["213 End."]


@pytest.mark.parametrize("text", ["a\r\n226 forged", "a\nb", "a\rb", "nul\x00here"])
def test_texts_are_sanitised(text: str) -> None:
    replies = (Reply.line(550, text), Reply.multi(250, text, [text], text), Reply.block(550, [text], text))
    for reply in replies:
        encoded = reply.encode()
        assert encoded.count(b"\r\n") == len(reply.lines)
        assert b"\n" not in encoded.replace(b"\r\n", b"")
        assert b"\r" not in encoded.replace(b"\r\n", b"")
        assert b"\x00" not in encoded


@given(st.text())
def test_sanitize_property(text: str) -> None:
    clean = sanitize(text)
    assert len(clean) == len(text)
    assert not set(clean) & {"\r", "\n", "\x00"}


@pytest.mark.parametrize("lines", [(), ("226 ok\r\n",), ("226-x",), ("227 wrong code",)])
def test_invalid_replies_are_refused(lines: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Reply(226, lines)


def test_code_range() -> None:
    with pytest.raises(ValueError):
        Reply.line(99, "x")
    with pytest.raises(ValueError):
        Reply.line(600, "x")


def test_undecodable_path_round_trips() -> None:
    path = b"/b/caf\xe9".decode("utf-8", "surrogateescape")
    assert Reply.line(250, path).encode() == b"250 /b/caf\xe9\r\n"
    assert Reply.line(250, "\ud800").encode() == b"250 ?\r\n"  # never raises


@pytest.mark.parametrize(("command", "error"), [
    ("SIZE /srv/data/raw/nope", PathNotFound(operation="stat")),
    ("RMD /srv/data/raw/newdir", DirectoryNotEmpty(operation="rmdir")),
    ("RMD /srv/data/raw/nope", PathNotFound(operation="rmdir")),
    ("DELE /srv/data/raw/nope", PathNotFound(operation="unlink")),
    ("DELE /srv/data/raw/dir1", IsADirectory(operation="unlink")),
])
def test_error_reply_matches_gt(command: str, error: DsiError) -> None:
    assert list(error_reply(error).lines) == _gt_reply("raw_session_commands", command)


def test_mkd_exists_matches_gt() -> None:
    gt = [e.replies for e in load("raw_session_commands") if e.command == "MKD /srv/data/raw/newdir"][1]
    assert list(error_reply(PathExists(operation="mkdir")).lines) == gt


def test_rnfr_missing_uses_500_like_gt() -> None:
    reply = error_reply(PathNotFound(operation="stat"), code=500)
    assert list(reply.lines) == _gt_reply("raw_session_commands", "RNFR /srv/data/raw/nope")


def test_cwd_prefix_matches_gt() -> None:
    reply = cwd_failed_reply("/srv/data/raw/nope", PathNotFound(operation="stat"))
    assert list(reply.lines) == _gt_reply("raw_session_commands", "CWD nope")


def test_error_reply_sanitises_prefix_and_text() -> None:
    reply = error_reply(PathNotFound("gone\r\n226 ok", operation="stat"), prefix="/a\r\nb")
    assert all("\r" not in line and "\n" not in line for line in reply.lines)


@pytest.mark.parametrize(("error", "code"), [
    (PathNotFound(operation="open"), 500),
    (PermissionDenied(operation="open"), 500),
    (IsADirectory(operation="open"), 500),
    (NotSupported(operation="open"), 500),
    (PathExists(operation="open"), 500),
    (DataChannelError(), 426),
    (TransferAborted(), 426),
    (BackendUnavailable(), 451),
    (NoSpace(), 552),
])
def test_transfer_failed_code_rule(error: DsiError, code: int) -> None:
    reply = transfer_failed_reply(error)
    assert reply.code == code
    assert reply.lines[0] == f"{code}-Command failed. : GlobusError: v=1 c={error.globus_type}"
    assert reply.lines[1] == f"{code}-GridFTP-Errno: {error.errno}"
    assert reply.lines[-1] == f"{code} End."
    assert transfer_failed_reply(error, code=451).code == 451


def test_transfer_failed_adds_nothing_beyond_the_error() -> None:
    error = PathNotFound("No such file or directory", operation="open")
    reply = transfer_failed_reply(error)
    assert list(reply.lines) == [
        "500-Command failed. : GlobusError: v=1 c=PATH_NOT_FOUND",
        "500-GridFTP-Errno: 2",
        "500-GridFTP-Reason: System error in open",
        "500-GridFTP-Error-String: No such file or directory",
        "500 End.",
    ]


def test_small_builders() -> None:
    assert pwd_reply('/a"b').lines == ('257 "/a""b" is current directory.',)
    assert mkd_reply("/srv/data/raw/newdir").lines == _gt_reply_tuple("MKD /srv/data/raw/newdir")
    assert cksm_reply("ABCDEF01").lines == ("213 abcdef01",)
    when = datetime(2026, 11, 22, 13, 49, 56, tzinfo=UTC)
    assert mdtm_reply(when).lines == ("213 20261122134956",)
    plus_two = when.astimezone(timezone(timedelta(hours=2)))
    assert mdtm_reply(plus_two).lines == ("213 20261122134956",)
    assert mdtm_reply(datetime(999, 1, 2, 3, 4, 5)).lines == ("213 09990102030405",)


def _gt_reply_tuple(command: str) -> tuple[str, ...]:
    return tuple(_gt_reply("raw_session_commands", command))
