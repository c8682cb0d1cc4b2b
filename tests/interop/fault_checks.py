"""What every fault case of test_faults.py checks afterwards, and the client runs the cases share.

The guarantee, in four parts: the object is the previous one or the complete new one (never a part of
it, never an extra key besides the daemon's restart records); the daemon still serves (a new login
uploads and downloads a file); after ``s3dsi janitor --max-age 0`` no multipart upload and no restart
record is left in the bucket; a failed download is reported to the client (never ``226`` for a
truncated file).
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.interop.conftest import S3dsi, run, unique
from tests.support.faultproxy import FaultProxy
from tests.support.guc_debug import parse_debug, replies
from tests.support.interop_helpers import (
    SlowWriter,
    fifo,
    ftp_session,
    kill_process,
    object_bytes,
    pending_uploads,
    restart_records,
    user_keys,
    wait_for,
)
from tests.support.programs import need
from tests.support.s3dsi_env import S3dsiConfig, client_env

PREVIOUS = b"the previous content of this object\n"


class LeftoverUpload(AssertionError):
    """A multipart upload (or its record) is still in the bucket after the janitor ran: nothing will
    ever abort it."""


def journal_entries(s3dsi: S3dsi) -> list[Path]:
    """The local restart cache's entries (the test configuration's state_dir/uploads)."""
    directory = s3dsi.config.root / "state" / "uploads"
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def cached_parts(s3dsi: S3dsi) -> int:
    """Parts the local cache lists as promised to a client by range markers (0 before the first)."""
    total = 0
    for path in journal_entries(s3dsi):
        try:
            total += len(json.loads(path.read_text())["parts"])
        except (OSError, ValueError, KeyError):
            continue  # being replaced right now
    return total


def run_janitor(s3dsi: S3dsi, prefix: Sequence[str] = (), config: S3dsiConfig | None = None) -> str:
    """``s3dsi janitor --max-age 0`` with the daemon's configuration (or another host's); its output."""
    config = config or s3dsi.config
    proc = subprocess.run([*prefix, sys.executable, "-m", "s3dsi", "janitor", "-c", "/dev/null",
                           "-C", str(config.conf_dir), "--s3-conf", str(config.s3_conf), "--max-age", "0"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"janitor exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def assert_serving(s3dsi: S3dsi, bucket: str) -> None:
    """A new login stores a small file and reads it back."""
    key = unique("alive")
    data = os.urandom(4096)
    out = io.BytesIO()
    with ftp_session(s3dsi.address, timeout=20) as ftp:
        ftp.storbinary(f"STOR /{bucket}/{key}", io.BytesIO(data))
        ftp.retrbinary(f"RETR /{bucket}/{key}", out.write)
    assert out.getvalue() == data
    s3dsi.moto.client().delete_object(Bucket=bucket, Key=key)


def assert_guarantees(s3dsi: S3dsi, proxy: FaultProxy, bucket: str, key: str, *, expect: bytes,
                      janitor_prefix: Sequence[str] = ()) -> None:
    """The four checks, with S3 healthy again (rules cleared); the janitor check comes last so that
    LeftoverUpload means every other part held."""
    proxy.clear()
    got = object_bytes(s3dsi.moto, bucket, key)
    assert got is not None, "the previous object is gone"
    assert len(got) == len(expect) and got == expect, (
        f"object is {len(got)} bytes, expected {len(expect)} ({'previous' if expect == PREVIOUS else 'new'})")
    assert user_keys(s3dsi.moto, bucket) == [key]
    assert_serving(s3dsi, bucket)
    output = run_janitor(s3dsi, janitor_prefix)
    try:
        wait_for(lambda: not pending_uploads(s3dsi.moto, bucket) and not restart_records(s3dsi.moto, bucket),
                 timeout=5, what="the bucket to have no multipart upload and no restart record")
    except AssertionError:
        raise LeftoverUpload(f"multipart uploads of {pending_uploads(s3dsi.moto, bucket)} (records: "
                             f"{restart_records(s3dsi.moto, bucket)}) survived the janitor, which said: "
                             f"{output.strip()}") from None


# -- client runs -------------------------------------------------------------------------------------
def upload(client: str, src: Path, url: str) -> tuple[bool, str]:
    """Upload ``src`` with a real client; (the client reported success, its output)."""
    if client == "guc-p4":  # MODE E, four streams, range markers
        proc = run([need("globus-url-copy"), "-p", "4", src.as_uri(), url], check=False)
    elif client == "curl":  # stream mode, no ALLO
        proc = run([need("curl"), "-sS", "-T", str(src), url], check=False)
    else:
        raise ValueError(client)
    return proc.returncode == 0, proc.stdout + proc.stderr


@dataclass
class Download:
    ok: bool  # the client reported success
    completed: bool  # the server answered 226 to the RETR
    data: bytes | None  # what the client wrote locally
    output: str


def download(client: str, s3dsi: S3dsi, path: str, dst: Path) -> Download:
    """Download ``path`` with a real client, noting whether the server ever said 226."""
    url = s3dsi.url(path)
    if client == "ftplib":  # stream mode
        out = io.BytesIO()
        with ftp_session(s3dsi.address, timeout=30) as ftp:
            try:
                final = ftp.retrbinary(f"RETR {path}", out.write)
            except ftplib.Error as err:
                return Download(False, str(err).startswith("226"), out.getvalue(), str(err))
        return Download(final.startswith("226"), final.startswith("226"), out.getvalue(), final)
    if client in ("guc", "guc-p4"):
        extra = ["-p", "4"] if client == "guc-p4" else []
        proc = run([need("globus-url-copy"), "-dbg", *extra, url, dst.as_uri()], check=False)
        completed = any(r.startswith("226") for r in replies(parse_debug(proc.stderr)))
        output = proc.stderr[-3000:]
    elif client == "curl":  # stream mode; -v shows the server's replies as "< NNN"
        proc = run([need("curl"), "-sS", "-v", "-o", str(dst), url], check=False)
        completed = any(line.startswith("< 226") for line in proc.stderr.splitlines())
        output = proc.stderr[-3000:]
    else:
        raise ValueError(client)
    data = dst.read_bytes() if dst.exists() else None
    return Download(proc.returncode == 0, completed, data, output)


@contextlib.contextmanager
def slow_guc_upload(tmp_path: Path, url: str,
                    head: bytes) -> Iterator[tuple[SlowWriter, subprocess.Popen[bytes]]]:
    """globus-url-copy -p 4 reading a FIFO that gets ``head`` at once and then a trickle, so the upload
    runs (past range markers) for as long as the test wants; the client is SIGKILLed on the way out.
    Stopping the writer ends the file, and the upload then completes."""
    pipe = fifo(tmp_path / "src.fifo")
    writer = SlowWriter(lambda: open(pipe, "wb"), head=head).start()  # noqa: SIM115
    proc = subprocess.Popen([need("globus-url-copy"), "-p", "4", pipe.as_uri(), url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env())
    try:
        yield writer, proc
    finally:
        kill_process(proc)
        with contextlib.suppress(OSError):  # a writer still blocked in open(): release it
            os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
        writer.stop()


def written(writer: SlowWriter) -> bytes:
    """Everything a stopped SlowWriter wrote: its head, then whole chunks."""
    count, rest = divmod(writer.sent - len(writer.head), len(writer.chunk))
    assert rest == 0
    return writer.head + writer.chunk * count
