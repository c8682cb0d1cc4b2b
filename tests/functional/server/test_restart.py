"""Restarted MODE E uploads (REST ranges from 111 markers) and the janitor, on one daemon and across two
daemons ("hosts" on 127.0.0.1 and 127.0.0.2) that share one store and nothing else: separate state
directories, the first one deleted before the restart."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend
from s3dsi.storage.records import bucket_records
from s3dsi.transfer.janitor import sweep_all
from s3dsi.transfer.journal import JournalEntry, UploadJournal
from tests.functional.server.conftest import MiB, RunningDaemon
from tests.support.daemon import DaemonThread
from tests.support.daemon import test_settings as daemon_settings
from tests.support.ftp_client import Client, block, eof_block

SIZE = 23 * MiB + 5


def records(backend: MemoryBackend, bucket: str = "data") -> list[JournalEntry]:
    """What the restart records in S3 (here: the memory store) say."""
    return [JournalEntry.from_dict(r.entry) for r in bucket_records(backend.store, bucket)]


def cache(d: RunningDaemon) -> list[JournalEntry]:
    daemon = d.thread.daemon
    assert daemon is not None
    return list(daemon.ctx.journal.entries())


def _session(d: RunningDaemon) -> Client:
    c = d.client()
    assert c.cmd("TYPE I").code == 200
    assert c.cmd("MODE E").code == 200
    assert c.cmd("TREV RESTART 1").code == 200
    return c


def _break_after_markers(d: RunningDaemon, data: bytes, path: str = "/data/rst.bin") -> str:
    """Upload the first 3 parts, wait for a range marker, then reset the data connection."""
    c = _session(d)
    addr = c.pasv()
    assert c.cmd(f"ALLO {len(data)}").code == 200
    c.send(f"STOR {path}")
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


def _resume(d: RunningDaemon, data: bytes, ranges: str, path: str = "/data/rst.bin") -> int:
    """REST the ranges and send only what they do not cover; the bytes sent."""
    held = [tuple(int(x) for x in r.split("-")) for r in ranges.split(",")]
    c = _session(d)
    addr = c.pasv()
    assert c.cmd(f"ALLO {len(data)}").code == 200
    assert c.cmd(f"REST {ranges}").code == 350
    c.send(f"STOR {path}")
    reply = c.read_reply()
    assert reply.code == 150, reply
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
    s.close()
    c.close()
    return sent


def test_restart_resumes_the_unfinished_upload(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(SIZE)
    ranges = _break_after_markers(memory_daemon, data)
    uploads = memory_daemon.backend.list_uploads("/data/rst.bin")
    assert len(uploads) == 1, "the upload must be kept for a restart"
    [record] = records(memory_daemon.backend)
    assert record.upload_id == uploads[0].upload_id and record.parts, record
    sent = _resume(memory_daemon, data, ranges)
    assert sent < len(data)
    assert memory_daemon.read("/data/rst.bin") == data
    assert memory_daemon.backend.list_uploads("/data/rst.bin") == []
    assert records(memory_daemon.backend) == []
    assert cache(memory_daemon) == []


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
    while memory_daemon.backend.list_uploads("/data/early.bin") or records(memory_daemon.backend):
        assert time.monotonic() < deadline, "the upload or its record is still there"
        time.sleep(0.05)
    c.close()


def test_janitor_aborts_orphaned_uploads(memory_daemon: RunningDaemon, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    _break_after_markers(memory_daemon, data)
    backends = SharedBackend(memory_daemon.backend)
    nowhere = UploadJournal(str(tmp_path))
    young = sweep_all(backends.users(), backends.backend_for, nowhere, max_age=3600)
    assert young.aborted == [] and young.kept == 1
    assert len(records(memory_daemon.backend)) == 1
    result = sweep_all(backends.users(), backends.backend_for, nowhere, max_age=0)
    assert len(result.aborted) == 1 and result.failed == []
    assert memory_daemon.backend.list_uploads("/data/rst.bin") == []
    assert records(memory_daemon.backend) == []


def test_records_are_hidden_and_their_name_is_reserved(memory_daemon: RunningDaemon) -> None:
    _break_after_markers(memory_daemon, os.urandom(SIZE))
    assert records(memory_daemon.backend), "the kept upload's record"
    c = memory_daemon.client()
    for command in ("CWD /data/.s3dsi", "MLST /data/.s3dsi", "MLST /data/.s3dsi/uploads", "DELE /data/.s3dsi",
                    "MKD /data/.s3dsi", "RNFR /data/.s3dsi/uploads"):
        reply = c.cmd(command)
        assert reply.code in (500, 550) and "reserved" in reply.text, (command, reply)
    assert c.cmd("CWD /data").code == 250
    names = [e.name for page in memory_daemon.backend.list_pages("/data") for e in page]
    assert ".s3dsi" not in names and "rst.bin" not in names
    c.close()


# -- two hosts over one store --------------------------------------------------------------------------
@pytest.fixture
def two_hosts() -> Iterator[tuple[RunningDaemon, RunningDaemon]]:
    backend = MemoryBackend(min_part_size=5 * MiB)
    backend.create_bucket("data")
    first = DaemonThread(daemon_settings(), SharedBackend(backend)).start()
    second = DaemonThread(daemon_settings(control_interface="127.0.0.2", data_interface="127.0.0.2"),
                          SharedBackend(backend)).start()
    try:
        yield RunningDaemon(first, backend), RunningDaemon(second, backend)
    finally:
        first.stop()
        second.stop()


def test_restart_on_another_host(two_hosts: tuple[RunningDaemon, RunningDaemon]) -> None:
    first, second = two_hosts
    assert second.address[0] == "127.0.0.2"
    data = os.urandom(SIZE)
    ranges = _break_after_markers(first, data)
    assert cache(first), "the first host's local cache"
    state_dir = first.thread.settings.state_dir
    assert state_dir is not None
    shutil.rmtree(state_dir)  # the first host is gone, and its disk with it
    sent = _resume(second, data, ranges)
    assert sent < len(data) - 10 * MiB, "the second host took only the missing ranges"
    assert second.read("/data/rst.bin") == data
    assert second.backend.list_uploads("/data/rst.bin") == []
    assert records(second.backend) == []


def test_janitor_of_another_host_cleans_up(two_hosts: tuple[RunningDaemon, RunningDaemon]) -> None:
    first, second = two_hosts
    _break_after_markers(first, os.urandom(SIZE))
    state_dir = first.thread.settings.state_dir
    assert state_dir is not None
    shutil.rmtree(state_dir)
    backends = SharedBackend(second.backend)
    assert second.thread.settings.state_dir is not None
    journal = UploadJournal(second.thread.settings.state_dir)
    result = sweep_all(backends.users(), backends.backend_for, journal, max_age=0)
    assert [s.key for s in result.aborted] == ["rst.bin"], result
    assert second.backend.list_uploads("/data/rst.bin") == []
    assert records(second.backend) == []
