"""Restarted MODE E uploads (REST ranges from 111 markers) and the janitor."""

from __future__ import annotations

import os
import socket
import struct
import time

from s3dsi.transfer.resume import sweep
from tests.functional.server.conftest import MiB, RunningDaemon
from tests.support.ftp_client import Client, block, eod_block, eof_block

SIZE = 23 * MiB + 5


def _session(d: RunningDaemon) -> Client:
    c = d.client()
    assert c.cmd("TYPE I").code == 200
    assert c.cmd("MODE E").code == 200
    assert c.cmd("TREV RESTART 1").code == 200
    return c


def _break_after_markers(d: RunningDaemon, data: bytes) -> str:
    """Upload the first 3 parts, wait for a range marker, then reset the data connection."""
    c = _session(d)
    addr = c.pasv()
    assert c.cmd(f"ALLO {len(data)}").code == 200
    c.send("STOR /data/rst.bin")
    assert c.read_reply().code == 150
    s = socket.create_connection(addr)
    for off in range(0, 15 * MiB, MiB):
        s.sendall(block(off, data[off:off + MiB]))
    ranges = ""
    deadline = time.monotonic() + 20
    while not ranges and time.monotonic() < deadline:
        r = c.read_reply()
        if r.code == 111:
            ranges = r.lines[0].split()[-1]
    assert ranges, "no range marker arrived"
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    _, final = c.read_final()
    assert final.code >= 400
    c.close()
    return ranges


def test_restart_resumes_the_unfinished_upload(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(SIZE)
    ranges = _break_after_markers(memory_daemon, data)
    uploads = memory_daemon.backend.list_uploads("/data/rst.bin")
    assert len(uploads) == 1, "the upload must be kept for a restart"
    held = [tuple(int(x) for x in r.split("-")) for r in ranges.split(",")]
    c = _session(memory_daemon)
    addr = c.pasv()
    assert c.cmd(f"ALLO {len(data)}").code == 200
    assert c.cmd(f"REST {ranges}").code == 350
    c.send("STOR /data/rst.bin")
    assert c.read_reply().code == 150
    s = socket.create_connection(addr)
    pos = 0
    sent = 0
    for a, b in [*sorted(held), (len(data), len(data))]:
        for off in range(pos, a, MiB):
            end = min(a, off + MiB)
            s.sendall(block(off, data[off:end]))
            sent += end - off
        pos = max(pos, b)
    s.sendall(eof_block(1))
    _, final = c.read_final()
    assert final.code == 226, final
    assert sent < len(data)
    assert memory_daemon.read("/data/rst.bin") == data
    assert memory_daemon.backend.list_uploads("/data/rst.bin") == []
    assert list(memory_daemon.thread.daemon.ctx.journal.entries()) == []  # type: ignore[union-attr]
    s.close()
    c.close()


def test_rest_without_a_matching_upload_is_refused_before_150(memory_daemon: RunningDaemon) -> None:
    c = _session(memory_daemon)
    c.pasv()
    assert c.cmd("REST 0-5242880").code == 350
    r = c.cmd("STOR /data/never.bin")
    assert r.code >= 500, r
    assert "restart the transfer" in r.text
    assert c.cmd("NOOP").code == 200
    c.close()


def test_upload_broken_before_any_marker_is_aborted_at_once(memory_daemon: RunningDaemon) -> None:
    c = _session(memory_daemon)
    addr = c.pasv()
    assert c.cmd(f"ALLO {30 * MiB}").code == 200
    assert c.cmd("TREV RESTART 100").code == 200
    c.send("STOR /data/early.bin")
    assert c.read_reply().code == 150
    s = socket.create_connection(addr)
    data = os.urandom(12 * MiB)
    for off in range(0, len(data), MiB):
        s.sendall(block(off, data[off:off + MiB]))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    _, final = c.read_final()
    assert final.code >= 400
    deadline = time.monotonic() + 10
    while memory_daemon.backend.list_uploads("/data/early.bin"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    c.close()


def test_janitor_aborts_orphaned_uploads(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(SIZE)
    _break_after_markers(memory_daemon, data)
    journal = memory_daemon.thread.daemon.ctx.journal  # type: ignore[union-attr]
    assert len(list(journal.entries())) == 1
    young = sweep(journal, lambda user: memory_daemon.backend, max_age=3600)
    assert young.aborted == [] and len(young.kept) == 1
    result = sweep(journal, lambda user: memory_daemon.backend, max_age=0)
    assert len(result.aborted) == 1
    assert memory_daemon.backend.list_uploads("/data/rst.bin") == []
    assert list(journal.entries()) == []


_ = eod_block
