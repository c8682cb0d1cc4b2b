"""Helpers for the stream-mode interop tests: S3-side checks through moto, slow data sources for
killing clients mid-upload, process memory from /proc, and local tree comparison."""

from __future__ import annotations

import contextlib
import filecmp
import ftplib
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlparse

from tests.support.moto_server import MotoS3
from tests.support.s3dsi_env import PASSWORD, USER

T = TypeVar("T")


# -- waiting -------------------------------------------------------------------------------------
def wait_for(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- S3 state through moto -----------------------------------------------------------------------
def pending_uploads(moto: MotoS3, bucket: str, key: str | None = None) -> list[str]:
    """Keys with an unfinished multipart upload (ListMultipartUploads), optionally just ``key``."""
    resp = moto.client().list_multipart_uploads(Bucket=bucket)
    keys = [u["Key"] for u in resp.get("Uploads", [])]
    return [k for k in keys if key is None or k == key]


RECORDS = ".s3dsi/uploads/"  # where the daemon keeps its restart records in each bucket


def restart_records(moto: MotoS3, bucket: str, key: str | None = None) -> list[dict[str, Any]]:
    """What the daemon's restart records in ``bucket`` say (optionally only those of ``key``), read
    straight from S3; a record replaced or removed while being read is skipped."""
    client = moto.client()
    found = []
    for item in client.list_objects_v2(Bucket=bucket, Prefix=RECORDS).get("Contents", []):
        try:
            body = json.loads(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
        except (client.exceptions.NoSuchKey, ValueError):
            continue
        if key is None or body.get("key") == key:
            found.append(dict(body["entry"]))
    return found


def recorded_parts(moto: MotoS3, bucket: str, key: str | None = None) -> int:
    """Parts the records say a client was told are stored (0 before the first range marker)."""
    return sum(len(entry.get("parts", [])) for entry in restart_records(moto, bucket, key))


def user_keys(moto: MotoS3, bucket: str) -> list[str]:
    """The bucket's keys as users see them: without the daemon's records."""
    client = moto.client()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].startswith(".s3dsi/"))
    return keys


def wait_no_uploads(moto: MotoS3, bucket: str, timeout: float = 15.0) -> None:
    """Bounded wait until the bucket has no multipart upload left (aborts run in worker threads)."""
    wait_for(lambda: not pending_uploads(moto, bucket), timeout=timeout,
             what=f"the multipart uploads of {bucket} to be aborted")


def object_bytes(moto: MotoS3, bucket: str, key: str) -> bytes | None:
    """The object's content, or None if there is no such object."""
    client = moto.client()
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


def versions(moto: MotoS3, bucket: str, key: str) -> list[tuple[str, str]]:
    """(VersionId, ETag) of every version of ``key``, newest first (bucket versioning enabled)."""
    resp = moto.client().list_object_versions(Bucket=bucket, Prefix=key)
    return [(v["VersionId"], v["ETag"]) for v in resp.get("Versions", []) if v["Key"] == key]


def enable_versioning(moto: MotoS3, bucket: str) -> None:
    moto.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def multipart_part_count(etag: str) -> int:
    """Parts of a multipart object from its ETag (``"<md5>-N"``); 1 for a single PutObject."""
    tag = etag.strip('"')
    return int(tag.rsplit("-", 1)[1]) if "-" in tag else 1


def put_empty_objects(moto: MotoS3, bucket: str, keys: Iterable[str], threads: int = 6) -> None:
    """Create many empty objects fast: raw keep-alive HTTP PUTs from a few threads.

    moto needs no request signature, and on a 2-core machine boto3's per-request work (signing,
    parsing) costs about a third of the time; the moto server itself is the bottleneck otherwise.
    """
    endpoint = urlparse(moto.endpoint)
    assert endpoint.hostname is not None and endpoint.port is not None
    todo = list(keys)

    def work(start: int) -> None:
        conn = http.client.HTTPConnection(endpoint.hostname or "", endpoint.port, timeout=60)
        try:
            for key in todo[start::threads]:
                conn.request("PUT", f"/{bucket}/{quote(key)}", body=b"", headers={"Content-Length": "0"})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200, f"PUT {key}: HTTP {resp.status}"
        finally:
            conn.close()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


def list_requests(moto: MotoS3, bucket: str, since: int = 0) -> list[str]:
    """ListObjectsV2 request lines for ``bucket`` in the moto server's access log after byte ``since``."""
    with moto.log_path.open("rb") as log:
        log.seek(since)
        text = log.read().decode("utf-8", "replace")
    return [line for line in text.splitlines()
            if f"GET /{bucket}?" in line and "list-type=2" in line]


def log_size(path: Path) -> int:
    return path.stat().st_size


# -- ftplib --------------------------------------------------------------------------------------
@contextlib.contextmanager
def ftp_session(address: tuple[str, int], timeout: float = 30.0) -> Iterator[ftplib.FTP]:
    ftp = ftplib.FTP()
    ftp.connect(address[0], address[1], timeout=timeout)
    try:
        ftp.login(USER, PASSWORD)
        yield ftp
    finally:
        ftp.close()


# -- processes -----------------------------------------------------------------------------------
def kill_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGKILL the client we started (by its PID, through Popen) and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status (``VmRSS``, ``VmHWM``) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/PID/task/*/children)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out.extend(int(x) for x in (task / "children").read_text().split())
    return out


def kill_tree(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGKILL a daemon and every process it forked (workers, helpers), by PID, the forked ones first:
    the daemon dies as a host does, nothing of it drains."""
    pids, index = [process.pid], 0
    while index < len(pids):
        with contextlib.suppress(OSError):
            pids.extend(child_pids(pids[index]))
        index += 1
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(10)


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/PID/clear_refs``, Linux >= 4.0); False if
    the kernel refused, in which case VmHWM is the peak since the process started."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Samples a process's VmRSS every ``interval`` s in a thread (a fallback where VmHWM cannot be
    reset, and a record of how memory moved during the listing)."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(status_kib(self.pid, "VmRSS"))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak(self) -> int:
        return max(self.samples) if self.samples else 0


# -- slow data sources ---------------------------------------------------------------------------
class SlowWriter:
    """Writes ``head`` at once into a binary stream (a FIFO or a child's stdin), then dribbles
    ``chunk`` bytes every ``pause`` s until stopped, so the reading client is mid-upload for as long
    as the test wants. Broken pipes (the reader was killed) end it quietly."""

    def __init__(self, opener: Callable[[], IO[bytes]], head: bytes, chunk: bytes = b"z" * 4096,
                 pause: float = 0.05) -> None:
        self._opener = opener
        self.head = head
        self.chunk = chunk
        self.pause = pause
        self.sent = 0
        self.head_sent = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-writer", daemon=True)

    def _run(self) -> None:
        try:
            with self._opener() as out:
                out.write(self.head)
                out.flush()
                self.sent = len(self.head)
                self.head_sent.set()
                while not self._stop.wait(self.pause):
                    out.write(self.chunk)
                    out.flush()
                    self.sent += len(self.chunk)
        except (BrokenPipeError, ValueError, OSError):
            pass

    def start(self) -> SlowWriter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# -- local trees ---------------------------------------------------------------------------------
def tree_listing(root: Path) -> list[str]:
    """Every file and directory under ``root`` (relative, directories with a trailing /), sorted."""
    out: list[str] = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        out.append(rel + "/" if path.is_dir() else rel)
    return sorted(out)


def trees_differ(left: Path, right: Path) -> list[str]:
    """Differences between two trees, file contents compared byte by byte; [] when identical."""
    problems: list[str] = []
    if tree_listing(left) != tree_listing(right):
        problems.append(f"entries differ: {tree_listing(left)} != {tree_listing(right)}")

    def walk(cmp: filecmp.dircmp[str], rel: str) -> None:
        problems.extend(f"only in {cmp.left}: {n}" for n in cmp.left_only)
        problems.extend(f"only in {cmp.right}: {n}" for n in cmp.right_only)
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        problems.extend(f"content differs: {rel}{n}" for n in mismatch + errors)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{rel}{name}/")

    walk(filecmp.dircmp(left, right), "")
    return problems
