from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3dsi.protocol.parsing import (
    ProtocolSyntaxError,
    RetrOptions,
    format_delayed_pasv,
    format_epsv,
    format_pasv,
    format_spas,
    parse_allow_delayed,
    parse_cksm,
    parse_cksm_markers,
    parse_clientinfo,
    parse_eprt,
    parse_eret,
    parse_esto,
    parse_mlst_facts,
    parse_opts_retr,
    parse_port,
    parse_rest,
    parse_spor,
)
from s3dsi.protocol.ranges import RestMarker

from .transcript import load


def _error(fn: object, *args: object) -> str:
    with pytest.raises(ProtocolSyntaxError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.reply.lines[-1]


def test_port() -> None:
    assert parse_port("127,0,0,1,200,10") == ("127.0.0.1", 51210)
    assert parse_port(" 10,1,2,3,0,21 ") == ("10.1.2.3", 21)


@pytest.mark.parametrize("arg", ["1,2,3", "127,0,0,1,200", "256,0,0,1,1,1", "a,b,c,d,e,f", "1,2,3,4,0,0",
                                 "1,2,3,4,5,6,7", "-1,0,0,1,1,1", "١,0,0,1,1,1", ""])
def test_port_errors(arg: str) -> None:
    assert _error(parse_port, arg) == "501 Illegal PORT command."


def test_eprt() -> None:
    assert parse_eprt("|1|127.0.0.1|51210|") == ("127.0.0.1", 51210)
    assert parse_eprt("|2|::1|51210|") == ("::1", 51210)
    assert parse_eprt("!2!fe80::1!80!") == ("fe80::1", 80)
    assert _error(parse_eprt, "|3|x|1|") == "522 Network protocol not supported, use (1,2)"
    for bad in ("|1|::1|80|", "|2|127.0.0.1|80|", "|1|127.0.0.1|0|", "|1|127.0.0.1|70000|", "|1|127.0.0.1|",
                "1|127.0.0.1|80|", "x", "|1|1.2.3.4|80|x|"):
        assert _error(parse_eprt, bad) == "501 Illegal PORT command.", bad


def test_spor() -> None:
    assert parse_spor("127,0,0,1,200,10 127,0,0,1,200,11") == [("127.0.0.1", 51210), ("127.0.0.1", 51211)]
    assert parse_spor("|1|127.0.0.1|52175|") == [("127.0.0.1", 52175)]
    assert _error(parse_spor, "  ") == "501 Syntax error in parameters or arguments."
    assert _error(parse_spor, "127,0,0,1,200,10 junk") == "501 Illegal PORT command."


def test_address_replies_match_gt() -> None:
    session = {e.command: e.replies for e in load("raw_session_commands")}
    assert list(format_pasv("127.0.0.1", 170 * 256 + 11).lines) == session["PASV"]
    assert list(format_epsv(54603).lines) == session["EPSV"]
    assert list(format_spas([("127.0.0.1", 189 * 256 + 119)]).lines) == session["SPAS"]
    assert list(format_spas([("127.0.0.1", 52175)], extended=True).lines) == session["SPAS 2"]
    delayed = {e.command: e.replies for e in load("raw_delayed_pasv_spas")}
    reply = format_delayed_pasv("127.0.0.1", 235 * 256 + 163)
    assert reply.lines[0] == delayed["RETR /srv/data/raw/hello.txt"][0]


def test_address_reply_edge_cases() -> None:
    assert format_pasv("::ffff:10.0.0.1", 2000).lines == ("227 Entering Passive Mode (10,0,0,1,7,208)",)
    assert format_spas([("::1", 5)], extended=True).lines[1] == " |2|::1|5|"
    assert format_spas([("1.2.3.4", 5), ("1.2.3.5", 6)]).lines == (
        "229-Entering Striped Passive Mode.", " 1,2,3,4,0,5", " 1,2,3,5,0,6", "229 End")
    with pytest.raises(ValueError):
        format_pasv("::1", 1)
    with pytest.raises(ValueError):
        format_pasv("1.2.3.4", 0)
    with pytest.raises(ValueError):
        format_epsv(70000)
    with pytest.raises(ValueError):
        format_spas([])


def test_eret_esto() -> None:
    assert parse_eret("P 6 4 /srv/data/raw/hello.txt") == (6, 4, "/srv/data/raw/hello.txt")
    assert parse_eret("p 0 10 /a b") == (0, 10, "/a b")
    assert parse_esto("A 10 /srv/data/raw/up_rest.bin") == (10, "/srv/data/raw/up_rest.bin")
    for bad in ("X 1 2 /p", "P 1 /p", "/p", "P -1 2 /p", "P 1 2 ", 'mymod="a=1;b=2" /p', "P a b /p"):
        assert _error(parse_eret, bad) == "500 command failed.", bad
    for bad in ("B 1 /p", "A /p", "A -1 /p", 'mymod="x=y" /p', "A 1 "):
        assert _error(parse_esto, bad) == "500 command failed.", bad


def test_cksm() -> None:
    assert parse_cksm("md5 0 -1 /srv/data/raw/small.bin") == ("MD5", 0, -1, "/srv/data/raw/small.bin")
    assert parse_cksm("MD5 1000 5000 /a b") == ("MD5", 1000, 5000, "/a b")
    assert parse_cksm("ADLER32 0 0 /x") == ("ADLER32", 0, 0, "/x")
    for bad in ("MD5 /srv/data/raw/small.bin", "MD5 0 -2 /x", "MD5 -1 1 /x", "MD5 0 x /x", "MD5 0 1 "):
        assert _error(parse_cksm, bad) == "501 Syntax error in parameters or arguments.", bad


def test_rest() -> None:
    assert parse_rest("100") == RestMarker(held=((0, 100),), stream_offset=100)
    assert parse_rest("0") == RestMarker(held=(), stream_offset=0)
    assert parse_rest("0-100,200-300").held == ((0, 100), (200, 300))
    for bad in ("abc", "5-3", "0-10,", "-5", "1-2-3", "", "1 2", "0-10,,20-30"):
        assert _error(parse_rest, bad) == "501 bad parameter.", bad


def test_clientinfo() -> None:
    text = ('scheme=ftp;appname="globus-url-copy";'
            'appver="10.12 (gcc64, 1653033972-1) [Grid Community Toolkit 6.2]";')
    assert parse_clientinfo(text) == {"scheme": "ftp", "appname": "globus-url-copy",
                                      "appver": "10.12 (gcc64, 1653033972-1) [Grid Community Toolkit 6.2]"}
    assert parse_clientinfo('a="x;y";B=2') == {"a": "x;y", "b": "2"}
    assert parse_clientinfo("junk;k=v;=nokey;also junk") == {"k": "v"}
    assert parse_clientinfo('k="unterminated') == {"k": "unterminated"}
    assert parse_clientinfo("") == {}


def test_clientinfo_is_bounded() -> None:
    many = ";".join(f"k{i}={'v' * 2000}" for i in range(100))
    info = parse_clientinfo(many)
    assert len(info) == 32
    assert all(len(v) == 512 for v in info.values())


@given(st.text(max_size=300))
def test_clientinfo_never_raises(text: str) -> None:
    info = parse_clientinfo(text)
    assert len(info) <= 32


def test_opts_retr() -> None:
    assert parse_opts_retr("Parallelism=4,4,4;") == RetrOptions(parallelism=4)
    assert parse_opts_retr("parallelism=3;") == RetrOptions(parallelism=3)
    assert parse_opts_retr("StripeLayout=Partitioned;") == RetrOptions(stripe_layout="Partitioned")
    assert parse_opts_retr("markers=2;BlockSize=5;") == RetrOptions(markers=2.0, block_size=5)
    for bad in ("Bogus=1;", "Parallelism=4,4,4", "Parallelism=x;", "StripeLayout=Round;", "markers=-1;",
                "Parallelism=1,2,3,4;", ";", "windowsize=;"):
        assert _error(parse_opts_retr, bad) == "500 OPTS failed.", bad


def test_other_opts() -> None:
    assert parse_allow_delayed("AllowDelayed=1;") is True
    assert parse_allow_delayed("allowdelayed=0") is False
    assert _error(parse_allow_delayed, "AllowDelayed=yes;") == "500 OPTS failed."
    facts = ("Type", "Modify", "Size", "UNIX.mode")
    assert parse_mlst_facts("size;TYPE;unix.MODE;nonsense;", facts) == ("Type", "Size", "UNIX.mode")
    assert parse_mlst_facts(";", facts) == ()
    assert parse_cksm_markers("markers=5;") == 5
    assert parse_cksm_markers("markers=5") == 5
    assert _error(parse_cksm_markers, "interval=5;") == "500 OPTS failed."
