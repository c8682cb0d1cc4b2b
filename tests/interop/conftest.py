"""Interop fixtures: a real s3dsi daemon process over the moto S3 server, real client programs."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import ProcessDaemon
from tests.support.faultproxy import FaultProxy
from tests.support.gridftp_server import GridFTPServer, gridftp_server, server_program
from tests.support.moto_server import MotoS3
from tests.support.s3dsi_env import PASSWORD, USER, S3dsiConfig, client_env, ftp_url

pytestmark = pytest.mark.interop


@dataclass
class S3dsi:
    daemon: ProcessDaemon
    config: S3dsiConfig
    moto: MotoS3

    def url(self, path: str, user: str = USER, password: str = PASSWORD) -> str:
        return ftp_url(self.daemon, path, user, password)

    @property
    def address(self) -> tuple[str, int]:
        return self.daemon.host, self.daemon.port

    def object_bytes(self, bucket: str, key: str) -> bytes:
        return self.moto.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        client = self.moto.client()
        out: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return out

    def uploads(self, bucket: str) -> list[str]:
        resp = self.moto.client().list_multipart_uploads(Bucket=bucket)
        return [u["Key"] for u in resp.get("Uploads", [])]


@pytest.fixture(scope="module")
def gt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GridFTPServer]:
    """The reference C server in clear text, one per test module: the other end of third-party transfers."""
    if server_program() is None:
        pytest.fail("globus-gridftp-server is not installed (scripts/test installs it)")
    with gridftp_server(tmp_path_factory.mktemp("gridftp")) as server:
        yield server


@pytest.fixture(scope="module")
def s3dsi(moto_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    """One daemon process per test module, configured like a site would (gridftp.d, S3 conf, map)."""
    root = tmp_path_factory.mktemp("s3dsi")
    config = S3dsiConfig(root, moto_s3.endpoint, moto_s3.access_key, moto_s3.secret_key).write()
    daemon = config.start()
    try:
        yield S3dsi(daemon, config, moto_s3)
    finally:
        daemon.stop()


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    return moto_s3.create_bucket()


def run(argv: Sequence[str], *, timeout: float = 120, check: bool = True,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a client program; on failure the assertion message carries its output."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=client_env(),
                          input=input_text, check=False)
    if check:
        assert proc.returncode == 0, (
            f"{argv[0]} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


def unique(prefix: str = "f") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- a daemon whose S3 endpoint is the fault proxy (tests/support/faultproxy.py) -----------------------
FAULT_MAX_ATTEMPTS = 3  # botocore tries per S3 request: persistent faults fail within a few seconds


@pytest.fixture(scope="module")
def fault_proxy(moto_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    """The HTTP fault proxy process in front of the moto server, for one test module."""
    proxy = FaultProxy.launch(moto_s3.endpoint, tmp_path_factory.mktemp("faultproxy") / "proxy.log")
    try:
        yield proxy
    finally:
        proxy.stop()


def proxied_config(root: Path, proxy: FaultProxy, moto: MotoS3, **s3_options: str) -> S3dsiConfig:
    """A site configuration whose ``host_name`` is the fault proxy, with few S3 retries."""
    options = {"max_attempts": str(FAULT_MAX_ATTEMPTS), **s3_options}
    return S3dsiConfig(root, proxy.endpoint, moto.access_key, moto.secret_key, s3_options=options).write()


def _proxied_daemon(moto_s3: MotoS3, fault_proxy: FaultProxy,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    config = proxied_config(tmp_path_factory.mktemp("s3dsi-proxied"), fault_proxy, moto_s3)
    daemon = config.start()
    try:
        yield S3dsi(daemon, config, moto_s3)
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def s3dsi_via_proxy(moto_s3: MotoS3, fault_proxy: FaultProxy,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    """One daemon process per module that reaches S3 only through ``fault_proxy``; ``.moto`` still
    talks to the S3 server directly, for arranging and inspecting."""
    yield from _proxied_daemon(moto_s3, fault_proxy, tmp_path_factory)


@pytest.fixture
def fresh_s3dsi_via_proxy(moto_s3: MotoS3, fault_proxy: FaultProxy,
                          tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    """Like ``s3dsi_via_proxy``, but a daemon of its own for one test: its S3 clients start with a full
    botocore retry quota (standard retry mode spends it on every retry, across requests and
    transfers), so a test that must survive a transient fault does not depend on what earlier tests
    spent."""
    yield from _proxied_daemon(moto_s3, fault_proxy, tmp_path_factory)
