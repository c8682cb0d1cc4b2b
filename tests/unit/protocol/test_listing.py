from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from s3dsi.protocol.entries import Entry
from s3dsi.protocol.listing import (
    DEFAULT_FACTS,
    SUPPORTED_FACTS,
    list_line,
    list_text,
    mlsc_line,
    mlsc_reply,
    mlsd_line,
    mlst_reply,
    mlsx_facts,
    nlst_line,
    stat_reply,
)

from .transcript import load

NOW = datetime(2026, 11, 22, 14, 0, 0, tzinfo=UTC)
SMALL = Entry(name="small.bin", is_dir=False, size=100000,
              modified=datetime(2026, 11, 22, 13, 49, 56, tzinfo=UTC), unique="fe00-2243a2")
DIR1 = Entry(name="dir1", is_dir=True, size=0, modified=None, unique="d-5f2a")


def _session(command: str) -> list[str]:
    return next(e.replies for e in load("raw_session_commands") if e.command == command)


def test_default_facts() -> None:
    assert mlsx_facts(SMALL, facts=DEFAULT_FACTS, owner="gfuser") == (
        "Type=file;Modify=20261122134956;Size=100000;Perm=dfrw;UNIX.mode=0644;UNIX.owner=gfuser;"
        "UNIX.group=gfuser;Unique=fe00-2243a2;")
    assert mlsx_facts(DIR1, facts=DEFAULT_FACTS, owner="u", type_override="cdir", count=4) == (
        "Type=cdir;Modify=19700101000000;Size=0;Perm=cdelmp;UNIX.mode=0755;UNIX.owner=u;UNIX.group=u;"
        "Unique=d-5f2a;X.count=4;")
    assert "Perm=elm;" in mlsx_facts(DIR1, facts=DEFAULT_FACTS, owner="u", root=True)


def test_selected_facts_match_gt() -> None:
    # After `OPTS MLST Type;Size;UNIX.mode;` GT printed exactly these facts, in this order.
    reply = mlst_reply("/srv/data/raw/small.bin", SMALL, facts=("Type", "Size", "UNIX.mode"), owner="gfuser")
    assert list(reply.lines) == [
        "250-status of /srv/data/raw/small.bin",
        " Type=file;Size=100000;UNIX.mode=0644; /srv/data/raw/small.bin",
        "250 End.",
    ]
    assert reply.lines[1] in [line for e in load("raw_session_commands") for line in e.replies]


def test_fact_order_with_everything_selected() -> None:
    text = mlsx_facts(SMALL, facts=tuple(reversed(SUPPORTED_FACTS)), owner="o", count=3)
    assert [part.split("=")[0] for part in text.rstrip(";").split(";")] == list(SUPPORTED_FACTS)
    assert "Charset=UTF-8;" in text
    assert mlsx_facts(SMALL, facts=(), owner="o") == ""


def test_fact_values_cannot_break_the_syntax() -> None:
    entry = Entry(name="x", is_dir=False, size=1, modified=None, unique="a;b c=d")
    text = mlsx_facts(entry, facts=("Unique", "UNIX.owner"), owner="ev il;")
    assert text == "UNIX.owner=ev_il_;Unique=a_b_c_d;"
    assert "Unique" not in mlsx_facts(Entry("x", False, 1, None, ""), facts=("Unique",), owner="o")


def test_modify_is_utc() -> None:
    local = Entry("x", False, 1, datetime(2026, 1, 1, 2, 0, 0, tzinfo=timezone(timedelta(hours=2))), "u")
    assert mlsx_facts(local, facts=("Modify",), owner="o") == "Modify=20260101000000;"


def test_mlsd_lines() -> None:
    assert mlsd_line(SMALL, facts=("Type", "Size"), owner="o") == b"Type=file;Size=100000; small.bin\r\n"
    assert mlsd_line(DIR1, facts=("Type",), owner="o", name=".", type_override="cdir") == b"Type=cdir; .\r\n"
    pdir = mlsd_line(DIR1, facts=("Type",), owner="o", name="..", type_override="pdir")
    assert pdir == b"Type=pdir; ..\r\n"
    weird = Entry(name="caf\udce9 x", is_dir=False, size=1, modified=None, unique="u")
    assert mlsd_line(weird, facts=("Type",), owner="o") == b"Type=file; caf\xe9 x\r\n"


@pytest.mark.parametrize("name", ["a\r\nType=file; forged", "a\nb", "a\rb", "", "nul\x00", ".", ".."])
def test_unlistable_names_are_skipped(name: str) -> None:
    entry = Entry(name=name, is_dir=False, size=1, modified=None, unique="u")
    assert mlsd_line(entry, facts=DEFAULT_FACTS, owner="o") == b""
    assert list_line(entry, "o", now=NOW) == b""
    assert mlsc_line(entry, facts=DEFAULT_FACTS, owner="o") is None
    if name not in (".", ".."):
        assert nlst_line(name) == b""


def test_list_line_matches_gt() -> None:
    gt = _session("STAT /srv/data/raw/small.bin")[1]
    assert list_text(SMALL, "gfuser", now=NOW) == gt[1:]
    assert list_line(SMALL, "gfuser", now=NOW) == gt[1:].encode() + b"\r\n"


def test_list_line_dates() -> None:
    dated = Entry("d", True, 4096, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "u")
    assert list_text(dated, "gfuser", now=NOW) == (
        "drwxr-xr-x   1   gfuser   gfuser         4096 Jan  2  2026 d")
    assert list_text(dated, "gfuser", now=datetime(2026, 3, 1, tzinfo=UTC)) == (
        "drwxr-xr-x   1   gfuser   gfuser         4096 Jan  2 03:04 d")
    future = Entry("f", False, 1, NOW + timedelta(days=3), "u")
    assert list_text(future, "o", now=NOW) == "-rw-r--r--   1        o        o            1 Nov 25  2026 f"
    assert list_text(DIR1, "averyveryverylongowner", now=NOW) == (
        "drwxr-xr-x   1 averyveryverylongowner averyveryverylongowner            0 Jan  1  1970 dir1")


def test_nlst_line() -> None:
    assert nlst_line("f1.txt") == b"f1.txt\r\n"
    assert nlst_line(".") == b".\r\n"


def test_mlst_echoes_path_as_given() -> None:
    reply = mlst_reply("/srv/data/src/", DIR1, facts=("Type",), owner="o")
    assert reply.lines == ("250-status of /srv/data/src/", " Type=dir; /srv/data/src/", "250 End.")
    hostile = mlst_reply("/a\r\n250 End.", SMALL, facts=("Type",), owner="o")
    assert [line for line in hostile.lines if line.startswith("250 ")] == ["250 End."]


def test_mlsc_reply_shape() -> None:
    lines = [mlsc_line(DIR1, facts=("Type",), owner="o", name=".", type_override="cdir"),
             mlsc_line(SMALL, facts=("Type", "Size"), owner="o"),
             mlsc_line(Entry("bad\n", False, 1, None, "u"), facts=("Type",), owner="o")]
    assert mlsc_reply("/srv/data/raw/dir1", lines).lines == (
        "250-Contents of /srv/data/raw/dir1", " Type=cdir; .", " Type=file;Size=100000; small.bin",
        "250 End.")


def test_stat_reply_matches_gt() -> None:
    reply = stat_reply("/srv/data/raw/small.bin", SMALL, owner="gfuser", now=NOW)
    assert list(reply.lines) == _session("STAT /srv/data/raw/small.bin")
    root = Entry(name="", is_dir=True, size=0, modified=None, unique="root")
    assert stat_reply("/", root, owner="o", now=NOW).lines[1].endswith(" /")
