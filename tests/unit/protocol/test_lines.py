from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3dsi.protocol.lines import MAX_LINE, CommandLine, ControlLineBuffer


def _feed_all(chunks: list[bytes], max_line: int = MAX_LINE) -> list[CommandLine]:
    buffer = ControlLineBuffer(max_line)
    out: list[CommandLine] = []
    for chunk in chunks:
        out += buffer.feed(chunk)
    return out


def test_parse_fields() -> None:
    line = CommandLine.parse("retr /a b/c ")
    assert (line.verb, line.arg, line.raw, line.too_long) == ("RETR", "/a b/c ", "retr /a b/c ", False)
    assert CommandLine.parse("PWD").arg is None
    assert CommandLine.parse("PWD ").arg is None
    assert CommandLine.parse("RETR  x").arg == " x"


def test_pipelined_commands_in_one_write() -> None:
    # The exact bytes of raw_retr_perf_markers_and_pipelining.
    lines = ControlLineBuffer().feed(b"TYPE I\r\nPWD\r\nNOOP\r\n")
    assert [(line.verb, line.arg) for line in lines] == [("TYPE", "I"), ("PWD", None), ("NOOP", None)]


def test_command_split_across_feeds() -> None:
    buffer = ControlLineBuffer()
    assert buffer.feed(b"RE") == []
    assert buffer.feed(b"TR /x") == []
    assert buffer.feed(b"\r") == []
    (line,) = buffer.feed(b"\nNO")
    assert (line.verb, line.arg) == ("RETR", "/x")
    assert [line.verb for line in buffer.feed(b"OP\r\n")] == ["NOOP"]


def test_bare_lf_and_extra_cr() -> None:
    assert [(line.verb, line.arg) for line in _feed_all([b"PWD\nCWD /a\r\r\n"])] == [("PWD", None),
                                                                                     ("CWD", "/a")]


@pytest.mark.parametrize("data", [
    b"\xff\xf4\xffABOR\r\n",  # IP, then the DM lost to urgent data: a lone IAC before the verb
    b"\xff\xf4\xff\xf2ABOR\r\n",  # IP, DM
    b"\xff\xfb\x01\xff\xfd\x03ABOR\r\n",  # WILL ECHO, DO SGA
    b"ABOR\xff\r\n",  # lone trailing IAC
    b"\xff\xf1ABOR\r\n",  # IAC NOP
])
def test_telnet_sequences_are_stripped(data: bytes) -> None:
    (line,) = ControlLineBuffer().feed(data)
    assert (line.verb, line.arg, line.raw) == ("ABOR", None, "ABOR")


def test_telnet_sequence_split_across_feeds() -> None:
    buffer = ControlLineBuffer()
    assert buffer.feed(b"\xff") == []
    assert buffer.feed(b"\xf4\xff") == []
    assert [line.verb for line in buffer.feed(b"\xf2ABOR\r\n")] == ["ABOR"]
    buffer = ControlLineBuffer()
    assert buffer.feed(b"\xff\xfb") == []
    assert [line.raw for line in buffer.feed(b"\x01NOOP\r\n")] == ["NOOP"]


def test_iac_iac_is_a_literal_ff() -> None:
    (line,) = ControlLineBuffer().feed(b"RETR /a\xff\xffb\r\n")
    assert line.arg == "/a\udcffb"
    assert line.has_undecodable


def test_non_utf8_is_kept_with_surrogateescape() -> None:
    (line,) = ControlLineBuffer().feed(b"STOR /b/caf\xe9\r\n")
    assert line.arg == "/b/caf\udce9"
    assert line.has_undecodable
    assert line.arg.encode("utf-8", "surrogateescape") == b"/b/caf\xe9"
    (good,) = ControlLineBuffer().feed("STOR /b/café\r\n".encode())
    assert good.arg == "/b/café"
    assert not good.has_undecodable


def test_nul_and_lone_cr_stay_inside_the_line() -> None:
    (line,) = ControlLineBuffer().feed(b"PW\x00D\r\n")
    assert line.verb == "PW\x00D"
    buffer = ControlLineBuffer()
    assert buffer.feed(b"RETR a\rb") == []
    (line,) = buffer.feed(b"\r\n")
    assert line.arg == "a\rb"


def test_binary_junk_never_raises() -> None:
    junk = bytes(range(256)) * 20 + b"\r\n"
    lines = ControlLineBuffer().feed(junk)
    assert len(lines) == 21  # one LF per copy of range(256), plus the final CRLF
    assert all(isinstance(line.verb, str) and not line.too_long for line in lines)


def test_empty_line_is_a_command_with_empty_verb() -> None:
    (line,) = ControlLineBuffer().feed(b"\r\n")
    assert (line.verb, line.arg) == ("", None)


def test_too_long_line_is_reported_once_and_memory_stays_bounded() -> None:
    buffer = ControlLineBuffer(max_line=100)
    (line,) = buffer.feed(b"STOR " + b"x" * 200)
    assert line.too_long
    assert line.verb == "STOR"
    assert len(line.raw) <= 64
    for _ in range(50):
        assert buffer.feed(b"y" * 10_000) == []
        assert buffer.pending == 0
    (after,) = buffer.feed(b"zzz\r\nNOOP\r\n")
    assert (after.verb, after.too_long) == ("NOOP", False)


def test_too_long_when_terminated_in_the_same_feed() -> None:
    lines = ControlLineBuffer(max_line=100).feed(b"X" * 150 + b"\r\nPWD\r\n")
    assert [(line.verb[:1], line.too_long) for line in lines] == [("X", True), ("P", False)]


def test_line_at_the_limit_is_accepted() -> None:
    (line,) = ControlLineBuffer(max_line=100).feed(b"A" * 100 + b"\r\n")
    assert not line.too_long
    assert len(line.raw) == 100


def test_redacted() -> None:
    assert CommandLine.parse("PASS hunter2").redacted == "PASS ***"
    assert CommandLine.parse("ADAT abcd").redacted == "ADAT ***"
    assert CommandLine.parse("RETR /x").redacted == "RETR /x"


@pytest.mark.parametrize("text", [" PASS hunter2", "PASS\thunter2", "pass  hunter2", "\tADAT abcd"])
def test_redacted_whatever_the_spacing(text: str) -> None:
    # such lines are not valid PASS commands (500), but the session logs every line it reads
    assert "hunter2" not in CommandLine.parse(text).redacted
    assert "abcd" not in CommandLine.parse(text).redacted


_command_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\xff"), max_size=40)
_commands = st.lists(_command_text, max_size=15)


@given(_commands, st.data())
def test_any_split_gives_the_same_lines(commands: list[str], data: st.DataObject) -> None:
    stream = b"".join(c.encode() + b"\r\n" for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    lines = _feed_all(chunks)
    assert [line.raw for line in lines] == commands


@given(st.binary(max_size=3000), st.data())
def test_arbitrary_bytes_are_bounded_and_split_invariant(stream: bytes, data: st.DataObject) -> None:
    whole = _feed_all([stream], max_line=64)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _feed_all(chunks, max_line=64) == whole
    assert all(len(line.raw) <= 66 or line.too_long for line in whole)
