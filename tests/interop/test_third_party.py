"""Third-party transfers (globus-url-copy steering two servers) between s3dsi and the reference C
globus-gridftp-server, in both directions: stream mode (no -vb, no -p), MODE E with -p 4, -vb alone
(which makes the client switch both ends to MODE E for perf markers), delayed passive, and trees with
-fast / -pp. In every case the data flows directly between the two servers; the files are compared
byte for byte on both sides (the C server's file on its disk, s3dsi's object via the moto server).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, run, unique
from tests.support.gridftp_server import GridFTPServer
from tests.support.guc_debug import (
    Exchange,
    commands,
    on,
    parse_debug,
    perf_marker_bytes,
    perf_marker_times,
    progress_bytes,
    range_markers,
    ranges_tile,
    replies,
)
from tests.support.programs import need
from tests.support.s3dsi_env import MiB

pytestmark = pytest.mark.interop

SIZE = 11 * MiB + 12345  # three 5 MiB parts on the s3dsi side, many 256 KiB blocks from the C server
MODES = {"stream": [], "p4": ["-p", "4"], "vb": ["-vb"], "dp-vb": ["-dp", "-vb"]}


def third_party(src: str, dst: str, *options: str) -> tuple[str, list[Exchange]]:
    proc = run([need("globus-url-copy"), "-dbg", *options, src, dst], timeout=180)
    return proc.stdout, parse_debug(proc.stderr)


def check_wire(exchanges: list[Exchange], mode: str, *, sender: int, receiver: int) -> None:
    """What the client told each server, per mode, as in the reference transcripts."""
    to_sender, to_receiver = commands(on(exchanges, sender)), commands(on(exchanges, receiver))
    assert any(c.startswith("RETR ") for c in to_sender)
    assert any(c.startswith("STOR ") for c in to_receiver)
    assert any(c.startswith("PORT ") for c in to_sender)  # the receiver listens, the sender connects
    if mode == "stream":
        assert "MODE E" not in to_sender + to_receiver
        assert "PASV" in to_receiver
    else:
        assert "MODE E" in to_sender and "MODE E" in to_receiver
    if mode == "p4":
        assert "OPTS RETR Parallelism=4,4,4;" in to_sender
    if mode == "dp-vb":
        assert "OPTS PASV AllowDelayed=1;" in to_receiver
        received = replies(on(exchanges, receiver))
        assert "200 Passive delayed." in received
        assert any(r.startswith("127 ") for r in received)


@pytest.mark.parametrize("mode", list(MODES))
def test_from_c_server_to_s3dsi(s3dsi: S3dsi, gt: GridFTPServer, bucket: str, mode: str) -> None:
    data = os.urandom(SIZE)
    name = unique(f"to-s3dsi-{mode}")
    source = gt.write(f"{name}.src", data)
    out, ex = third_party(gt.url(source), s3dsi.url(f"/{bucket}/{name}"), *MODES[mode])
    assert s3dsi.object_bytes(bucket, name) == data
    assert s3dsi.uploads(bucket) == []
    check_wire(ex, mode, sender=gt.port, receiver=s3dsi.address[1])
    mine = on(ex, s3dsi.address[1])
    if mode == "stream":
        assert perf_marker_bytes(mine) == []  # no markers in stream mode
        return
    # s3dsi is the receiver: its 112s drive the client's progress (and stall detection). The first
    # follows 150 at once, but here the C sender may already have delivered some bytes by then.
    perf = perf_marker_bytes(mine)
    assert len(perf) >= 2 and perf == sorted(perf) and perf[-1] == SIZE
    assert ranges_tile(range_markers(mine), SIZE)
    check_progress(out, mine, mode)


def check_progress(out: str, receiver: list[Exchange], mode: str) -> None:
    """With -vb the client prints progress computed from the receiver's perf markers: lines appear
    only when the client's timer catches a marker (a short transfer may print none), but any it
    prints must agree with the markers, and the final one must be the whole file."""
    if "-vb" not in MODES[mode]:
        return
    times = perf_marker_times(receiver)
    assert times == sorted(times) and all(abs(t - time.time()) < 600 for t in times)
    shown = progress_bytes(out)
    assert shown == sorted(shown) and all(b in perf_marker_bytes(receiver) for b in shown)
    if shown:
        assert shown[-1] == SIZE


@pytest.mark.parametrize("mode", list(MODES))
def test_from_s3dsi_to_c_server(s3dsi: S3dsi, gt: GridFTPServer, bucket: str, mode: str) -> None:
    data = os.urandom(SIZE)
    name = unique(f"from-s3dsi-{mode}")
    s3dsi.moto.client().put_object(Bucket=bucket, Key=name, Body=data)
    out, ex = third_party(s3dsi.url(f"/{bucket}/{name}"), gt.url(gt.path(f"{name}.dst")), *MODES[mode])
    assert gt.read(f"{name}.dst") == data
    check_wire(ex, mode, sender=s3dsi.address[1], receiver=gt.port)
    check_progress(out, on(ex, gt.port), mode)


@pytest.mark.parametrize("mode", ["stream", "p4"])
def test_empty_file_both_directions(s3dsi: S3dsi, gt: GridFTPServer, bucket: str, mode: str) -> None:
    name = unique(f"empty-{mode}")
    source = gt.write(f"{name}.src", b"")
    third_party(gt.url(source), s3dsi.url(f"/{bucket}/{name}"), *MODES[mode])
    assert s3dsi.object_bytes(bucket, name) == b""
    third_party(s3dsi.url(f"/{bucket}/{name}"), gt.url(gt.path(f"{name}.back")), *MODES[mode])
    assert gt.read(f"{name}.back") == b""


# -- trees: -r -cd with -fast (connection reuse) and -pp (pipelining) ------------------------------
TREE = {"a.txt": b"hello third party\n", "sub1/b.bin": os.urandom(5000), "sub1/subsub/c.txt": b"c" * 3,
        "sub2/d.txt": b"dd", "sub2/e.bin": os.urandom(300_000), "sub2/empty": b""}


@pytest.mark.parametrize("options", [["-fast", "-p", "2"], ["-pp"]], ids=["fast-p2", "pp"])
def test_tree_c_server_to_s3dsi_and_back(s3dsi: S3dsi, gt: GridFTPServer, bucket: str,
                                         options: list[str]) -> None:
    top = unique("tree")
    for rel, data in TREE.items():
        gt.write(f"{top}/src/{rel}", data)
    _, there = third_party(gt.url(gt.path(f"{top}/src")) + "/", s3dsi.url(f"/{bucket}/{top}/"),
                           "-r", "-cd", *options)
    for rel, data in TREE.items():
        assert s3dsi.object_bytes(bucket, f"{top}/{rel}") == data, rel
    to_s3dsi = on(there, s3dsi.address[1])
    assert sum(1 for c in commands(to_s3dsi) if c.startswith("STOR ")) == len(TREE)

    _, back = third_party(s3dsi.url(f"/{bucket}/{top}/"), gt.url(gt.path(f"{top}/back")) + "/",
                          "-r", "-cd", *options)
    for rel, data in TREE.items():
        assert gt.read(f"{top}/back/{rel}") == data, rel
    from_s3dsi = on(back, s3dsi.address[1])
    assert any(c.startswith("MLSD ") for c in commands(from_s3dsi))
    # at least one transfer reused the cached MODE E connections, as with the reference server
    assert any(r.startswith("125 ") for r in replies(to_s3dsi) + replies(from_s3dsi))
    assert _tree_on_disk(gt, f"{top}/back") == set(TREE)


def _tree_on_disk(gt: GridFTPServer, top: str) -> set[str]:
    root = Path(gt.path(top))
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
