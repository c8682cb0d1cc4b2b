"""In-process daemon (memory back end): transfer records handed to the daemon hook, SITE TASKID, and the
graceful stop (idle sessions close at once, a running transfer finishes or is aborted after the grace)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from s3dsi.observability.transferlog import TransferLog, TransferRecord
from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend
from tests.support.daemon import TEST_PASSWORD, TEST_USER, DaemonThread
from tests.support.daemon import test_settings as daemon_settings
from tests.support.ftp_client import Client, recv_all

MiB = 1024 * 1024


@dataclass
class Recorded:
    thread: DaemonThread
    backend: MemoryBackend
    records: list[TransferRecord] = field(default_factory=list)

    def client(self) -> Client:
        c = Client(self.thread.host, self.thread.port)
        c.login(TEST_USER, TEST_PASSWORD)
        assert c.cmd("TYPE I").code == 200
        return c

    def stop_in_background(self, grace: float) -> threading.Thread:
        assert self.thread.daemon is not None
        stopper = threading.Thread(target=self.thread.call, args=(self.thread.daemon.stop(grace=grace),),
                                   daemon=True)
        stopper.start()
        return stopper


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    backend = MemoryBackend(min_part_size=5 * MiB)
    backend.create_bucket("data")
    thread = DaemonThread(daemon_settings(), SharedBackend(backend)).start()
    assert thread.daemon is not None
    result = Recorded(thread, backend)
    thread.daemon.ctx.on_transfer_done = result.records.append
    try:
        yield result
    finally:
        thread.stop()


def _stor(c: Client, path: str, data: bytes, allo: bool = False) -> int:
    host, port = c.pasv()
    if allo:
        assert c.cmd(f"ALLO {len(data)}").code == 200
    c.send(f"STOR {path}")
    with socket.create_connection((host, port)) as s:
        assert c.read_reply().code == 150
        s.sendall(data)
    return c.read_final()[1].code


def _retr(c: Client, path: str) -> bytes:
    host, port = c.pasv()
    c.send(f"RETR {path}")
    with socket.create_connection((host, port)) as s:
        assert c.read_reply().code == 150
        data = recv_all(s)
    assert c.read_final()[1].code == 226
    return data


def test_each_transfer_gives_a_record_with_the_facts_of_the_reference_log(recorded: Recorded,
                                                                          tmp_path: Path) -> None:
    c = recorded.client()
    assert c.cmd("SITE TASKID job-7").lines == ["250 OK."]
    before = time.time()
    assert _stor(c, "/data/a.bin", b"x" * 1000) == 226
    assert _retr(c, "/data/a.bin") == b"x" * 1000
    host, port = c.pasv()
    c.send("RETR /data/a.bin")
    s = socket.create_connection((host, port))
    assert c.read_reply().code == 150
    c.sock.sendall(b"ABOR\r\n")
    assert c.read_reply().code in (226, 426)
    s.close()
    c.cmd("NOOP")
    c.close()
    deadline = time.monotonic() + 5
    while len(recorded.records) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stor, retr = recorded.records[:2]
    assert (stor.kind, stor.path, stor.user, stor.nbytes, stor.code) == \
        ("STOR", "/data/a.bin", TEST_USER, 1000, 226)
    assert (retr.kind, retr.nbytes, retr.code, retr.streams) == ("RETR", 1000, 226, 1)
    assert stor.task_id == retr.task_id == "job-7"
    assert stor.remote == retr.remote == "127.0.0.1"
    assert before <= stor.started <= stor.ended <= retr.started <= time.time()
    assert recorded.records[2].kind == "RETR"
    log_path = tmp_path / "transfers.log"
    log = TransferLog(str(log_path), host="gw")
    for record in recorded.records[:2]:
        log(record)
    lines = log_path.read_text().splitlines()
    assert "USER=alice FILE=/data/a.bin" in lines[0]
    assert lines[0].endswith("DEST=[127.0.0.1] TYPE=STOR CODE=226 TASKID=job-7")
    assert "NBYTES=1000 VOLUME=/ STREAMS=1 STRIPES=1" in lines[1]


def test_stop_closes_idle_sessions_at_once_and_lets_a_transfer_finish(recorded: Recorded) -> None:
    idle = recorded.client()
    busy = recorded.client()
    data = os.urandom(6 * MiB)
    host, port = busy.pasv()
    assert busy.cmd(f"ALLO {len(data)}").code == 200
    busy.send("STOR /data/finishing.bin")
    s = socket.create_connection((host, port))
    assert busy.read_reply().code == 150
    s.sendall(data[:MiB])
    stopper = recorded.stop_in_background(grace=20)
    assert idle.read_reply().lines == ["421 Service shutting down."]
    s.sendall(data[MiB:])
    s.close()
    assert busy.read_reply().code == 226
    assert busy.read_reply().code == 421
    stopper.join(20)
    assert not stopper.is_alive()
    assert recorded.backend.read_range(recorded.backend.head_object("/data/finishing.bin"), 0,
                                       memoryview(bytearray(len(data)))) == len(data)


def test_after_the_grace_a_running_upload_is_aborted_and_leaves_nothing(recorded: Recorded) -> None:
    busy = recorded.client()
    host, port = busy.pasv()
    assert busy.cmd(f"ALLO {20 * MiB}").code == 200
    busy.send("STOR /data/never.bin")
    s = socket.create_connection((host, port))
    assert busy.read_reply().code == 150
    s.sendall(os.urandom(7 * MiB))  # more than a part: a multipart upload exists
    started = time.monotonic()
    stopper = recorded.stop_in_background(grace=0.5)
    stopper.join(20)
    assert 0.4 < time.monotonic() - started < 15
    assert busy.read_final()[1].code == 421
    s.close()
    with pytest.raises(Exception, match=r"No such file|not found|NOT_FOUND"):
        recorded.backend.head_object("/data/never.bin")
    assert recorded.backend.list_uploads("/data/never.bin") == []
    assert recorded.records[-1].code == 426


def test_a_test_daemon_leaves_no_state_dir_behind(tmp_path: Path) -> None:
    made = daemon_settings()
    assert made.state_dir is not None and Path(made.state_dir).is_dir()
    own = tmp_path / "own-state"
    own.mkdir()
    mine = daemon_settings(state_dir=str(own))
    for settings in (made, mine):
        DaemonThread(settings, SharedBackend(MemoryBackend())).start().stop()
    assert not Path(made.state_dir).exists()  # made by test_settings: removed by stop()
    assert own.is_dir()  # the caller's own directory stays
