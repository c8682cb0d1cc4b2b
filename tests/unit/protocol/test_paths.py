from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3dsi.protocol.paths import Target, basename, names_directory, parent, resolve


@pytest.mark.parametrize(("cwd", "arg", "expected"), [
    ("/", None, "/"),
    ("/", "", "/"),
    ("/a/b", None, "/a/b"),
    ("/", "bucket", "/bucket"),
    ("/bucket", "key", "/bucket/key"),
    ("/bucket", "/other/k", "/other/k"),
    ("/", "//bucket///a//b/", "/bucket/a/b"),
    ("/a/b", "..", "/a"),
    ("/a/b", "../..", "/"),
    ("/a/b", "../../../..", "/"),
    ("/", "/..", "/"),
    ("/a", "./x/./y/.", "/a/x/y"),
    ("/a", "x/../y", "/a/y"),
    ("/a", "with space/and;semi", "/a/with space/and;semi"),
    ("/a", "...", "/a/..."),
])
def test_resolve(cwd: str, arg: str | None, expected: str) -> None:
    assert resolve(cwd, arg) == expected


def test_directory_hint_and_helpers() -> None:
    assert names_directory("/srv/data/src/")
    assert not names_directory("/srv/x")
    assert not names_directory(None)
    assert parent("/a/b") == "/a"
    assert parent("/a") == "/"
    assert parent("/") == "/"
    assert basename("/a/b") == "b"
    assert basename("/") == ""
    target = Target.of("/cwd", "dir/")
    assert (target.path, target.given, target.trailing_slash) == ("/cwd/dir", "dir/", True)
    assert Target.of("/cwd", None).given == "/cwd"


_segments = st.lists(st.sampled_from(["a", "b", ".", "..", "", "x y", "é"]), max_size=12)


@given(_segments, _segments)
def test_resolve_invariants(cwd_parts: list[str], arg_parts: list[str]) -> None:
    cwd = resolve("/", "/" + "/".join(cwd_parts))
    result = resolve(cwd, "/".join(arg_parts))
    assert result.startswith("/")
    assert result == "/" or not result.endswith("/")
    assert "//" not in result
    assert all(segment not in (".", "..") for segment in result.split("/"))
    assert resolve("/", result) == result  # idempotent
    assert result == posixpath.normpath("/" + posixpath.join(cwd, "/".join(arg_parts))).replace("//", "/")
