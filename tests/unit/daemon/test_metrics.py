"""Counters, snapshots that forked session processes send to their parent, botocore hooks, exposition."""

from __future__ import annotations

import socket

import botocore.session
import pytest
from botocore.stub import Stubber

from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.model import ProcessModel
from s3dsi.daemon.runtime import Listeners, SingleProcessRuntime
from s3dsi.daemon.supervisor import Supervisor
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.metrics import Metrics, http_response, render_prometheus
from s3dsi.observability.transferlog import TransferLog, TransferRecord
from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend


def transfer(kind: str, nbytes: int, seconds: float, code: int = 226) -> TransferRecord:
    return TransferRecord(kind=kind, path="/b/k", user="u", nbytes=nbytes, started=100.0,
                          ended=100.0 + seconds, code=code, remote="127.0.0.1")


def test_transfers_count_bytes_by_direction_and_durations_by_kind() -> None:
    metrics = Metrics()
    metrics.record_transfer(transfer("STOR", 1000, 2.0))
    metrics.record_transfer(transfer("RETR", 300, 0.2))
    metrics.record_transfer(transfer("RETR", 5, 0.1, code=426))
    metrics.record_transfer(transfer("LIST", 77, 0.1))
    assert metrics.value("s3dsi_transfer_bytes_total", direction="in") == 1000
    assert metrics.value("s3dsi_transfer_bytes_total", direction="out") == 305
    assert metrics.value("s3dsi_transfers_total", kind="RETR", code="426") == 1
    assert metrics.value("s3dsi_transfers_total", kind="LIST", code="226") == 1
    text = render_prometheus(metrics, {"s3dsi_sessions": 3.0}).decode()
    assert 's3dsi_transfer_bytes_total{direction="in"} 1000.0' in text
    assert 's3dsi_transfer_duration_seconds_bucket{kind="RETR",le="0.5"} 2.0' in text
    assert 's3dsi_transfer_duration_seconds_count{kind="STOR"} 1.0' in text
    assert "s3dsi_sessions 3.0" in text
    assert "# HELP s3dsi_s3_requests_total" in text  # listed even before any request


def test_snapshots_add_up_across_processes() -> None:
    first, second = Metrics(), Metrics()
    first.record_transfer(transfer("STOR", 10, 1.0))
    second.record_transfer(transfer("STOR", 32, 30.0))
    second.inc("s3dsi_s3_errors_total", {"operation": "PutObject", "code": "SlowDown"})
    total = Metrics.combined([first.snapshot(), second.snapshot(), {"counters": [["bad"]]}])
    assert total.value("s3dsi_transfer_bytes_total", direction="in") == 42
    assert total.value("s3dsi_s3_errors_total", operation="PutObject", code="SlowDown") == 1
    text = render_prometheus(total, {}).decode()
    assert 's3dsi_transfer_duration_seconds_count{kind="STOR"} 2.0' in text
    assert 's3dsi_transfer_duration_seconds_bucket{kind="STOR",le="1.0"} 1.0' in text
    assert 's3dsi_transfer_duration_seconds_bucket{kind="STOR",le="+Inf"} 2.0' in text


def test_botocore_calls_errors_and_retries_are_counted() -> None:
    metrics = Metrics()
    session = botocore.session.Session()
    metrics.instrument(session)
    client = session.create_client("s3", region_name="us-east-1", aws_access_key_id="AKIAEXAMPLE",
                                   aws_secret_access_key="secret-not-used")
    with Stubber(client) as stub:
        stub.add_response("list_buckets", {"Buckets": [], "ResponseMetadata": {"RetryAttempts": 2,
                                                                              "HTTPStatusCode": 200}})
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        client.list_buckets()
        for call in (lambda: client.head_object(Bucket="b", Key="k"),
                     lambda: client.put_object(Bucket="b", Key="k", Body=b"x")):
            try:
                call()
            except client.exceptions.ClientError:
                pass
    assert metrics.value("s3dsi_s3_requests_total", operation="ListBuckets", status="200") == 1
    assert metrics.value("s3dsi_s3_retries_total", operation="ListBuckets") == 2
    assert metrics.value("s3dsi_s3_errors_total", operation="HeadObject", code="404") == 1
    assert metrics.value("s3dsi_s3_errors_total", operation="PutObject", code="AccessDenied") == 1
    assert metrics.value("s3dsi_s3_requests_total", operation="PutObject", status="403") == 1


def test_http_endpoint_answers_get_metrics_only() -> None:
    ok = http_response(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", lambda: b"body\n")
    assert ok.startswith(b"HTTP/1.0 200 OK\r\n") and ok.endswith(b"\r\n\r\nbody\n")
    assert b"Content-Length: 5" in ok
    assert http_response(b"GET /other HTTP/1.1\r\n\r\n", lambda: b"").startswith(b"HTTP/1.0 404")
    assert http_response(b"POST /metrics HTTP/1.1\r\n\r\n", lambda: b"").startswith(b"HTTP/1.0 405")
    head = http_response(b"HEAD /metrics HTTP/1.1\r\n\r\n", lambda: b"body\n")
    assert head.endswith(b"\r\n\r\n")


def test_the_per_session_parent_counts_every_session_it_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    control = socket.create_server(("127.0.0.1", 0))
    supervisor = Supervisor(ConfigSource(), Settings(), Authenticator(None), Listeners([control]),
                            TransferLog(None), metrics=True)
    forked: list[str] = []

    def fork(conn: socket.socket, peer: str, number: int) -> None:
        forked.append(peer)
        conn.close()

    monkeypatch.setattr(supervisor, "_fork", fork)
    clients = [socket.create_connection(control.getsockname()) for _ in range(2)]
    try:
        supervisor._accept(control)
        supervisor._accept(control)
    finally:
        for client in clients:
            client.close()
        control.close()
    assert forked == ["127.0.0.1", "127.0.0.1"]
    assert "s3dsi_sessions_opened_total 2.0" in supervisor.render_metrics().decode()


def test_the_single_process_daemon_counts_sessions_into_its_metrics() -> None:
    metrics = Metrics()
    control = socket.create_server(("127.0.0.1", 0))
    try:
        runtime = SingleProcessRuntime(Settings(), model=ProcessModel.INVOKER, runs_as=Account.current(),
                                       listeners=Listeners([control]), authenticator=Authenticator(None),
                                       backends=SharedBackend(MemoryBackend()),
                                       transfer_log=TransferLog(None), metrics=metrics)
        hook = runtime.daemon.ctx.on_session_opened
        assert hook is not None
        hook()
        assert metrics.value("s3dsi_sessions_opened_total") == 1
        assert "s3dsi_sessions_opened_total 1.0" in runtime.render_metrics().decode()
    finally:
        control.close()
        runtime.daemon.ctx.workers.shutdown()
        runtime.daemon.ctx.namespace_pool.shutdown()
