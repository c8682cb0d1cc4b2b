"""The moto server helper every functional test relies on: starts, answers, stops, and explains failures."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.moto_server import MotoS3, MotoServerProcess, MotoStartError


def test_fixture_server_answers_s3(moto_s3: MotoS3, s3_bucket: str) -> None:
    assert moto_s3.endpoint.startswith("http://127.0.0.1:")
    client = moto_s3.client()
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    assert client.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"
    other = moto_s3.create_bucket(region="eu-west-2")
    assert moto_s3.client("eu-west-2").get_bucket_location(Bucket=other)["LocationConstraint"] == "eu-west-2"


def test_own_server_stops_at_exit(tmp_path: Path) -> None:
    server = MotoServerProcess.launch(tmp_path)
    try:
        with urllib.request.urlopen(f"{server.info.endpoint}/moto-api/", timeout=5) as reply:
            assert reply.status == 200
        server.info.reset()
    finally:
        server.stop()
    assert server.process.poll() is not None


def test_start_failure_reports_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ImportError: moto is broken' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    with pytest.raises(MotoStartError, match="moto is broken"):
        MotoServerProcess.launch(tmp_path / "logs", timeout=2)
