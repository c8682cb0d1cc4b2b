from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3dsi.security.gridmap import DEFAULT_GRIDMAP, GLOBUS_MAPPING, GridMap, GridMapError, gridmap_path

TEXT = b"""# comment line
   # indented comment

"/C=XX/O=GSITest/OU=People/CN=Test User" alice,bob
"/C=XX/O=GSITest/CN=With \\"Quote\\"" carol
/C=XX/O=GSITest/CN=Unquoted dave
"/DC=org/DC=example/CN=J\\xC3\\xBCrgen" erin , frank
"/C=XX/O=GSITest/OU=People/CN=Test User" mallory
"""


def test_parse_and_default_user() -> None:
    gm = GridMap.parse(TEXT, "gm")
    assert gm.users_for("/C=XX/O=GSITest/OU=People/CN=Test User") == ("alice", "bob")  # first entry wins
    assert gm.local_user("/C=XX/O=GSITest/OU=People/CN=Test User", GLOBUS_MAPPING) == "alice"
    assert gm.local_user("/C=XX/O=GSITest/OU=People/CN=Test User", "") == "alice"
    assert gm.users_for('/C=XX/O=GSITest/CN=With "Quote"') == ("carol",)
    assert gm.users_for("/C=XX/O=GSITest/CN=Unquoted") == ("dave",)


def test_explicit_user_must_be_listed() -> None:
    gm = GridMap.parse(TEXT)
    dn = "/C=XX/O=GSITest/OU=People/CN=Test User"
    assert gm.local_user(dn, "bob") == "bob"
    assert gm.local_user(dn, "carol") is None
    assert gm.local_user(dn, "mallory") is None  # a later duplicate line adds nothing
    assert gm.local_user("/C=XX/O=Other/CN=Nobody", GLOBUS_MAPPING) is None


def test_escapes_match_the_oneline_form_and_raw_utf8() -> None:
    gm = GridMap.parse(TEXT)
    assert gm.local_user("/DC=org/DC=example/CN=J\\xC3\\xBCrgen", GLOBUS_MAPPING) == "erin"
    assert gm.local_user("/DC=org/DC=example/CN=Jürgen", "frank") == "frank"
    assert gm.local_user("/DC=org/DC=example/CN=J\\xc3\\xbcrgen", "erin") == "erin"  # hex case is irrelevant
    assert gm.local_user("/DC=org/DC=example/CN=JURGEN", "erin") is None  # the comparison is exact


@pytest.mark.parametrize(("line", "reason"), [
    ('"/C=XX/CN=a alice', "closing quote"),
    ('"/C=XX/CN=a"', "no local user"),
    ('"/C=XX/CN=a"alice', "white space"),
    ('"/C=XX/CN=a" al ice', "bad local user name"),
    ('"" alice', "empty DN"),
])
def test_bad_lines_are_reported_with_file_and_line(line: str, reason: str) -> None:
    with pytest.raises(GridMapError, match=rf"^gm:3: .*{reason}"):
        GridMap.parse(f"# a\n\n{line}\n".encode(), "gm")


def test_file_checks(tmp_path: Path) -> None:
    path = tmp_path / "grid-mapfile"
    path.write_bytes(TEXT)
    path.chmod(0o644)
    assert GridMap.load(str(path)).users_for("/C=XX/O=GSITest/CN=Unquoted") == ("dave",)
    path.chmod(0o664)
    with pytest.raises(GridMapError, match="too open"):
        GridMap.load(str(path))
    path.chmod(0o646)
    with pytest.raises(GridMapError, match="too open"):
        GridMap.load(str(path))
    path.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(GridMapError, match="symbolic link"):
        GridMap.load(str(link))
    with pytest.raises(GridMapError, match="no such file"):
        GridMap.load(str(tmp_path / "missing"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another owner")
def test_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "grid-mapfile"
    path.write_bytes(TEXT)
    path.chmod(0o644)
    os.chown(path, 65534, 65534)
    with pytest.raises(GridMapError, match="owned by uid 65534"):
        GridMap.load(str(path))


def test_path_precedence() -> None:
    assert gridmap_path("/opt/gm", {"GRIDMAP": "/env/gm"}) == "/opt/gm"
    assert gridmap_path(None, {"GRIDMAP": "/env/gm"}) == "/env/gm"
    assert gridmap_path(None, {}) == DEFAULT_GRIDMAP
