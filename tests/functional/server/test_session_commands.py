"""Control-channel behaviour of the daemon over the in-memory back end."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time

from s3dsi.observability import logging as s3log
from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend
from tests.functional.server.conftest import RunningDaemon
from tests.support.daemon import TEST_PASSWORD, TEST_USER, DaemonThread
from tests.support.daemon import test_settings as daemon_settings
from tests.support.ftp_client import recv_all


def test_prelogin_gating_and_bad_login(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client(login=False)
    assert c.greeting.code == 220
    assert c.cmd("PWD").code == 530
    assert c.cmd("PASS x").code == 503
    assert c.cmd("USER").code == 501
    assert c.cmd(f"USER {TEST_USER}").code == 331
    t0 = time.monotonic()
    r = c.cmd("PASS wrong")
    assert r.code == 530 and r.lines[0].startswith("530 Login incorrect.")
    assert TEST_PASSWORD not in r.text
    assert c.cmd("PWD").code == 530
    assert time.monotonic() - t0 >= 0.4  # failed logins are answered after a delay
    c.login(TEST_USER, TEST_PASSWORD)
    assert c.cmd("PWD").lines == ['257 "/" is current directory.']
    c.close()


def test_namespace_commands(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    assert c.cmd("MKD /data/d1").lines == ['257 Directory "/data/d1" created successfully.']
    r = c.cmd("MKD /data/d1")
    assert r.code == 553 and "c=PATH_EXISTS" in r.lines[0]
    assert c.cmd("MKD /data/nope/d2").code == 550
    assert c.cmd("CWD /data/d1").code == 250
    assert c.cmd("PWD").lines == ['257 "/data/d1" is current directory.']
    assert c.cmd("CDUP").code == 250
    assert c.cmd("PWD").lines == ['257 "/data" is current directory.']
    r = c.cmd("CWD nope")
    assert r.code == 550 and r.lines[0].startswith("550-/data/nope: Could not change directory.")
    r = c.cmd("SIZE /data/missing")
    assert r.lines[0] == "550-GlobusError: v=1 c=PATH_NOT_FOUND" and r.lines[-1] == "550 End."
    memory_daemon.backend.put_object("/data/d1/f.txt", memoryview(b"hello"))
    assert c.cmd("SIZE d1/f.txt").lines == ["213 5"]
    assert re.fullmatch(r"213 \d{14}", c.cmd("MDTM /data/d1/f.txt").lines[0])
    r = c.cmd("MLST d1/f.txt")
    assert r.code == 250 and "Type=file;" in r.lines[1] and "Size=5;" in r.lines[1]
    assert r.lines[1].endswith(" d1/f.txt")
    r = c.cmd("RMD /data/d1")
    assert r.code == 451 and "Directory not empty" in r.text
    assert c.cmd("RNFR /data/d1/f.txt").code == 350
    assert c.cmd("RNTO /data/d1/g.txt").code == 250
    assert c.cmd("SIZE /data/d1/g.txt").lines == ["213 5"]
    assert c.cmd("RNFR /data/d1/missing").code == 500
    assert c.cmd("RNTO /data/x").code == 501
    assert c.cmd("RNFR /data/d1").code == 350
    assert c.cmd("RNTO /data/d9").code >= 500  # directory renames are refused
    r = c.cmd("DELE /data/d1")
    assert r.code == 550 and "IS_A_DIRECTORY" in r.text
    assert c.cmd("DELE /data/d1/g.txt").code == 250
    assert c.cmd("RMD /data/d1").code == 250
    assert c.cmd("MKD /newbucket").code == 257
    assert c.cmd("RMD /newbucket").code == 250
    c.close()


def test_pipelined_commands_answered_in_order(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    c.sock.sendall(b"NOOP\r\nPWD\r\nTYPE I\r\nMODE E\r\nMODE S\r\nSYST\r\n")
    codes = [c.read_reply().code for _ in range(6)]
    assert codes == [200, 257, 200, 200, 200, 215]
    c.close()


def test_feat_advertises_implemented_features(memory_daemon: RunningDaemon) -> None:
    c = memory_daemon.client()
    r = c.cmd("FEAT")
    body = r.lines[1:-1]
    assert all(line.startswith(" ") and not line.startswith("  ") for line in body)
    labels = {line.split()[0] for line in body}
    assert {"CKSM", "PARALLEL", "SIZE", "MLST", "ERET", "ESTO", "SPAS", "SPOR", "REST", "MDTM"} <= labels
    assert " PASV AllowDelayed;" in body
    assert "GETPUT" not in labels and "DCAU" not in labels
    c.close()


def test_mlsd_has_distinct_unique_per_directory_and_crlf(memory_daemon: RunningDaemon) -> None:
    b = memory_daemon.backend
    c = memory_daemon.client()
    assert c.cmd("MKD /data/tree").code == 257
    for d in ("a", "b", "c"):
        assert c.cmd(f"MKD /data/tree/{d}").code == 257
    b.put_object("/data/tree/f.bin", memoryview(b"x" * 10))
    host, port = c.pasv()
    c.send("MLSD /data/tree/")
    data_sock = socket.create_connection((host, port))
    raw = recv_all(data_sock)
    data_sock.close()
    prelim, final = c.read_final()
    assert [r.code for r in prelim] == [150]
    assert final.code == 226
    lines = raw.split(b"\r\n")
    assert lines[-1] == b""
    uniques = {}
    for line in lines[:-1]:
        facts, _, name = line.decode().partition(" ")
        fd = dict(f.split("=", 1) for f in facts.rstrip(";").split(";"))
        uniques[name] = fd.get("Unique")
        if name in ("a", "b", "c"):
            assert fd["Type"] == "dir"
    assert uniques["f.bin"] is not None
    dir_uniques = [uniques[n] for n in ("a", "b", "c")]
    assert len(set(dir_uniques)) == 3
    c.close()


def test_cksm_status_markers_during_a_long_read_back(memory_daemon: RunningDaemon) -> None:
    data = os.urandom(12 * 1024 * 1024)
    backend: MemoryBackend = memory_daemon.backend
    backend.put_object("/data/ck.bin", memoryview(data))
    original = backend.read_range

    def slow_read(info, start, into):  # type: ignore[no-untyped-def]
        time.sleep(0.8)
        return original(info, start, into)

    backend.read_range = slow_read  # type: ignore[method-assign]
    c = memory_daemon.client()
    assert c.cmd("OPTS CKSM markers=1;").code == 200
    c.send("CKSM SHA1 0 -1 /data/ck.bin")
    prelim, final = c.read_final()
    assert final.lines == [f"213 {hashlib.sha1(data).hexdigest()}"]
    assert prelim and prelim[0].lines[0] == "113-Status Marker"
    assert prelim[0].lines[2].startswith(" Bytes Processed: ")
    c.close()


def test_failed_passwords_never_enter_the_log_redactor(memory_daemon: RunningDaemon) -> None:
    """Every PASS argument is client-chosen: registering guesses would let any client blank out
    arbitrary words in the logs (and grow the redaction pattern). PASS lines are redacted where they
    are logged; only passwords that proved right are registered."""
    guess = "transfer-" + os.urandom(8).hex()
    c = memory_daemon.client(login=False)
    assert c.cmd(f"USER {TEST_USER}").code == 331
    assert c.cmd(f"PASS {guess}").code == 530
    c.close()
    registry = s3log._registry
    assert guess not in registry._pinned
    assert guess not in registry._transient
    assert s3log.redact_text(f"x {guess} y") == f"x {guess} y"


def test_idle_timeout_does_not_cut_a_long_running_command() -> None:
    """CKSM reading an object back can outlast control_idle_timeout: the command is not idle time."""
    data = os.urandom(11 * 1024 * 1024)
    backend = MemoryBackend(min_part_size=5 * 1024 * 1024)
    backend.create_bucket("data")
    backend.put_object("/data/ck.bin", memoryview(data))
    original = backend.read_range

    def slow_read(info, start, into):  # type: ignore[no-untyped-def]
        time.sleep(0.8)
        return original(info, start, into)

    backend.read_range = slow_read  # type: ignore[method-assign]
    d = DaemonThread(daemon_settings(idle_timeout=1), SharedBackend(backend)).start()
    try:
        c = RunningDaemon(d, backend).client()
        r = c.cmd("CKSM MD5 0 -1 /data/ck.bin")
        assert r.lines == [f"213 {hashlib.md5(data).hexdigest()}"], r
        assert c.cmd("NOOP").code == 200
        time.sleep(1.5)  # an idle session is still closed
        assert c.read_reply().code == 421
        c.close()
    finally:
        d.stop()


def test_mlsc_cannot_be_used_to_forge_replies(memory_daemon: RunningDaemon) -> None:
    """A CR inside a path must not reach the wire: the reply stays one well-formed block."""
    memory_daemon.backend.put_object("/data/m\r250 forged/f", memoryview(b"x"))
    c = memory_daemon.client()
    c.sock.sendall(b"MLSC /data/m\r250 forged\r\n")
    raw = b""
    while not raw.endswith(b"250 End.\r\n"):
        raw += c.file.readline()
    assert b"\r" not in raw.replace(b"\r\n", b"")  # no bare CR: no line a client could split off
    assert c.cmd("NOOP").code == 200  # nothing left over in the reply stream
    c.close()


def test_a_trailing_slash_names_a_directory(memory_daemon: RunningDaemon) -> None:
    memory_daemon.backend.put_object("/data/slash/f", memoryview(b"12345"))
    c = memory_daemon.client()
    for cmd in ("SIZE /data/slash/f/", "MDTM /data/slash/f/", "MLST /data/slash/f/", "DELE /data/slash/f/",
                "RNFR /data/slash/f/"):
        r = c.cmd(cmd)
        assert r.code >= 500, (cmd, r)
        assert "NOT_A_DIRECTORY" in r.text, (cmd, r)
    c.pasv()
    r = c.cmd("RETR /data/slash/f/")
    assert r.code >= 500 and "NOT_A_DIRECTORY" in r.text
    assert memory_daemon.read("/data/slash/f") == b"12345"  # DELE f/ did not delete the file
    assert c.cmd("SIZE /data/slash/f").lines == ["213 5"]
    assert c.cmd("MLST /data/slash/").code == 250  # a real directory with a slash is fine
    c.close()
