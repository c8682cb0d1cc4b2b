"""Stream-mode transfers: partial reads, refusals, and the guarantee that nothing half-written appears."""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import struct
import threading
import time
import zlib

import pytest

from tests.functional.server.conftest import MiB, RunningDaemon
from tests.support.ftp_client import Client, closed_by_peer, recv_all


def _retr(c: Client, cmd: str) -> tuple[bytes, int]:
    host, port = c.pasv()
    c.send(cmd)
    s = socket.create_connection((host, port))
    first = c.read_reply()
    if first.code >= 200:
        s.close()
        return b"", first.code
    data = recv_all(s)
    s.close()
    _, final = c.read_final()
    return data, final.code


def _wait_no_uploads(d: RunningDaemon, path: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while d.backend.list_uploads(path):
        assert time.monotonic() < deadline, "multipart upload left behind"
        time.sleep(0.05)


def test_rest_and_eret_in_stream_mode(memory_daemon: RunningDaemon) -> None:
    memory_daemon.backend.put_object("/data/hello.txt", memoryview(b"hello gridftp\n"))
    c = memory_daemon.client()
    assert c.cmd("TYPE I").code == 200
    assert _retr(c, "RETR /data/hello.txt") == (b"hello gridftp\n", 226)
    assert c.cmd("REST 6").code == 350
    assert _retr(c, "RETR /data/hello.txt") == (b"gridftp\n", 226)
    assert _retr(c, "ERET P 6 4 /data/hello.txt") == (b"grid", 226)
    assert _retr(c, "ERET P 10 1000 /data/hello.txt") == (b"ftp\n", 226)
    assert c.cmd("ERET X 1 2 /data/hello.txt").code == 500
    c.close()


def test_missing_source_answers_before_150(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    c.pasv()
    r = c.cmd("RETR /data/nope.bin")
    assert r.code == 500 and "PATH_NOT_FOUND" in r.text
    assert c.cmd("NOOP").code == 200
    c.close()


def test_partial_writes_onto_existing_objects_are_refused(memory_daemon: RunningDaemon) -> None:
    b = memory_daemon.backend
    b.put_object("/data/obj", memoryview(b"0123456789"))
    c = memory_daemon.client()
    c.pasv()
    assert c.cmd("REST 3").code == 350
    r = c.cmd("STOR /data/obj")
    assert r.code >= 500 and "REST" in r.text
    c.pasv()
    r = c.cmd("APPE /data/obj")
    assert r.code >= 500 and "APPE" in r.text
    c.pasv()
    r = c.cmd("ESTO A 10 /data/obj")
    assert r.code >= 500
    assert memory_daemon.read("/data/obj") == b"0123456789"
    c.close()


def _start_upload(c: Client, path: str) -> socket.socket:
    host, port = c.pasv()
    c.send(f"STOR {path}")
    s = socket.create_connection((host, port))
    r = c.read_reply()
    assert r.code == 150, r
    return s


def test_abor_during_upload_keeps_previous_object_and_session(memory_daemon: RunningDaemon) -> None:
    b = memory_daemon.backend
    b.put_object("/data/keep.bin", memoryview(b"original"))
    c = memory_daemon.client()
    s = _start_upload(c, "/data/keep.bin")
    s.sendall(os.urandom(12 * MiB))
    # Telnet IP + Synch as the Globus client sends them before ABOR
    c.sock.sendall(b"\xff\xf4\xff")
    c.sock.sendall(b"\xf2ABOR\r\n")
    r1 = c.read_reply()
    r2 = c.read_reply()
    assert r1.code == 426, r1
    assert r2.lines == ["226 Abort successful"]
    s.close()
    assert c.cmd("NOOP").code == 200
    _wait_no_uploads(memory_daemon, "/data/keep.bin")
    assert memory_daemon.read("/data/keep.bin") == b"original"
    c.close()


def test_abor_of_a_stream_upload_leaves_no_unretrieved_failure(memory_daemon: RunningDaemon) -> None:
    """Closing the data connection of an aborted upload is our doing, not a failure nobody waits for
    (which asyncio logs as an error, 'Future exception was never retrieved', for every ABOR)."""
    seen: list[dict[str, object]] = []
    memory_daemon.thread.loop.set_exception_handler(lambda _loop, context: seen.append(context))
    c = memory_daemon.client()
    s = _start_upload(c, "/data/aborted.bin")
    s.sendall(os.urandom(3 * MiB))
    c.send("ABOR")
    assert [c.read_reply().code, c.read_reply().code] == [426, 226]
    s.close()
    assert c.cmd("NOOP").code == 200
    gc.collect()
    assert c.cmd("NOOP").code == 200  # the loop has run the collected futures' handlers
    assert [ctx["message"] for ctx in seen] == []
    c.close()


def test_control_eof_during_upload_leaves_nothing(memory_daemon: RunningDaemon) -> None:
    b = memory_daemon.backend
    b.put_object("/data/keep2.bin", memoryview(b"original"))
    c = memory_daemon.client()
    s = _start_upload(c, "/data/keep2.bin")
    s.sendall(os.urandom(11 * MiB))
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    s.close()
    time.sleep(0.5)
    _wait_no_uploads(memory_daemon, "/data/keep2.bin")
    assert memory_daemon.read("/data/keep2.bin") == b"original"


def test_data_connection_reset_fails_the_upload(memory_daemon: RunningDaemon) -> None:
    b = memory_daemon.backend
    b.put_object("/data/keep3.bin", memoryview(b"original"))
    c = memory_daemon.client()
    s = _start_upload(c, "/data/keep3.bin")
    s.sendall(os.urandom(11 * MiB))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST
    r = c.read_reply()
    assert r.code >= 400, r
    assert c.cmd("NOOP").code == 200
    _wait_no_uploads(memory_daemon, "/data/keep3.bin")
    assert memory_daemon.read("/data/keep3.bin") == b"original"
    c.close()


def test_download_whose_data_connection_is_reset_answers_426(memory_daemon: RunningDaemon) -> None:
    """A client that drops the data connection of a RETR gets the data-channel failure (426, errno
    ECONNRESET for gfal2), not an internal error."""
    memory_daemon.backend.put_object("/data/big.bin", memoryview(os.urandom(24 * MiB)))
    c = memory_daemon.client()
    host, port = c.pasv()
    c.send("RETR /data/big.bin")
    s = socket.create_connection((host, port))
    assert c.read_reply().code == 150
    s.recv(65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST
    r = c.read_reply()
    assert r.code == 426, r
    assert "c=DATA_CHANNEL_COMMUNICATION_FAILURE" in r.text, r
    assert c.cmd("NOOP").code == 200
    c.close()


def test_extra_connections_to_a_stream_mode_listener_are_closed(memory_daemon: RunningDaemon) -> None:
    """A stream-mode transfer uses one connection; any other one made to the same PASV port must not be
    left open (it would hold a socket for the life of the session)."""
    memory_daemon.backend.put_object("/data/small.bin", memoryview(b"payload"))
    c = memory_daemon.client()
    host, port = c.pasv()
    first = socket.create_connection((host, port))
    try:
        extra: socket.socket | None = socket.create_connection((host, port))
    except ConnectionRefusedError:
        # the daemon accepted the first one and closed its listener before this SYN arrived:
        # stream mode needs one connection, so nobody else gets in (the other correct outcome)
        extra = None
    time.sleep(0.2)  # both accepted before the transfer takes one
    c.send("RETR /data/small.bin")
    assert c.read_reply().code == 150
    _, final = c.read_final()
    assert final.code == 226, final
    if extra is None:
        assert recv_all(first) == b"payload"
    else:
        used, spare = (first, extra) if first.recv(100, socket.MSG_PEEK) else (extra, first)
        assert recv_all(used) == b"payload"
        assert closed_by_peer(spare)  # closed or reset by the server, not left hanging
        extra.close()
    first.close()
    c.close()


def test_short_upload_against_allo_is_not_committed(memory_daemon: RunningDaemon) -> None:
    b = memory_daemon.backend
    c = memory_daemon.client()
    host, port = c.pasv()
    assert c.cmd("ALLO 1000").code == 200
    c.send("STOR /data/short.bin")
    s = socket.create_connection((host, port))
    assert c.read_reply().code == 150
    s.sendall(b"x" * 500)
    s.close()
    r = c.read_reply()
    assert r.code >= 400, r
    with pytest.raises(Exception):
        b.head_object("/data/short.bin")
    c.close()


@pytest.mark.parametrize("size", [0, 1, 5 * MiB, 5 * MiB + 1, 23 * MiB + 7])
def test_stream_upload_sizes(memory_daemon: RunningDaemon, size: int) -> None:
    data = os.urandom(size)
    c = memory_daemon.client()
    s = _start_upload(c, f"/data/s{size}.bin")
    s.sendall(data)
    s.close()
    assert c.read_reply().code == 226
    assert memory_daemon.read(f"/data/s{size}.bin") == data
    got, code = _retr(c, f"RETR /data/s{size}.bin")
    assert code == 226 and got == data
    c.close()


def test_scks_verifies_the_upload_before_it_becomes_visible(memory_daemon: RunningDaemon) -> None:
    b = memory_daemon.backend
    b.put_object("/data/scks.bin", memoryview(b"previous"))
    data = os.urandom(7 * MiB + 3)
    c = memory_daemon.client()
    # right ADLER32: stored
    assert c.cmd(f"SCKS ADLER32 {zlib.adler32(data):08x}").code == 200
    s = _start_upload(c, "/data/scks.bin")
    s.sendall(data)
    s.close()
    assert c.read_reply().code == 226
    assert memory_daemon.read("/data/scks.bin") == data
    # MD5 is not computed on upload by default: SCKS MD5 makes this upload compute it
    assert c.cmd(f"SCKS MD5 {hashlib.md5(data[::-1]).hexdigest()}").code == 200
    s = _start_upload(c, "/data/scks.bin")
    s.sendall(data[::-1])
    s.close()
    assert c.read_reply().code == 226
    # wrong value: refused, nothing replaced
    assert c.cmd("SCKS MD5 00000000000000000000000000000000").code == 200
    s = _start_upload(c, "/data/scks.bin")
    s.sendall(data)
    s.close()
    r = c.read_reply()
    assert r.code >= 400 and "Checksum mismatch" in r.text
    assert memory_daemon.read("/data/scks.bin") == data[::-1]
    _wait_no_uploads(memory_daemon, "/data/scks.bin")
    c.close()


def test_abor_while_the_object_is_being_stored_lets_it_finish(memory_daemon: RunningDaemon) -> None:
    """Once all data is in and CompleteMultipartUpload runs, ABOR no longer interrupts it: the client
    is told 226 (then 226 Abort successful), matching what S3 holds."""
    b = memory_daemon.backend
    original = b.complete_upload
    storing = threading.Event()

    def slow_complete(path, upload_id, parts, **kwargs):  # type: ignore[no-untyped-def]
        storing.set()
        time.sleep(1.0)
        return original(path, upload_id, parts, **kwargs)

    b.complete_upload = slow_complete  # type: ignore[method-assign]
    data = os.urandom(11 * MiB)
    c = memory_daemon.client()
    host, port = c.pasv()
    assert c.cmd(f"ALLO {len(data)}").code == 200
    c.send("STOR /data/commit.bin")
    s = socket.create_connection((host, port))
    assert c.read_reply().code == 150
    s.sendall(data)
    s.close()
    assert storing.wait(10)  # the data is in; the store is running
    c.send("ABOR")
    assert c.read_reply().lines == ["226 Transfer Complete."]
    assert c.read_reply().lines == ["226 Abort successful"]
    assert memory_daemon.read("/data/commit.bin") == data
    assert c.cmd("NOOP").code == 200
    c.close()
