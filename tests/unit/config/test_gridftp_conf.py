"""The gridftp.conf / gridftp.d line format and directory order, as globus-gridftp-server reads them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3dsi.config.gridftp_conf import directory_files, is_loaded_name, lex_line, parse_conf
from s3dsi.config.textfile import TextFileError


@pytest.mark.parametrize(("line", "expected"), [
    ("threads 2", ("threads", "2", False)),
    ("   port\t2811   ", ("port", "2811", False)),
    ('banner "Welcome to S3"', ("banner", "Welcome to S3", False)),
    ('banner "a # b"', ("banner", "a # b", False)),
    ('"port" 2811', ("port", "2811", False)),
    ('banner ""', ("banner", "", False)),
    ("threads 2\r", ("threads", "2", False)),
    ('$GLOBUS_S3_DEBUG "1023,/var/log/s3.log"', ("GLOBUS_S3_DEBUG", "1023,/var/log/s3.log", True)),
    ("$GLOBUS_TCP_PORT_RANGE 50000,51000", ("GLOBUS_TCP_PORT_RANGE", "50000,51000", True)),
    ("$ SPACED value", ("SPACED", "value", True)),
    ("path /a#b", ("path", "/a#b", False)),
    ("usér välue", ("usér", "välue", False)),
])
def test_lines(line: str, expected: tuple[str, str, bool]) -> None:
    assert lex_line(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "# threads 2", "   # comment", "\t#"])
def test_blank_and_comment_lines(line: str) -> None:
    assert lex_line(line) is None


@pytest.mark.parametrize(("line", "reason"), [
    ("threads", "no value"),
    ("banner Welcome to S3", "unexpected text"),
    ("port 2811 # the port", "unexpected text"),
    ('banner "unterminated', "unterminated"),
    ("$1BAD value", "environment variable name"),
    ("$NAME", "no value"),
    ('"" 1', "option name"),
])
def test_malformed_lines(line: str, reason: str) -> None:
    with pytest.raises(TextFileError, match=reason):
        lex_line(line)


def test_parse_keeps_order_and_line_numbers() -> None:
    data = b"# header\nthreads 2\n\n$X 1\nport 2812\n"
    entries = parse_conf(data, "f")
    assert [(e.line, e.name, e.value, e.env) for e in entries] == [
        (2, "threads", "2", False), (4, "X", "1", True), (5, "port", "2812", False)]
    assert entries[0].where == "f:2"


def test_crlf_and_bom_are_tolerated() -> None:
    entries = parse_conf(b"\xef\xbb\xbfthreads 2\r\nport 2811\r\n", "f")
    assert [(e.name, e.value) for e in entries] == [("threads", "2"), ("port", "2811")]


def test_error_names_the_line() -> None:
    with pytest.raises(TextFileError) as info:
        parse_conf(b"threads 2\nport\n", "f")
    assert info.value.line == 2


def test_nul_bytes_and_binary_junk_are_errors_with_a_line() -> None:
    with pytest.raises(TextFileError, match="NUL") as info:
        parse_conf(b"threads 2\nport 28\x0011\n", "f")
    assert info.value.line == 2
    with pytest.raises(TextFileError, match="UTF-8") as info:
        parse_conf(b"threads 2\n\n\xff\xfe\x80 junk\n", "f")
    assert info.value.line == 3


def test_huge_line_is_refused_quickly() -> None:
    with pytest.raises(TextFileError, match="longer than") as info:
        parse_conf(b"threads 2\nbanner " + b"x" * (1024 * 1024) + b"\n", "f")
    assert info.value.line == 2


@pytest.mark.parametrize(("name", "loaded"), [
    ("gridftp-s3", True), ("gridftp-hdfs.conf", True), ("z", True), (".hidden", False), ("old~", False),
    ("x.rpmsave", False), ("x.rpmnew", False), ("x.bak", False), ("x.dpkg-dist", False),
    ("x.dpkg-old", False), ("x.dpkg-new", False),
])
def test_which_directory_entries_are_read(name: str, loaded: bool) -> None:
    assert is_loaded_name(name) is loaded


def test_directory_order_is_by_name_bytes(tmp_path: Path) -> None:
    for name in ("b", "a", "B", "a.conf", ".x", "c~", "sub"):
        (tmp_path / name).write_text("")
    os.remove(tmp_path / "sub")
    (tmp_path / "sub").mkdir()
    assert [Path(p).name for p in directory_files(str(tmp_path))] == ["B", "a", "a.conf", "b"]


def test_dangling_link_in_directory_is_listed_so_reading_it_fails(tmp_path: Path) -> None:
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    assert [Path(p).name for p in directory_files(str(tmp_path))] == ["gone"]
