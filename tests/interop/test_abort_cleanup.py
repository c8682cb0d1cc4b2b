"""Uploads that end badly leave nothing behind: no new object, no unfinished multipart upload, and an
existing object of the same name untouched.

To be sure a client is killed *mid*-upload, it reads its data from a pipe that a writer thread fills
with more than one part (so the daemon has started a multipart upload, which the test sees in
ListMultipartUploads) and then dribbles slowly; the client is SIGKILLed by PID at that point.
"""

from __future__ import annotations

import contextlib
import ftplib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.interop.conftest import S3dsi, unique
from tests.support.interop_helpers import (
    SlowWriter,
    fifo,
    ftp_session,
    kill_process,
    object_bytes,
    pending_uploads,
    wait_for,
    wait_no_uploads,
)
from tests.support.programs import need
from tests.support.s3dsi_env import MiB, client_env

pytestmark = pytest.mark.interop

PART = 5 * MiB
HEAD = PART + 2 * MiB  # sent at once: part 1 is complete, so the multipart upload exists
PREVIOUS = b"the previous content of this object\n"
# In MODE E the daemon keeps a multipart upload for a REST restart once it has announced stored ranges
# in a 111 marker (every 5 s by default); the clients below are killed long before the first one.
FIRST_RANGE_MARKER = 5.0


def arrange(s3dsi: S3dsi, bucket: str, key: str, previous: bool) -> None:
    if previous:
        s3dsi.moto.client().put_object(Bucket=bucket, Key=key, Body=PREVIOUS)


def assert_left_as_before(s3dsi: S3dsi, bucket: str, key: str, previous: bool) -> None:
    wait_no_uploads(s3dsi.moto, bucket)
    assert object_bytes(s3dsi.moto, bucket, key) == (PREVIOUS if previous else None)
    assert s3dsi.keys(bucket) == ([key] if previous else [])


def wait_mid_upload(s3dsi: S3dsi, bucket: str, key: str, proc: subprocess.Popen[bytes]) -> None:
    def started() -> bool:
        assert proc.poll() is None, f"the client ended early: {proc.communicate()}"
        return bool(pending_uploads(s3dsi.moto, bucket, key))

    wait_for(started, timeout=20, what=f"a multipart upload of {key} to start")


@contextlib.contextmanager
def fifo_source(path: Path) -> Iterator[SlowWriter]:
    pipe = fifo(path)
    writer = SlowWriter(lambda: open(pipe, "wb"), head=os.urandom(HEAD)).start()  # noqa: SIM115
    try:
        yield writer
    finally:
        # if the client never opened the FIFO, the writer still waits in open(): release it
        with contextlib.suppress(OSError):
            os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
        writer.stop()


@pytest.mark.parametrize(("mode", "previous"), [([], True), ([], False), (["-p", "4"], True)],
                         ids=["stream-over-existing", "stream-new", "p4-over-existing"])
def test_killed_globus_url_copy(s3dsi: S3dsi, bucket: str, tmp_path: Path, mode: list[str],
                                previous: bool) -> None:
    key = unique("guc-killed")
    arrange(s3dsi, bucket, key, previous)
    with fifo_source(tmp_path / "src.fifo") as writer:
        started = time.monotonic()
        proc = subprocess.Popen([need("globus-url-copy"), *mode, f"file://{tmp_path / 'src.fifo'}",
                                 s3dsi.url(f"/{bucket}/{key}")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env())
        try:
            wait_mid_upload(s3dsi, bucket, key, proc)
            assert writer.head_sent.is_set()
        finally:
            kill_process(proc)
        elapsed = time.monotonic() - started
    assert elapsed < FIRST_RANGE_MARKER, f"the kill came {elapsed:.1f}s in: too late for this test"
    assert_left_as_before(s3dsi, bucket, key, previous)


@pytest.mark.parametrize("previous", [True, False], ids=["over-existing", "new"])
def test_killed_curl(s3dsi: S3dsi, bucket: str, previous: bool) -> None:
    key = unique("curl-killed")
    arrange(s3dsi, bucket, key, previous)
    proc = subprocess.Popen([need("curl"), "-sS", "-T", "-", s3dsi.url(f"/{bucket}/{key}")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=client_env())
    assert proc.stdin is not None
    stdin: IO[bytes] = proc.stdin
    writer = SlowWriter(lambda: stdin, head=os.urandom(HEAD)).start()
    try:
        wait_mid_upload(s3dsi, bucket, key, proc)
    finally:
        kill_process(proc)
        writer.stop()
    assert_left_as_before(s3dsi, bucket, key, previous)


def test_ftplib_abor_during_stor(s3dsi: S3dsi, bucket: str) -> None:
    """ftplib.abort() sends ABOR as urgent data; the running STOR answers 426, the ABOR
    ``226 Abort successful``, and the session goes on."""
    key = unique("abor")
    arrange(s3dsi, bucket, key, True)
    with ftp_session(s3dsi.address, timeout=20) as ftp:
        ftp.voidcmd("TYPE I")
        data = ftp.transfercmd(f"STOR /{bucket}/{key}")
        try:
            data.sendall(os.urandom(HEAD))
            wait_for(lambda: pending_uploads(s3dsi.moto, bucket, key), timeout=20,
                     what="the multipart upload to start")
            assert ftp.abort().startswith("426")
            assert ftp.getresp() == "226 Abort successful"
        finally:
            data.close()
        assert ftp.voidcmd("NOOP").startswith("200")
        assert ftp.size(f"/{bucket}/{key}") == len(PREVIOUS)
    assert_left_as_before(s3dsi, bucket, key, True)


def test_data_connection_reset_during_stor(s3dsi: S3dsi, bucket: str) -> None:
    key = unique("reset")
    arrange(s3dsi, bucket, key, True)
    with ftp_session(s3dsi.address, timeout=20) as ftp:
        ftp.voidcmd("TYPE I")
        data = ftp.transfercmd(f"STOR /{bucket}/{key}")
        data.sendall(os.urandom(HEAD))
        wait_for(lambda: pending_uploads(s3dsi.moto, bucket, key), timeout=20,
                 what="the multipart upload to start")
        data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        data.close()  # RST instead of FIN
        with pytest.raises(ftplib.error_temp) as failed:
            ftp.voidresp()
        assert str(failed.value).startswith("426") and "DATA_CHANNEL" in str(failed.value)
        assert ftp.voidcmd("NOOP").startswith("200")
    assert_left_as_before(s3dsi, bucket, key, True)
