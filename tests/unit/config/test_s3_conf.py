"""The S3 connector conf (key = value) format."""

from __future__ import annotations

import pytest

from s3dsi.config.s3_conf import lex_line, parse_s3_conf
from s3dsi.config.textfile import TextFileError


@pytest.mark.parametrize(("line", "expected"), [
    ("host_name = s3.amazonaws.com", ("host_name", "s3.amazonaws.com")),
    ("host_name=s3.amazonaws.com", ("host_name", "s3.amazonaws.com")),
    ("host_name s3.amazonaws.com", ("host_name", "s3.amazonaws.com")),
    ("part_size_min = 16M   # bigger parts", ("part_size_min", "16M")),
    ('s3_map_filename = "/srv/s3 map#1"', ("s3_map_filename", "/srv/s3 map#1")),
    ("path = /a#b", ("path", "/a#b")),
    ("storage_class =", ("storage_class", "")),
    ("  verify_tls = no\r", ("verify_tls", "no")),
])
def test_lines(line: str, expected: tuple[str, str]) -> None:
    assert lex_line(line) == expected


@pytest.mark.parametrize("line", ["", "# host_name = x", "   # x = y"])
def test_comments(line: str) -> None:
    assert lex_line(line) is None


@pytest.mark.parametrize("line", ["= value", "9key = 1", 'key = "open', 'key = a"b', "ke-y = 1"])
def test_malformed(line: str) -> None:
    with pytest.raises(TextFileError):
        lex_line(line)


def test_parse_names_lines() -> None:
    entries = parse_s3_conf(b"\xef\xbb\xbf# c\nregion = eu-west-1\r\n\npart_workers = 4\n", "s3.conf")
    assert [(e.where, e.key, e.value) for e in entries] == [("s3.conf:2", "region", "eu-west-1"),
                                                            ("s3.conf:4", "part_workers", "4")]
    with pytest.raises(TextFileError) as info:
        parse_s3_conf(b"region = x\n= y\n", "s3.conf")
    assert info.value.line == 2
