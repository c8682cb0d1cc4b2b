"""globus-url-copy against s3dsi in MODE E: parallel streams, -fast connection reuse, pipelining,
partial reads (ERET), delayed passive, striping (SPAS/SPOR), perf/range markers, listings over MODE E.

Every transferred file is compared byte for byte (the object via the moto server, the download on
disk). Protocol facts (MODE E on the wire, 125 on reuse, 127 for delayed passive, 112/111 markers)
are read from the client's own ``-dbg`` trace of the control channel.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, run, unique, write_file
from tests.support.guc_debug import (
    Exchange,
    commands,
    on,
    parse_debug,
    perf_marker_bytes,
    progress_bytes,
    range_markers,
    ranges_tile,
    replies,
)
from tests.support.programs import need
from tests.support.s3dsi_env import MiB

pytestmark = pytest.mark.interop

PART = 5 * MiB  # part_size_min of the test configuration (tests/support/s3dsi_env.py)
SIZES = {"empty": 0, "1-byte": 1, "one-part": PART, "part-plus-1": PART + 1, "12-parts": 11 * PART + 1}
TRANSFER_VERBS = ("STOR", "RETR", "ERET", "ESTO", "MLSD", "LIST", "NLST")


def guc(*args: str, timeout: float = 180) -> tuple[str, list[Exchange]]:
    """globus-url-copy -dbg ARGS; returns its stdout and the parsed control-channel trace."""
    proc = run([need("globus-url-copy"), "-dbg", *args], timeout=timeout)
    return proc.stdout, parse_debug(proc.stderr)


def verb(command: str) -> str:
    return command.split(" ", 1)[0].upper()


def preliminary_replies(exchanges: Sequence[Exchange]) -> list[tuple[str, str]]:
    """(transfer command, its 125/150 reply) in order, for one server's trace."""
    out: list[tuple[str, str]] = []
    pending: str | None = None
    for e in exchanges:
        if e.kind == "command" and verb(e.text) in TRANSFER_VERBS:
            pending = e.text
        elif e.kind == "reply" and pending is not None and e.code in (125, 150):
            out.append((pending, e.text))
            pending = None
    return out


def assert_reuse_rule(exchanges: Sequence[Exchange]) -> int:
    """The reference server's rule: a MODE E transfer with no PASV/PORT/SPAS/SPOR since the previous
    one reuses its data connections (125), one after a new set-up opens new ones (150). Returns the
    number of 125 replies."""
    reused = 0
    setup_since_last = False
    seen_transfer = False
    mode_e = False
    pending: str | None = None
    for e in exchanges:
        if e.kind == "command":
            v = verb(e.text)
            if v == "MODE":
                mode_e = e.text.upper().endswith("E")
            if v in ("PASV", "PORT", "SPAS", "SPOR", "EPSV", "EPRT", "MODE"):
                setup_since_last = True
            if v in TRANSFER_VERBS:
                pending = e.text
            continue
        if pending is None or e.code not in (125, 150):
            continue
        expect = 125 if (mode_e and seen_transfer and not setup_since_last) else 150
        assert e.code == expect, f"{pending!r} answered {e.text!r}, expected {expect}"
        reused += e.code == 125
        seen_transfer = mode_e
        setup_since_last = False
        pending = None
    return reused


def multipart_count(s3dsi: S3dsi, bucket: str, key: str) -> int:
    """Number of parts from the multipart ETag (``"<md5>-N"``); 0 for a single PUT."""
    etag = s3dsi.moto.client().head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    return int(etag.rsplit("-", 1)[1]) if "-" in etag else 0


# -- -p 1 / 4 / 8, upload then download, every size -------------------------------------------------
@pytest.mark.parametrize("size_name", list(SIZES))
@pytest.mark.parametrize("parallel", [1, 4, 8])
def test_parallel_upload_and_download_are_byte_exact(s3dsi: S3dsi, bucket: str, tmp_path: Path,
                                                     parallel: int, size_name: str) -> None:
    size = SIZES[size_name]
    data = os.urandom(size)
    key = unique(f"p{parallel}-{size_name}")
    src = write_file(tmp_path / "src.bin", data)

    _, up = guc("-p", str(parallel), src.as_uri(), s3dsi.url(f"/{bucket}/{key}"))
    sent = commands(up)
    assert "MODE E" in sent  # -p 1 is MODE E with one stream, not stream mode
    assert "PASV" in sent  # the receiver listens in MODE E
    assert f"ALLO {size}" in sent or size == 0  # the client announces no size for an empty file
    assert s3dsi.object_bytes(bucket, key) == data
    if size > 10 * PART:
        assert multipart_count(s3dsi, bucket, key) > 10
    assert s3dsi.uploads(bucket) == []

    dst = tmp_path / "back.bin"
    _, down = guc("-p", str(parallel), s3dsi.url(f"/{bucket}/{key}"), dst.as_uri())
    sent = commands(down)
    assert "MODE E" in sent and f"OPTS RETR Parallelism={parallel},{parallel},{parallel};" in sent
    assert any(c.startswith("PORT ") for c in sent)  # the sender (s3dsi) connects
    assert dst.read_bytes() == data


# -- -fast over a tree: data connections reused (125) -----------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for i in range(14):
        files[f"f{i:02d}.bin"] = os.urandom(i * 997)
    for i in range(6):
        files[f"sub1/g{i}.dat"] = os.urandom(100 + i * 5000)
        files[f"sub1/deep/h{i}.txt"] = f"line {i}\n".encode() * (i + 1)
    files["sub2/empty.txt"] = b""
    files["sub2/one.bin"] = b"\x00"
    for rel, data in files.items():
        write_file(root / rel, data)
    return files


def _local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_fast_recursive_upload_and_download_reuse_connections(s3dsi: S3dsi, bucket: str,
                                                               tmp_path: Path) -> None:
    files = _tree(tmp_path / "tree")
    top = unique("fast")
    _, up = guc("-r", "-cd", "-fast", "-p", "2", (tmp_path / "tree").as_uri() + "/",
                s3dsi.url(f"/{bucket}/{top}/"))
    for rel, data in files.items():
        assert s3dsi.object_bytes(bucket, f"{top}/{rel}") == data, rel
    stors = [c for c in commands(up) if c.startswith("STOR ")]
    assert len(stors) == len(files)
    assert assert_reuse_rule(up) >= len(files) - 1  # one PASV served the whole tree
    assert sum(1 for r in replies(up) if r.startswith("125 Beginning transfer; reusing existing data "
                                                      "connection.")) >= len(files) - 1

    back = tmp_path / "back"
    _, down = guc("-r", "-cd", "-fast", "-p", "2", s3dsi.url(f"/{bucket}/{top}/"), back.as_uri() + "/")
    assert _local_tree(back) == files
    sent = commands(down)
    assert any(c.startswith("MLSD ") for c in sent)
    assert assert_reuse_rule(down) > 0
    assert s3dsi.uploads(bucket) == []


# -- -pp: pipelined transfers of several files --------------------------------------------------------
def test_pipelined_upload_and_download_of_several_files(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    files = {f"pp{i}.bin": os.urandom(37 * i + 1) for i in range(8)}
    files["sub/last.bin"] = os.urandom(PART + 5)
    for rel, data in files.items():
        write_file(tmp_path / "src" / rel, data)
    top = unique("pp")
    _, up = guc("-pp", "-r", "-cd", (tmp_path / "src").as_uri() + "/", s3dsi.url(f"/{bucket}/{top}/"))
    for rel, data in files.items():
        assert s3dsi.object_bytes(bucket, f"{top}/{rel}") == data, rel
    assert "MODE E" in commands(up)
    assert assert_reuse_rule(up) > 0

    back = tmp_path / "back"
    _, down = guc("-pp", "-r", "-cd", s3dsi.url(f"/{bucket}/{top}/"), back.as_uri() + "/")
    assert _local_tree(back) == files
    assert assert_reuse_rule(down) > 0


# -- -off/-len in MODE E: ERET P --------------------------------------------------------------------
@pytest.mark.parametrize(("offset", "length"), [(PART - 100, 3 * MiB + 7), (1, 1), (2 * MiB + 5, None)])
def test_partial_download_mode_e(s3dsi: S3dsi, bucket: str, tmp_path: Path,
                                 offset: int, length: int | None) -> None:
    data = os.urandom(12 * MiB + 11)
    key = unique("eret")
    guc("-p", "4", write_file(tmp_path / "src.bin", data).as_uri(), s3dsi.url(f"/{bucket}/{key}"))
    dst = tmp_path / "part.bin"
    extra = ["-len", str(length)] if length is not None else []
    _, down = guc("-p", "4", "-off", str(offset), *extra, s3dsi.url(f"/{bucket}/{key}"), dst.as_uri())
    end = len(data) if length is None else offset + length
    transfer = [c for c in commands(down) if c.startswith(("ERET ", "RETR ", "REST "))]
    if length is None:  # the client asks for the rest of the file as a MODE E restart
        assert transfer == [f"REST 0-{offset}", f"RETR /{bucket}/{key}"]
    else:
        assert transfer == [f"ERET P {offset} {length} /{bucket}/{key}"]
    got = dst.read_bytes()
    # the client writes the range at its own offset in the local file
    assert len(got) == end
    assert got[offset:end] == data[offset:end]


# -- -dp: delayed passive (200 Passive delayed., then 127) ----------------------------------------------
def _delayed(exchanges: Sequence[Exchange]) -> None:
    texts = [e.text for e in exchanges]
    assert "OPTS PASV AllowDelayed=1;" in texts
    pasv = texts.index("PASV")
    assert texts[pasv + 1] == "200 Passive delayed."
    codes = [e.code for e in exchanges[pasv + 1:] if e.kind == "reply"]
    assert 127 in codes and codes.index(127) < codes.index(150)  # the address comes before 150


def test_delayed_passive_stream_upload_and_download(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 17)
    key = unique("dp")
    _, up = guc("-dp", write_file(tmp_path / "src.bin", data).as_uri(), s3dsi.url(f"/{bucket}/{key}"))
    _delayed(up)
    assert s3dsi.object_bytes(bucket, key) == data
    dst = tmp_path / "back.bin"
    _, down = guc("-dp", s3dsi.url(f"/{bucket}/{key}"), dst.as_uri())
    _delayed(down)
    assert dst.read_bytes() == data


def test_delayed_passive_mode_e_upload(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(PART + 3)
    key = unique("dp-e")
    _, up = guc("-dp", "-p", "4", write_file(tmp_path / "src.bin", data).as_uri(),
                s3dsi.url(f"/{bucket}/{key}"))
    _delayed(up)
    assert s3dsi.object_bytes(bucket, key) == data


# -- -stripe: SPAS / SPOR with a single-stripe server ------------------------------------------------
def test_striped_upload_and_download(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(2 * PART + 999)
    key = unique("stripe")
    _, up = guc("-stripe", "-p", "2", write_file(tmp_path / "src.bin", data).as_uri(),
                s3dsi.url(f"/{bucket}/{key}"))
    assert "SPAS" in commands(up)
    spas = next(r for r in replies(up) if r.startswith("229"))
    lines = spas.splitlines()
    assert lines[0] == "229-Entering Striped Passive Mode." and lines[-1].startswith("229 ")
    assert len(lines) == 3 and lines[1].startswith(" 127,0,0,1,")  # one stripe
    assert s3dsi.object_bytes(bucket, key) == data

    dst = tmp_path / "back.bin"
    _, down = guc("-stripe", "-p", "2", s3dsi.url(f"/{bucket}/{key}"), dst.as_uri())
    assert any(c.startswith(("SPOR ", "PORT ")) for c in commands(down))
    assert dst.read_bytes() == data


# -- -vb: perf (112) and range (111) markers during a MODE E upload ---------------------------------
def test_upload_perf_and_range_markers(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(3 * PART + 12345)
    key = unique("vb")
    out, up = guc("-vb", "-p", "4", write_file(tmp_path / "src.bin", data).as_uri(),
                  s3dsi.url(f"/{bucket}/{key}"))
    # the client prints a progress line only when its timer catches a marker: check it when printed
    shown = progress_bytes(out)
    assert not shown or shown[-1] == len(data)
    perf = perf_marker_bytes(up)
    assert perf[0] == 0 and perf[-1] == len(data)  # one at the start, one with the total at the end
    assert perf == sorted(perf)
    assert ranges_tile(range_markers(up), len(data))  # incremental, end-exclusive, all of [0, size)
    codes = [e.code for e in up if e.kind == "reply"]
    assert codes[-1] == 226 and codes.index(111) < codes.index(226)
    assert s3dsi.object_bytes(bucket, key) == data


# -- -fast -list: MLSD over MODE E ------------------------------------------------------------------
def test_listing_over_mode_e(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    top = unique("ls")
    names = {f"file{i}.bin": os.urandom(i) for i in range(5)}
    for name, data in names.items():
        write_file(tmp_path / "src" / name, data)
    write_file(tmp_path / "src" / "subdir" / "x", b"x")
    guc("-r", "-cd", (tmp_path / "src").as_uri() + "/", s3dsi.url(f"/{bucket}/{top}/"))

    out, listing = guc("-fast", "-list", s3dsi.url(f"/{bucket}/{top}/"))
    sent = commands(listing)
    assert "MODE E" in sent and "OPTS RETR Parallelism=1,1,1;" in sent
    assert sent[-1] == f"MLSD /{bucket}/{top}/"
    listed = {line.strip() for line in out.splitlines()[1:] if line.strip()}
    assert listed == {*names, "subdir/"}
    assert on(listing, s3dsi.address[1]) == listing


# -- the daemon side: no transport errors ---------------------------------------------------------
def test_no_transport_errors_in_daemon_log(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    """Clients close cached MODE E connections the daemon never reads from, and senders may write
    before the daemon attaches its reader (delayed passive): neither may end in an event-loop
    'Fatal error on transport' (uvloop starts reading right after accepting, whatever was asked)."""
    data = os.urandom(PART + 1)
    key = unique("quiet")
    src = write_file(tmp_path / "src.bin", data)
    guc("-dp", src.as_uri(), s3dsi.url(f"/{bucket}/{key}"))
    guc("-p", "4", s3dsi.url(f"/{bucket}/{key}"), (tmp_path / "back.bin").as_uri())
    assert (tmp_path / "back.bin").read_bytes() == data
    log = s3dsi.daemon.log_text()
    assert "Fatal error on transport" not in log
    assert "get_buffer" not in log
