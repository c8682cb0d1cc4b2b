"""The fault proxy itself (tests/support/faultproxy.py): what it classifies, what it forwards byte for
byte, and the faults it raises, against a scripted upstream and against the moto server with boto3."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.faultproxy import FaultProxy, Rule, RuleBook, classify
from tests.support.moto_server import MotoS3

Step = tuple[str, Any]  # ("read", n) | ("send", bytes) | ("close", None) | ("eof", None)


# -- classify and the rule book (pure) --------------------------------------------------------------
@pytest.mark.parametrize(("method", "target", "headers", "op"), [
    ("GET", "/", {}, "ListBuckets"),
    ("PUT", "/b", {}, "CreateBucket"),
    ("HEAD", "/b", {}, "HeadBucket"),
    ("GET", "/b?list-type=2&prefix=x%2F&delimiter=%2F", {}, "ListObjectsV2"),
    ("GET", "/b?uploads", {}, "ListMultipartUploads"),
    ("PUT", "/b/k", {}, "PutObject"),
    ("PUT", "/b/k", {"x-amz-copy-source": "/b/j"}, "CopyObject"),
    ("PUT", "/b/k?tagging", {}, "PutObjectTagging"),
    ("POST", "/b/k?uploads", {}, "CreateMultipartUpload"),
    ("PUT", "/b/k?partNumber=3&uploadId=U", {}, "UploadPart"),
    ("PUT", "/b/k?partNumber=3&uploadId=U", {"x-amz-copy-source": "/b/j"}, "UploadPartCopy"),
    ("POST", "/b/k?uploadId=U", {}, "CompleteMultipartUpload"),
    ("DELETE", "/b/k?uploadId=U", {}, "AbortMultipartUpload"),
    ("GET", "/b/k?uploadId=U", {}, "ListParts"),
    ("GET", "/b/k", {}, "GetObject"),
    ("GET", "/b/k", {"range": "bytes=0-9"}, "GetObjectRange"),
    ("GET", "/b/k?tagging", {}, "GetObjectTagging"),
    ("HEAD", "/b/dir/k", {}, "HeadObject"),
    ("DELETE", "/b/k", {}, "DeleteObject"),
    ("POST", "/b?delete", {}, "DeleteObjects"),
])
def test_classify(method: str, target: str, headers: dict[str, str], op: str) -> None:
    assert classify(method, target, headers) == op


def test_rules_skip_then_act_a_number_of_times_per_key() -> None:
    book = RuleBook()
    book.add(Rule(op="UploadPart", skip=1, times=2, key="k"))
    acted = [book.match("UploadPart", "k") is not None for _ in range(5)]
    assert acted == [False, True, True, False, False]
    assert book.match("UploadPart", "other") is None
    assert book.match("PutObject", "k") is None
    snap = book.snapshot()
    assert snap["requests"] == {"UploadPart": 6, "PutObject": 1}
    assert snap["faults"] == {"UploadPart": 2}


def test_persistent_rule_acts_on_every_match_until_cleared() -> None:
    book = RuleBook()
    book.add(Rule(op="CompleteMultipartUpload", status=500))
    assert all(book.match("CompleteMultipartUpload", "k") for _ in range(20))
    book.clear()
    assert book.match("CompleteMultipartUpload", "k") is None
    assert book.snapshot()["requests"]["CompleteMultipartUpload"] == 21
    book.clear(counts=True)
    assert book.snapshot()["requests"] == {}


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="action"):
        RuleBook().add(Rule(op="UploadPart", action="explode"))
    with pytest.raises(ValueError, match="where"):
        RuleBook().add(Rule(op="UploadPart", action="reset", where="sideways"))


# -- a scripted upstream ----------------------------------------------------------------------------
class ScriptedUpstream:
    """Serves each accepted connection with the next script: read exact byte counts (recorded), send
    bytes, close, or read to EOF. Whatever a connection received is kept for comparison."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.scripts: queue.Queue[list[Step]] = queue.Queue()
        self.received: list[bytes] = []
        self.errors: list[str] = []
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        got = bytearray()
        conn.settimeout(10)
        try:
            script = self.scripts.get(timeout=10)
            for action, arg in script:
                if action == "read":
                    while len(got) < arg:
                        data = conn.recv(arg - len(got))
                        if not data:
                            raise ConnectionError(f"EOF after {len(got)} of {arg} bytes")
                        got += data
                elif action == "send":
                    conn.sendall(arg)
                elif action == "eof":
                    while data := conn.recv(65536):
                        got += data
                elif action == "close":
                    conn.close()
        except (OSError, queue.Empty) as err:
            self.errors.append(f"{type(err).__name__}: {err}")
        finally:
            self.received.append(bytes(got))
            conn.close()
            self.done.set()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def proxy(upstream: ScriptedUpstream, tmp_path: Path) -> Iterator[FaultProxy]:
    fp = FaultProxy.launch(f"http://127.0.0.1:{upstream.port}", tmp_path / "proxy.log")
    try:
        yield fp
    finally:
        fp.stop()


@contextlib.contextmanager
def client(proxy: FaultProxy) -> Iterator[socket.socket]:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def read_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise EOFError(f"EOF after {len(out)} of {n} bytes")
        out += data
    return bytes(out)


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """(bytes read, whether the connection ended with a reset)."""
    out = bytearray()
    try:
        while data := sock.recv(65536):
            out += data
    except ConnectionResetError:
        return bytes(out), True
    return bytes(out), False


def response(status: str, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# -- pass-through -----------------------------------------------------------------------------------
def test_content_length_bodies_pass_byte_exact_over_one_keep_alive_connection(
        proxy: FaultProxy, upstream: ScriptedUpstream) -> None:
    body = os.urandom(300_000)
    first = (b"PUT /b/k HTTP/1.1\r\nHost: x\r\nX-Odd-Header:  kept as is \r\n"
             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    second = b"GET /b/k HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n"
    reply1 = response("200 OK", b"", 'ETag: "abc"')
    reply2 = response("206 Partial Content", body[:100], "Content-Range: bytes 0-99/300000")
    upstream.scripts.put([("read", len(first)), ("send", reply1), ("read", len(first) + len(second)),
                          ("send", reply2), ("eof", None)])
    with client(proxy) as sock:
        sock.sendall(first)
        assert read_exact(sock, len(reply1)) == reply1
        sock.sendall(second)
        assert read_exact(sock, len(reply2)) == reply2
    upstream.done.wait(10)
    assert upstream.received == [first + second]
    assert proxy.state()["requests"] == {"PutObject": 1, "GetObjectRange": 1}


def test_chunked_bodies_keep_their_framing(proxy: FaultProxy, upstream: ScriptedUpstream) -> None:
    request = (b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nx-amz-trailer: v\r\n\r\n")
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"3\r\nabc\r\n0\r\n\r\n")
    upstream.scripts.put([("read", len(request)), ("send", reply), ("eof", None)])
    with client(proxy) as sock:
        sock.sendall(request)
        assert read_exact(sock, len(reply)) == reply
    upstream.done.wait(10)
    assert upstream.received == [request]


def test_a_body_without_length_runs_to_the_close(proxy: FaultProxy, upstream: ScriptedUpstream) -> None:
    request = b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + os.urandom(70_000)
    upstream.scripts.put([("read", len(request)), ("send", reply), ("close", None)])
    with client(proxy) as sock:
        sock.sendall(request)
        got, was_reset = read_until_closed(sock)
    assert (got, was_reset) == (reply, False)


def test_100_continue_is_relayed(proxy: FaultProxy, upstream: ScriptedUpstream) -> None:
    body = os.urandom(50_000)
    head = (b"PUT /b/k?partNumber=1&uploadId=U HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode())
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    reply = response("200 OK", b"", 'ETag: "e1"')
    upstream.scripts.put([("read", len(head)), ("send", interim), ("read", len(head) + len(body)),
                          ("send", reply), ("eof", None)])
    with client(proxy) as sock:
        sock.sendall(head)
        assert read_exact(sock, len(interim)) == interim  # the body is held back until this
        sock.sendall(body)
        assert read_exact(sock, len(reply)) == reply
    upstream.done.wait(10)
    assert upstream.received == [head + body]


# -- faults -----------------------------------------------------------------------------------------
def parse_status(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "SlowDown")])
def test_error_answers_instead_of_forwarding(proxy: FaultProxy, upstream: ScriptedUpstream, status: int,
                                            code: str) -> None:
    proxy.fail("UploadPart", status, times=1)
    body = b"x" * 1000
    request = (b"PUT /b/k?partNumber=2&uploadId=U HTTP/1.1\r\nHost: x\r\n"
               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    reply = response("200 OK", b"", 'ETag: "e2"')
    upstream.scripts.put([("read", len(request)), ("send", reply), ("eof", None)])
    with client(proxy) as sock:
        sock.sendall(request)
        got = b""
        while b"</Error>" not in got:
            got += sock.recv(65536)
        answered, headers, xml = parse_status(got)
        assert answered == status and headers["content-type"] == "application/xml"
        assert f"<Code>{code}</Code>".encode() in xml and b"<Resource>/b/k</Resource>" in xml
        assert int(headers["content-length"]) == len(xml)
        sock.sendall(request)  # the same connection goes on; the next one is forwarded
        assert read_exact(sock, len(reply)) == reply
    upstream.done.wait(10)
    assert upstream.received == [request]  # S3 never saw the refused one
    state = proxy.state()
    assert state["requests"] == {"UploadPart": 2} and state["faults"] == {"UploadPart": 1}


def test_error_to_a_100_continue_request_does_not_wait_for_the_body(proxy: FaultProxy) -> None:
    proxy.fail("PutObject", 500)
    head = b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n"
    with client(proxy) as sock:
        sock.sendall(head)
        got, was_reset = read_until_closed(sock)
    status, headers, _ = parse_status(got)
    assert (status, headers["connection"], was_reset) == (500, "close", False)


def test_reset_in_the_middle_of_a_request_body(proxy: FaultProxy, upstream: ScriptedUpstream) -> None:
    proxy.reset("UploadPart", after_bytes=10_000, times=1)
    body = os.urandom(100_000)
    head = (b"PUT /b/k?partNumber=1&uploadId=U HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode())
    upstream.scripts.put([("eof", None)])
    with client(proxy) as sock:
        try:
            sock.sendall(head + body)
        except OSError:
            reset_seen = True  # the reset came while we were still sending
        else:
            got, reset_seen = read_until_closed(sock)
            assert got == b""
    assert reset_seen
    upstream.done.wait(10)
    assert upstream.received == [head + body[:10_000]]  # S3 saw a body cut short, then the reset
    assert upstream.errors and "ConnectionResetError" in upstream.errors[0]


def test_reset_in_the_middle_of_a_response_body(proxy: FaultProxy, upstream: ScriptedUpstream) -> None:
    proxy.reset("GetObjectRange", after_bytes=1000, where="response")
    request = b"GET /b/k HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99999\r\n\r\n"
    reply = response("206 Partial Content", os.urandom(100_000))
    upstream.scripts.put([("read", len(request)), ("send", reply), ("eof", None)])
    with client(proxy) as sock:
        sock.sendall(request)
        got, was_reset = read_until_closed(sock)
    head_len = reply.index(b"\r\n\r\n") + 4
    assert was_reset
    assert got == reply[:head_len + 1000]


# -- boto3 against the moto server, through the proxy ------------------------------------------------
def test_boto3_through_the_proxy(moto_s3: MotoS3, tmp_path: Path) -> None:
    fp = FaultProxy.launch(moto_s3.endpoint, tmp_path / "proxy.log")
    try:
        bucket = moto_s3.create_bucket()
        via = dataclasses.replace(moto_s3, endpoint=fp.endpoint).client()  # two attempts per request
        data = os.urandom(6 * 1024 * 1024)
        via.put_object(Bucket=bucket, Key="whole", Body=data)
        assert via.get_object(Bucket=bucket, Key="whole")["Body"].read() == data
        assert via.get_object(Bucket=bucket, Key="whole", Range="bytes=7-1000006")["Body"].read() == \
            data[7:1000007]

        upload_id = via.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
        fp.fail("UploadPart", 503, times=1)  # a transient fault: botocore retries it
        fp.reset("UploadPart", after_bytes=1024 * 1024, times=1)
        parts = [{"PartNumber": n, "ETag": via.upload_part(Bucket=bucket, Key="multi", UploadId=upload_id,
                                                           PartNumber=n, Body=data)["ETag"]}
                 for n in (1, 2)]
        assert fp.faults("UploadPart") == 2 and fp.requests("UploadPart") == 4
        fp.fail("CompleteMultipartUpload", 500)
        with pytest.raises(ClientError) as failed:
            via.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload_id,
                                          MultipartUpload={"Parts": parts})
        assert failed.value.response["Error"]["Code"] == "InternalError"
        assert fp.requests("CompleteMultipartUpload") == 3  # the first try and two retries
        fp.clear()
        via.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload_id,
                                      MultipartUpload={"Parts": parts})
        assert moto_s3.client().get_object(Bucket=bucket, Key="multi")["Body"].read() == data + data
    finally:
        fp.stop()
