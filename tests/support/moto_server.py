"""A moto S3 server running as a real separate process on 127.0.0.1, for functional and interop tests.

Started once per test session by the ``moto_s3`` fixture (tests/conftest.py); usable on its own as a
context manager (``with MotoServerProcess.start(log_dir) as server: ...``). moto accepts any
credentials, so fixed test ones are used.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from tests.support.processes import stop_process

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TEST_ACCESS_KEY = "AKIAMOTOTESTKEY00001"
TEST_SECRET_KEY = "moto/test/secret/key/not/a/real/one0000"  # moto accepts any credentials
TEST_REGION = "us-east-1"

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 5.0
_PORT_ATTEMPTS = 3


class MotoStartError(RuntimeError):
    """The moto server did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the server retries on a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP reply means the server is serving
    except OSError:
        return False


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "<no log>"


@dataclass(frozen=True)
class MotoS3:
    """What a test needs to talk to the server."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    pid: int
    log_path: Path

    def client(self, region: str | None = None, **config: Any) -> S3Client:
        """A plain boto3 S3 client for arranging and inspecting test state (path-style addressing)."""
        s3_options: Any = {"addressing_style": "path", **config.pop("s3", {})}
        settings = Config(s3=s3_options, retries={"mode": "standard", "max_attempts": 2}, **config)
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=region or self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=settings)

    def create_bucket(self, region: str | None = None, prefix: str = "test") -> str:
        """A fresh, uniquely named bucket (in ``region``, default the server's region)."""
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        region = region or self.region
        client = self.client(region)
        if region == "us-east-1":
            client.create_bucket(Bucket=name)
        else:
            location: Any = {"LocationConstraint": region}
            client.create_bucket(Bucket=name, CreateBucketConfiguration=location)
        return name

    def reset(self) -> None:
        """Forget every bucket (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


class MotoServerProcess:
    """Owns the child process: started with ``start``, stopped by PID with ``stop``."""

    def __init__(self, process: subprocess.Popen[bytes], info: MotoS3) -> None:
        self.process = process
        self.info = info

    @classmethod
    @contextlib.contextmanager
    def start(cls, log_dir: Path, timeout: float = _START_TIMEOUT) -> Iterator[MotoS3]:
        server = cls.launch(log_dir, timeout)
        try:
            yield server.info
        finally:
            server.stop()

    @classmethod
    def launch(cls, log_dir: Path, timeout: float = _START_TIMEOUT) -> MotoServerProcess:
        log_dir.mkdir(parents=True, exist_ok=True)
        failures: list[str] = []
        for attempt in range(_PORT_ATTEMPTS):
            port = free_port()
            log_path = log_dir / f"moto-{port}-{attempt}.log"
            server = cls._spawn(port, log_path)
            if server.wait_ready(timeout):
                return server
            server.stop()
            failures.append(f"port {port}: {_log_tail(log_path)}")
        raise MotoStartError("moto server did not start:\n" + "\n---\n".join(failures))

    @classmethod
    def _spawn(cls, port: int, log_path: Path) -> MotoServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["MOTO_PORT"] = str(port)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        info = MotoS3(endpoint=f"http://127.0.0.1:{port}", access_key=TEST_ACCESS_KEY,
                      secret_key=TEST_SECRET_KEY, region=TEST_REGION, pid=process.pid, log_path=log_path)
        return cls(process, info)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _answers(self.info.endpoint):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        stop_process(self.process, _STOP_TIMEOUT)
