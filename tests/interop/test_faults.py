"""Nothing half-written, under faults raised by a real HTTP layer between the daemon and S3.

The daemon process reaches the moto server only through the fault proxy (tests/support/faultproxy.py,
a separate process): S3 answers 500/503 to UploadPart, CompleteMultipartUpload, a ranged GET or
AbortMultipartUpload, or a connection is reset in the middle of a part body or of a GET's response.
The daemon itself is also SIGKILLed mid-upload and given a full state directory. Real clients:
globus-url-copy -p 4 (MODE E, range markers) and curl/ftplib (stream mode).

Every case ends with the checks of fault_checks.assert_guarantees: the previous object intact or the
complete new one, the daemon still serving, no multipart upload after ``s3dsi janitor``; downloads
must report failure (never ``226`` with a truncated file). Uploads go over an existing object.

The daemon tries each S3 request ``FAULT_MAX_ATTEMPTS`` times (S3 conf ``max_attempts``): a
"transient" fault hits fewer requests than that and must be survived (the object is then the complete
new one); a "persistent" one hits every matching request and must fail the transfer cleanly.

A multipart upload that survives the janitor raises ``LeftoverUpload``.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.interop.conftest import FAULT_MAX_ATTEMPTS, S3dsi, proxied_config, unique, write_file
from tests.interop.fault_checks import (
    PREVIOUS,
    assert_guarantees,
    download,
    journal_entries,
    slow_guc_upload,
    upload,
    written,
)
from tests.support.daemon import start_process_daemon
from tests.support.faultproxy import FaultProxy
from tests.support.ftp_client import Client, block
from tests.support.interop_helpers import (
    kill_tree,
    pending_uploads,
    recorded_parts,
    restart_records,
    wait_for,
)
from tests.support.moto_server import MotoS3
from tests.support.programs import need
from tests.support.s3dsi_env import PASSWORD, USER, MiB

pytestmark = pytest.mark.interop

PART = 5 * MiB  # part_size_min of the test configuration
SIZE = 3 * PART + 12345  # four parts
HEAD = PART + 2 * MiB  # what a slow upload sends at once: part 1 is full, so the multipart upload exists
FIRST_RANGE_MARKER = 5.0  # the daemon's default interval between 111 markers

Arm = Callable[[FaultProxy, str], object]


def proxied_daemon(request: pytest.FixtureRequest, survives: bool) -> S3dsi:
    """The module's daemon for a fault that must fail the transfer; a fresh one for a fault that must be
    survived. botocore's standard retry mode keeps a retry quota per S3 client that every retry spends
    (14 units of 500 per 5xx retry), across transfers: after the persistent faults of earlier tests a
    shared daemon would rightly stop retrying, which is not what a transient-fault test is about."""
    daemon: S3dsi = request.getfixturevalue("fresh_s3dsi_via_proxy" if survives else "s3dsi_via_proxy")
    return daemon


def put_previous(s3dsi: S3dsi, bucket: str, key: str) -> None:
    s3dsi.moto.client().put_object(Bucket=bucket, Key=key, Body=PREVIOUS)


# -- uploads: S3 faults on UploadPart and CompleteMultipartUpload -------------------------------------
UPLOAD_FAULTS: dict[str, tuple[str, Arm, bool]] = {
    # name: (operation, arm the proxy for this key, the upload survives it)
    "part-500-persistent": ("UploadPart", lambda p, k: p.fail("UploadPart", 500, skip=1, key=k), False),
    "part-503-persistent": ("UploadPart", lambda p, k: p.fail("UploadPart", 503, skip=1, key=k), False),
    "part-500-transient": ("UploadPart", lambda p, k: p.fail("UploadPart", 500, times=2, key=k), True),
    "part-503-transient": ("UploadPart", lambda p, k: p.fail("UploadPart", 503, times=2, key=k), True),
    "part-reset-mid-body-persistent": (
        "UploadPart", lambda p, k: p.reset("UploadPart", after_bytes=MiB, skip=1, key=k), False),
    "part-reset-mid-body-transient": (
        "UploadPart", lambda p, k: p.reset("UploadPart", after_bytes=MiB, times=1, key=k), True),
    "complete-500-persistent": (
        "CompleteMultipartUpload", lambda p, k: p.fail("CompleteMultipartUpload", 500, key=k), False),
    "complete-500-transient": (
        "CompleteMultipartUpload", lambda p, k: p.fail("CompleteMultipartUpload", 500, times=2, key=k), True),
    # S3 completed the upload but its answer was lost: botocore's retry finds the upload completed
    "complete-answer-lost": (
        "CompleteMultipartUpload",
        lambda p, k: p.reset("CompleteMultipartUpload", after_bytes=0, where="response", times=1, key=k),
        True),
}


@pytest.mark.parametrize("client", ["guc-p4", "curl"])
@pytest.mark.parametrize("fault", list(UPLOAD_FAULTS))
def test_upload_under_s3_fault(request: pytest.FixtureRequest, fault_proxy: FaultProxy, bucket: str,
                               tmp_path: Path, fault: str, client: str) -> None:
    op, arm, survives = UPLOAD_FAULTS[fault]
    s3dsi_via_proxy = proxied_daemon(request, survives)
    key = unique(fault)
    put_previous(s3dsi_via_proxy, bucket, key)
    data = os.urandom(SIZE)
    src = write_file(tmp_path / "src.bin", data)
    arm(fault_proxy, key)
    ok, output = upload(client, src, s3dsi_via_proxy.url(f"/{bucket}/{key}"))
    faults = fault_proxy.faults(op)
    assert faults >= (1 if survives else FAULT_MAX_ATTEMPTS), f"{op} faults injected: {faults}"
    assert ok == survives, f"the client {'failed' if survives else 'succeeded'}:\n{output}"
    assert_guarantees(s3dsi_via_proxy, fault_proxy, bucket, key, expect=data if ok else PREVIOUS)


def test_abort_refused_by_s3(s3dsi_via_proxy: S3dsi, fault_proxy: FaultProxy, bucket: str,
                             tmp_path: Path) -> None:
    """UploadPart fails for good, and S3 refuses the AbortMultipartUpload that follows: the upload was
    journalled when it was created and stays so, and the janitor aborts it later."""
    key = unique("abort-refused")
    put_previous(s3dsi_via_proxy, bucket, key)
    src = write_file(tmp_path / "src.bin", os.urandom(SIZE))
    fault_proxy.fail("UploadPart", 500, skip=1, key=key)
    fault_proxy.fail("AbortMultipartUpload", 500, key=key)
    ok, output = upload("guc-p4", src, s3dsi_via_proxy.url(f"/{bucket}/{key}"))
    assert not ok, output
    assert fault_proxy.faults("AbortMultipartUpload") >= 1  # the daemon did try to abort
    assert_guarantees(s3dsi_via_proxy, fault_proxy, bucket, key, expect=PREVIOUS)


# -- downloads: faults on the ranged GETs ---------------------------------------------------------------
DOWNLOAD_FAULTS: dict[str, tuple[Arm, bool]] = {
    # the first GET (part 1) goes through, so data is already flowing when the fault hits
    "range-500-persistent": (lambda p, k: p.fail("GetObjectRange", 500, skip=1, key=k), False),
    "range-503-transient": (lambda p, k: p.fail("GetObjectRange", 503, skip=1, times=2, key=k), True),
    "range-reset-mid-body-persistent": (
        lambda p, k: p.reset("GetObjectRange", after_bytes=MiB, where="response", skip=1, key=k), False),
    "range-reset-mid-body-transient": (
        lambda p, k: p.reset("GetObjectRange", after_bytes=MiB, where="response", skip=1, times=1, key=k),
        True),
}


@pytest.mark.parametrize("client", ["guc", "guc-p4", "curl", "ftplib"])
@pytest.mark.parametrize("fault", list(DOWNLOAD_FAULTS))
def test_download_under_s3_fault(request: pytest.FixtureRequest, fault_proxy: FaultProxy, bucket: str,
                                 tmp_path: Path, fault: str, client: str) -> None:
    arm, survives = DOWNLOAD_FAULTS[fault]
    s3dsi_via_proxy = proxied_daemon(request, survives)
    key = unique(fault)
    data = os.urandom(SIZE)
    s3dsi_via_proxy.moto.client().put_object(Bucket=bucket, Key=key, Body=data)
    arm(fault_proxy, key)
    got = download(client, s3dsi_via_proxy, f"/{bucket}/{key}", tmp_path / "dst.bin")
    assert fault_proxy.faults("GetObjectRange") >= 1
    if survives:
        assert got.ok and got.completed, got.output
        assert got.data == data
    else:
        assert not got.ok, f"the client reported success for a failed download:\n{got.output}"
        assert not got.completed, f"226 for a download S3 broke off:\n{got.output}"
        assert got.data != data
    assert_guarantees(s3dsi_via_proxy, fault_proxy, bucket, key, expect=data)


# -- ABOR after a range marker ----------------------------------------------------------------------------
def test_abor_after_range_marker_aborts_the_upload(s3dsi_via_proxy: S3dsi, fault_proxy: FaultProxy,
                                                   bucket: str) -> None:
    """A MODE E upload that has announced stored ranges (111) is recorded for a restart; an ABOR
    must still abort it at once (no janitor needed) and drop the record. globus-url-copy never
    sends ABOR (on SIGINT it just closes its connections), so a hand-made MODE E client does."""
    key = unique("abor-after-111")
    put_previous(s3dsi_via_proxy, bucket, key)
    client = Client(*s3dsi_via_proxy.address, timeout=30)
    data_sock = None
    try:
        client.login(USER, PASSWORD)
        for command, code in (("TYPE I", 200), ("MODE E", 200), ("TREV RESTART 1", 200)):
            assert client.cmd(command).code == code, command
        host, port = client.pasv()
        client.send(f"STOR /{bucket}/{key}")
        assert client.read_reply().code == 150
        data_sock = socket.create_connection((host, port), timeout=30)
        data_sock.sendall(block(0, os.urandom(HEAD)))  # part 1 complete and a byte beyond it
        markers = []
        while not markers:
            reply = client.read_reply()
            assert reply.code in (111, 112), reply
            if reply.code == 111:
                markers.append(reply.text)
        assert recorded_parts(s3dsi_via_proxy.moto, bucket, key), "a range marker went out without a record"
        assert pending_uploads(s3dsi_via_proxy.moto, bucket, key)
        client.send("ABOR")
        replies = [client.read_reply() for _ in range(2)]
        while replies[0].code in (111, 112):  # markers already on their way
            replies = [replies[1], client.read_reply()]
        assert [r.code for r in replies] == [426, 226], replies
        # the abort happened before the replies: no janitor, no waiting
        assert pending_uploads(s3dsi_via_proxy.moto, bucket, key) == []
        assert restart_records(s3dsi_via_proxy.moto, bucket, key) == []
        assert journal_entries(s3dsi_via_proxy) == []
        assert client.cmd("NOOP").code == 200
    finally:
        if data_sock is not None:
            data_sock.close()
        client.close()
    assert_guarantees(s3dsi_via_proxy, fault_proxy, bucket, key, expect=PREVIOUS)


# -- the daemon killed, the state directory full: daemons of their own --------------------------------------
@contextlib.contextmanager
def own_daemon(root: Path, proxy: FaultProxy, moto: MotoS3,
               prefix: Sequence[str] = ()) -> Iterator[S3dsi]:
    config = proxied_config(root, proxy, moto)
    daemon = config.start(prefix=prefix)
    try:
        yield S3dsi(daemon, config, moto)
    finally:
        daemon.stop()


def restarted(s3dsi: S3dsi) -> S3dsi:
    """The same configuration served by a new daemon process (its own log file)."""
    config = s3dsi.config
    daemon = start_process_daemon(config.serve_args(), log_path=config.root / "daemon-restarted.log")
    return S3dsi(daemon, config, s3dsi.moto)


def kill_daemon(s3dsi: S3dsi) -> None:
    kill_tree(s3dsi.daemon.process)  # SIGKILL of the daemon and its workers, by PID


def test_daemon_killed_before_first_range_marker(fault_proxy: FaultProxy, moto_s3: MotoS3, bucket: str,
                                                 tmp_path: Path) -> None:
    """SIGKILL once the multipart upload exists but before any 111: it was recorded (in S3) when it was
    created, so the janitor knows of it."""
    key = unique("killed-early")
    with own_daemon(tmp_path / "s3dsi", fault_proxy, moto_s3) as s3dsi:
        put_previous(s3dsi, bucket, key)
        with slow_guc_upload(tmp_path, s3dsi.url(f"/{bucket}/{key}"), os.urandom(HEAD)):
            wait_for(lambda: pending_uploads(moto_s3, bucket, key), timeout=20,
                     what="the multipart upload to start")
            kill_daemon(s3dsi)
        # a range marker is recorded before it is sent: a record without parts means the kill came
        # before the first one
        entries = restart_records(moto_s3, bucket, key)
        assert entries, "the upload was not recorded at creation"
        assert all(entry["parts"] == [] for entry in entries), "the kill came after the first range marker"
        after = restarted(s3dsi)
        try:
            assert_guarantees(after, fault_proxy, bucket, key, expect=PREVIOUS)
        finally:
            after.daemon.stop()


def test_daemon_killed_after_first_range_marker(fault_proxy: FaultProxy, moto_s3: MotoS3, bucket: str,
                                                tmp_path: Path) -> None:
    """SIGKILL after the first 111: the recorded upload is kept for a REST restart (the restarted
    daemon's own sweep keeps it, being young), and the janitor with age 0 aborts it."""
    key = unique("killed-late")
    with own_daemon(tmp_path / "s3dsi", fault_proxy, moto_s3) as s3dsi:
        put_previous(s3dsi, bucket, key)
        with slow_guc_upload(tmp_path, s3dsi.url(f"/{bucket}/{key}"), os.urandom(HEAD)):
            wait_for(lambda: recorded_parts(moto_s3, bucket, key), timeout=FIRST_RANGE_MARKER + 15,
                     what="the first range marker (parts in the record)")
            kill_daemon(s3dsi)
        after = restarted(s3dsi)
        try:
            assert pending_uploads(moto_s3, bucket, key), "the kept upload should still be there"
            assert_guarantees(after, fault_proxy, bucket, key, expect=PREVIOUS)
        finally:
            after.daemon.stop()


# -- a full state directory: a tiny tmpfs, filled up, in the daemon's own mount namespace ---------------
def full_state_dir_prefix(state_dir: Path) -> list[str]:
    """Run the daemon in a private mount namespace where ``state_dir`` is a 64 KiB tmpfs that a
    filler file has used up: the local cache's file is created, its write fails with ENOSPC."""
    if os.geteuid() != 0:
        pytest.skip("a tmpfs in a private mount namespace needs root (CI runs as root)")
    for program in ("unshare", "mount", "dd", "nsenter"):
        need(program)
    state_dir.mkdir(parents=True, exist_ok=True)
    script = ('mount -t tmpfs -o size=64k,mode=0700 s3dsi-full "$0" && mkdir "$0/uploads" && '
              '{ dd if=/dev/zero of="$0/filler" bs=4k >/dev/null 2>&1; true; } && exec "$@"')
    return [need("unshare"), "--mount", "--propagation", "private", "sh", "-c", script, str(state_dir)]


def in_namespace_of(s3dsi: S3dsi) -> list[str]:
    """Run a command in the daemon's mount namespace (where its local cache is)."""
    return [need("nsenter"), f"--mount=/proc/{s3dsi.daemon.process.pid}/ns/mnt", "--"]


CACHE_FAILED = "local restart cache not written"
RECORD_FAILED = "cannot write the restart record"


@pytest.mark.parametrize("ending", ["completes", "client-killed"])
def test_full_state_directory(fault_proxy: FaultProxy, moto_s3: MotoS3, bucket: str, tmp_path: Path,
                              ending: str) -> None:
    """The local cache cannot be written: nothing changes, since the records in S3 decide. Range markers
    still go out; the upload that then completes is stored; the one whose client dies is kept for a
    restart and found by the janitor all the same."""
    key = unique(f"full-state-{ending}")
    root = tmp_path / "s3dsi"
    prefix = full_state_dir_prefix(root / "state")
    with own_daemon(root, fault_proxy, moto_s3, prefix=prefix) as s3dsi:
        put_previous(s3dsi, bucket, key)
        expect = PREVIOUS
        with slow_guc_upload(tmp_path, s3dsi.url(f"/{bucket}/{key}"), os.urandom(HEAD)) as (writer, proc):
            wait_for(lambda: CACHE_FAILED in s3dsi.daemon.log_text() and recorded_parts(moto_s3, bucket, key),
                     timeout=FIRST_RANGE_MARKER + 15, what="a range marker despite the full state directory")
            if ending == "completes":
                writer.stop()  # end of file: the upload completes
                _, stderr = proc.communicate(timeout=60)
                assert proc.returncode == 0, stderr.decode(errors="replace")
                expect = written(writer)
        if ending == "client-killed":
            assert pending_uploads(moto_s3, bucket, key), "promised ranges: the upload is kept for a restart"
        assert_guarantees(s3dsi, fault_proxy, bucket, key, expect=expect,
                          janitor_prefix=in_namespace_of(s3dsi))


@pytest.mark.parametrize("ending", ["completes", "client-killed"])
def test_records_refused_by_s3(fault_proxy: FaultProxy, moto_s3: MotoS3, bucket: str, tmp_path: Path,
                               ending: str) -> None:
    """S3 refuses every write of a restart record: no range marker may promise a restart then. The
    upload that completes is stored; the one whose client dies is aborted at once, not kept."""
    key = unique(f"records-refused-{ending}")
    with own_daemon(tmp_path / "s3dsi", fault_proxy, moto_s3) as s3dsi:
        put_previous(s3dsi, bucket, key)
        fault_proxy.fail("PutObject", 500, key_prefix=".s3dsi/")
        expect = PREVIOUS
        with slow_guc_upload(tmp_path, s3dsi.url(f"/{bucket}/{key}"), os.urandom(HEAD)) as (writer, proc):
            wait_for(lambda: s3dsi.daemon.log_text().count(RECORD_FAILED) >= 3,
                     timeout=FIRST_RANGE_MARKER + 20, what="the intent, the record and a marker's to fail")
            assert pending_uploads(moto_s3, bucket, key), "the upload goes on without a record"
            if ending == "completes":
                writer.stop()
                _, stderr = proc.communicate(timeout=60)
                assert proc.returncode == 0, stderr.decode(errors="replace")
                expect = written(writer)
        assert restart_records(moto_s3, bucket) == []
        # nothing was promised, so nothing is kept: no janitor needed
        wait_for(lambda: not pending_uploads(moto_s3, bucket, key), timeout=15,
                 what="the unrecorded upload to be completed or aborted")
        assert_guarantees(s3dsi, fault_proxy, bucket, key, expect=expect)
