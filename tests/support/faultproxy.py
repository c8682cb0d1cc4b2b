"""An HTTP fault layer between the daemon and the S3 server: a reverse proxy in its own process.

The proxy listens on a free 127.0.0.1 port and forwards every request to the upstream S3 server (the
moto server process) byte for byte: request and response heads as received, Content-Length, chunked
and until-close bodies streamed as they come, ``Expect: 100-continue`` relayed (botocore sends it with
every PutObject and UploadPart), keep-alive connections kept. The daemon under test uses it as its
``host_name``.

A test changes its behaviour at run time through a small JSON control API on a second port (the
``FaultProxy`` class below wraps it). A rule names an S3 operation (``UploadPart``,
``CompleteMultipartUpload``, ``AbortMultipartUpload``, ``GetObjectRange``, ... see ``classify``),
optionally an object key, and an action:

* ``error``: answer ``status`` (500, 503, ...) with an S3 XML error body instead of forwarding the
  request, so S3 never sees it;
* ``reset``: forward the request, then reset both TCP connections after ``after_bytes`` bytes of the
  request body (``where="request"``) or of the response body (``where="response"``);
* ``delay``: forward the request, then hold S3's answer for ``seconds`` before relaying it (S3 has
  acted on the request; the client has not heard of it yet).

A rule's ``key`` names one object key exactly; ``key_prefix`` every key that starts with it.

A rule lets ``skip`` matching requests through first, then acts on the next ``times`` of them (None:
on every one, a persistent fault); with ``header`` it matches only requests that carry that header (a
store that refuses a header it does not implement). Every request is counted per operation, and every
fault applied; for each operation the proxy also counts the requests carrying each of a few headers
(``WATCHED_HEADERS``: Requester Pays, conditional writes, checksums, ACL, encryption...) and the access
key ids requests were signed with (from ``Authorization``), so tests can see what went over the wire.
STS requests (``POST /``) count as ``STS``.

Run as a script (only the standard library is used): ``python faultproxy.py --upstream URL``; it
prints one JSON line ``{"proxy": PORT, "control": PORT}`` once both ports listen, and runs until
SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

HEAD_LIMIT = 64 * 1024
RECV_SIZE = 256 * 1024
EXPECT_WAIT = 5.0
DRAIN_WAIT = 2.0  # how long a 100-continue request may wait for the upstream's interim answer
REASONS = {500: "Internal Server Error", 503: "Service Unavailable", 403: "Forbidden", 400: "Bad Request",
           501: "Not Implemented"}
WATCHED_HEADERS = ("x-amz-request-payer", "if-none-match", "if-match", "x-amz-acl",
                   "x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
                   "x-amz-storage-class", "x-amz-checksum-type", "x-amz-checksum-crc32c",
                   "x-amz-checksum-algorithm", "x-amz-sdk-checksum-algorithm", "x-amz-checksum-mode",
                   "x-amz-security-token")
ERROR_CODES = {500: ("InternalError", "We encountered an internal error. Please try again."),
               503: ("SlowDown", "Please reduce your request rate."),
               403: ("AccessDenied", "Access Denied"),
               400: ("InvalidRequest", "Invalid Request"),
               501: ("NotImplemented", "A header you provided implies functionality that is not implemented")}


# -- what a request is ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestHead:
    raw: bytes  # the head exactly as received, blank line included
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    @property
    def bucket_and_key(self) -> tuple[str, str]:
        """Path-style addressing: ``/bucket/key``."""
        path = unquote(urlsplit(self.target).path)
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key


def parse_head(raw: bytes) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    """(first-line words, headers) of an HTTP request or response head."""
    lines = raw.decode("latin-1").split("\r\n")
    words = lines[0].split(" ", 2)
    if len(words) < 3:
        words += [""] * (3 - len(words))
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return words[0], words[1], words[2], tuple(headers)


def classify(method: str, target: str, headers: Mapping[str, str]) -> str:
    """The S3 operation of a path-style request (``headers`` with lower-case names)."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    path = parts.path.lstrip("/")
    bucket, _, key = path.partition("/")
    copy = "x-amz-copy-source" in headers
    if not bucket:
        return "ListBuckets" if method == "GET" else "STS"
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if "tagging" in query:
            return "PutObjectTagging" if key else "PutBucketTagging"
        if not key:
            return "PutBucketVersioning" if "versioning" in query else "CreateBucket"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "delete" in query:
            return "DeleteObjects"
        return "Post"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        if "tagging" in query:
            return "DeleteObjectTagging"
        return "DeleteObject" if key else "DeleteBucket"
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if method == "GET":
        if not key:
            if "uploads" in query:
                return "ListMultipartUploads"
            if "versions" in query:
                return "ListObjectVersions"
            if "location" in query:
                return "GetBucketLocation"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        if "uploadId" in query:
            return "ListParts"
        if "tagging" in query:
            return "GetObjectTagging"
        return "GetObjectRange" if "range" in headers else "GetObject"
    return method


# -- rules ------------------------------------------------------------------------------------------
@dataclass
class Rule:
    op: str
    action: str = "error"  # "error" | "reset"
    status: int = 500
    code: str | None = None
    message: str | None = None
    key: str | None = None  # only requests for this object key
    key_prefix: str | None = None  # only requests for keys starting with this
    skip: int = 0  # matching requests passed through before the rule acts
    times: int | None = None  # None: every matching request after ``skip``
    after_bytes: int = 0  # reset: body bytes forwarded first
    where: str = "request"  # reset: "request" (body sent to S3) or "response" (body sent back)
    seconds: float = 0.0  # delay: how long S3's answer is held
    header: str | None = None  # only requests carrying this header (any value)
    id: int = 0
    applied: int = 0

    def validate(self) -> None:
        if self.action not in ("error", "reset", "delay"):
            raise ValueError(f"unknown action {self.action!r}")
        if self.where not in ("request", "response"):
            raise ValueError(f"unknown where {self.where!r}")
        if self.action == "error" and not 100 <= self.status <= 599:
            raise ValueError(f"bad status {self.status}")


class RuleBook:
    """The rules and the counters, shared by the proxy threads and the control API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._next_id = 1
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.headers: dict[str, Counter[str]] = {}  # operation -> watched header -> requests carrying it
        self.signers: dict[str, Counter[str]] = {}  # operation -> access key id -> requests

    def add(self, rule: Rule) -> Rule:
        rule.validate()
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def clear(self, counts: bool = False) -> None:
        with self._lock:
            self._rules.clear()
            if counts:
                self.requests.clear()
                self.faults.clear()
                self.headers.clear()
                self.signers.clear()

    def match(self, op: str, key: str, headers: Mapping[str, str] | None = None) -> Rule | None:
        """Count the request; the rule that acts on it, if any (its budget is taken at once).
        ``headers``: the request's, with lower-case names."""
        headers = headers or {}
        with self._lock:
            self.requests[op] += 1
            seen = self.headers.setdefault(op, Counter())
            for name in WATCHED_HEADERS:
                if name in headers:
                    seen[name] += 1
            signer = headers.get("authorization", "").partition("Credential=")[2].partition("/")[0]
            if signer:
                self.signers.setdefault(op, Counter())[signer] += 1
            for rule in self._rules:
                if rule.op != op or (rule.key is not None and rule.key != key):
                    continue
                if rule.key_prefix is not None and not key.startswith(rule.key_prefix):
                    continue
                if rule.header is not None and rule.header.lower() not in headers:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if rule.times is not None:
                    if rule.times <= 0:
                        continue
                    rule.times -= 1
                rule.applied += 1
                self.faults[op] += 1
                return rule
        return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "faults": dict(self.faults),
                    "headers": {op: dict(c) for op, c in self.headers.items()},
                    "signers": {op: dict(c) for op, c in self.signers.items()},
                    "rules": [asdict(r) for r in self._rules]}


# -- byte pumping -----------------------------------------------------------------------------------
class Out(Protocol):
    """Where body bytes go: a socket, or a sink that drops them."""

    def sendall(self, data: bytes, /) -> None: ...


class ConnectionGone(Exception):
    """The peer closed or reset its end."""


class Reader:
    """Buffered reads from a socket that still allow asking whether bytes are waiting."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(RECV_SIZE)
        except OSError:
            return False
        if not data:
            return False
        self.buf += data
        return True

    def pending(self) -> bool:
        return bool(self.buf)

    def read_head(self, *, eof_ok: bool = False) -> bytes | None:
        """Bytes up to and including the blank line; None at a clean EOF between messages."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[:end + 4])
                del self.buf[:end + 4]
                return head
            if len(self.buf) > HEAD_LIMIT:
                raise ConnectionGone("head too long")
            if not self._fill():
                if eof_ok and not self.buf:
                    return None
                raise ConnectionGone("closed inside a head")

    def read_line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end + 2])
                del self.buf[:end + 2]
                return line
            if not self._fill():
                raise ConnectionGone("closed inside a chunk header")

    def read_some(self, limit: int) -> bytes:
        if not self.buf and not self._fill():
            raise ConnectionGone("closed inside a body")
        data = bytes(self.buf[:limit])
        del self.buf[:limit]
        return data

    def read_to_eof(self) -> Iterator[bytes]:
        while True:
            if self.buf:
                data = bytes(self.buf)
                self.buf.clear()
                yield data
            if not self._fill():
                return


class Budget:
    """How many more body bytes may pass before a reset (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def take(self, data: bytes) -> tuple[bytes, bool]:
        """The part of ``data`` that may pass, and whether the limit is reached."""
        if self.left is None:
            return data, False
        if len(data) >= self.left:
            out, self.left = data[:self.left], 0
            return out, True
        self.left -= len(data)
        return data, False


class LimitReached(Exception):
    """The reset budget is spent: the caller resets the connections."""


def _send(sock: Out, data: bytes) -> None:
    if not data:
        return
    try:
        sock.sendall(data)
    except OSError as err:
        raise ConnectionGone(str(err)) from err


def _pass(budget: Budget, data: bytes, dst: Out) -> None:
    allowed, spent = budget.take(data)
    _send(dst, allowed)
    if spent:
        raise LimitReached


def pump_fixed(src: Reader, dst: Out, length: int, budget: Budget) -> None:
    left = length
    while left > 0:
        data = src.read_some(min(left, RECV_SIZE))
        left -= len(data)
        _pass(budget, data, dst)


def pump_chunked(src: Reader, dst: Out, budget: Budget) -> None:
    """Forward a chunked body as it is framed (sizes, extensions and trailers untouched)."""
    while True:
        line = src.read_line()
        _pass(budget, line, dst)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, then the blank line
                trailer = src.read_line()
                _pass(budget, trailer, dst)
                if trailer == b"\r\n":
                    return
        pump_fixed(src, dst, size + 2, budget)  # data and its CRLF


def pump_to_eof(src: Reader, dst: Out, budget: Budget) -> None:
    for data in src.read_to_eof():
        _pass(budget, data, dst)


def body_framing(headers: Mapping[str, str]) -> tuple[str, int]:
    """("chunked", 0), ("length", N) or ("none", 0) for a request or response."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return "chunked", 0
    if "content-length" in headers:
        return "length", int(headers["content-length"])
    return "none", 0


def pump_body(src: Reader, dst: Out, headers: Mapping[str, str], budget: Budget,
              *, until_eof: bool) -> None:
    kind, length = body_framing(headers)
    if kind == "chunked":
        pump_chunked(src, dst, budget)
    elif kind == "length":
        pump_fixed(src, dst, length, budget)
    elif until_eof:
        pump_to_eof(src, dst, budget)


def reset(sock: socket.socket | None) -> None:
    """Close with RST instead of FIN."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def error_response(rule: Rule, head: RequestHead, *, close: bool) -> bytes:
    code, message = ERROR_CODES.get(rule.status, ("InternalError", "Injected fault"))
    code, message = rule.code or code, rule.message or message
    bucket, key = head.bucket_and_key
    request_id = uuid.uuid4().hex[:16].upper()
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}'
            f"</Message><Resource>/{bucket}/{key}</Resource><RequestId>{request_id}</RequestId>"
            "</Error>").encode()
    lines = [f"HTTP/1.1 {rule.status} {REASONS.get(rule.status, 'Error')}",
             "Content-Type: application/xml", f"Content-Length: {len(body)}",
             f"x-amz-request-id: {request_id}", f"Date: {formatdate(usegmt=True)}",
             "Server: faultproxy", f"Connection: {'close' if close else 'keep-alive'}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head.method == "HEAD" else body)


# -- one client connection --------------------------------------------------------------------------
class ProxyConnection:
    """Serves the requests of one client connection in order, over one upstream connection."""

    def __init__(self, client: socket.socket, upstream: tuple[str, int], rules: RuleBook,
                 log: IO[str]) -> None:
        self.client = client
        self.reader = Reader(client)
        self.upstream_address = upstream
        self.rules = rules
        self.log = log
        self.upstream: socket.socket | None = None
        self.up_reader: Reader | None = None

    def run(self) -> None:
        try:
            while self.one_request():
                pass
        except (ConnectionGone, LimitReached, OSError, ValueError):
            pass
        finally:
            self.close_upstream()
            with contextlib.suppress(OSError):
                self.client.close()

    def note(self, text: str) -> None:
        with contextlib.suppress(Exception):
            self.log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            self.log.flush()

    def connect_upstream(self) -> tuple[socket.socket, Reader]:
        if self.upstream is not None and self.up_reader is not None:
            # a pooled connection the server closed meanwhile reads as EOF: open a new one
            readable, _, _ = select.select([self.upstream], [], [], 0)
            if not readable:
                return self.upstream, self.up_reader
            self.close_upstream()
        sock = socket.create_connection(self.upstream_address, timeout=None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream, self.up_reader = sock, Reader(sock)
        return sock, self.up_reader

    def close_upstream(self) -> None:
        if self.upstream is not None:
            with contextlib.suppress(OSError):
                self.upstream.close()
        self.upstream = self.up_reader = None

    def one_request(self) -> bool:
        """Serve one request; False when the client connection is to be closed."""
        raw = self.reader.read_head(eof_ok=True)
        if raw is None:
            return False
        method, target, version, headers = parse_head(raw)
        head = RequestHead(raw, method, target, version, headers)
        lowered = {k.lower(): v for k, v in headers}
        op = classify(method, target, lowered)
        _, key = head.bucket_and_key
        rule = self.rules.match(op, key, lowered)
        self.note(f"{method} {target} {op}" + (f" -> {rule.action} #{rule.id}" if rule else ""))
        keep = version == "HTTP/1.1" and "close" not in lowered.get("connection", "").lower()
        if rule is not None and rule.action == "error":
            return self.answer_error(rule, head, lowered, keep)
        resetting = rule is not None and rule.action == "reset"
        request_budget = Budget(rule.after_bytes if resetting and rule.where == "request" else None)
        response_budget = Budget(rule.after_bytes if resetting and rule.where == "response" else None)
        upstream, up_reader = self.connect_upstream()
        try:
            _send(upstream, raw)
            answered_early = False
            if "100-continue" in lowered.get("expect", "").lower():
                answered_early = self.await_continue(upstream, up_reader, method)
            if not answered_early:
                pump_body(self.reader, upstream, lowered, request_budget, until_eof=False)
                if request_budget.left == 0:
                    raise LimitReached
                if rule is not None and rule.action == "delay":
                    time.sleep(rule.seconds)
                keep = self.relay_response(up_reader, method, response_budget) and keep
            else:
                keep = False  # the client may or may not send the body now: start afresh
        except LimitReached:
            self.note(f"reset {op}")
            reset(self.upstream)
            self.upstream = self.up_reader = None
            reset(self.client)
            return False
        if not keep:
            self.close_upstream()
        return keep

    def answer_error(self, rule: Rule, head: RequestHead, headers: Mapping[str, str], keep: bool) -> bool:
        expecting = "100-continue" in headers.get("expect", "").lower()
        if not expecting:  # the body is on its way: read it so the connection stays usable
            pump_body(self.reader, _Sink(), headers, Budget(None), until_eof=False)
        close = expecting or not keep
        _send(self.client, error_response(rule, head, close=close))
        if close:
            self.drain_client()
            return False
        return True

    def drain_client(self) -> None:
        """Half-close, then read what the client still sends: closing with unread bytes would send a
        RST that can destroy the error answer before the client has read it."""
        with contextlib.suppress(OSError):
            self.client.shutdown(socket.SHUT_WR)
            self.client.settimeout(DRAIN_WAIT)
            while self.client.recv(RECV_SIZE):
                pass

    def await_continue(self, upstream: socket.socket, up_reader: Reader, method: str) -> bool:
        """Between a 100-continue head and its body: relay the upstream's ``100 Continue``, or its
        final answer (True: answered without the body). The client may also stop waiting and send
        the body anyway."""
        deadline = time.monotonic() + EXPECT_WAIT
        while time.monotonic() < deadline:
            if self.reader.pending():
                return False
            readable, _, _ = select.select([self.client, upstream], [], [], deadline - time.monotonic())
            if upstream in readable:
                raw = up_reader.read_head()
                assert raw is not None
                _, status, _, headers = parse_head(raw)
                if status.startswith("1"):
                    _send(self.client, raw)
                    return False
                lowered = {k.lower(): v for k, v in headers}
                _send(self.client, raw)
                if method != "HEAD":
                    pump_body(up_reader, self.client, lowered, Budget(None), until_eof=True)
                return True
            if self.client in readable:
                return False
        return False

    def relay_response(self, up_reader: Reader, method: str, budget: Budget) -> bool:
        """Forward the response (interim ones first); False if the connection must close after it."""
        while True:
            raw = up_reader.read_head()
            assert raw is not None
            version, status, _, headers = parse_head(raw)
            _send(self.client, raw)
            if status.startswith("1"):
                continue
            lowered = {k.lower(): v for k, v in headers}
            no_body = method == "HEAD" or status in ("204", "304")
            if not no_body:
                kind, _ = body_framing(lowered)
                pump_body(up_reader, self.client, lowered, budget, until_eof=True)
                if kind == "none":
                    return False
            return version == "HTTP/1.1" and "close" not in lowered.get("connection", "").lower()


class _Sink:
    """An ``Out`` that drops what it is sent."""

    def sendall(self, data: bytes, /) -> None:
        pass


# -- the servers ------------------------------------------------------------------------------------
class ProxyServer:
    def __init__(self, upstream: tuple[str, int], rules: RuleBook, log: IO[str],
                 host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.rules = rules
        self.log = log
        self.listener = socket.create_server((host, 0), backlog=128)
        self.port = int(self.listener.getsockname()[1])

    def serve_forever(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = ProxyConnection(client, self.upstream, self.rules, self.log)
            threading.Thread(target=conn.run, name="proxy-conn", daemon=True).start()


def control_handler(rules: RuleBook) -> type[BaseHTTPRequestHandler]:
    class Control(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self) -> None:
            if self.path == "/state":
                self._json(200, rules.snapshot())
            else:
                self._json(404, {"error": "unknown path"})

        def do_POST(self) -> None:
            if self.path == "/rules":
                try:
                    rule = rules.add(Rule(**self._body()))
                except (TypeError, ValueError) as err:
                    self._json(400, {"error": str(err)})
                    return
                self._json(200, {"id": rule.id})
            elif self.path == "/clear":
                rules.clear(counts=bool(self._body().get("counts")))
                self._json(200, {})
            else:
                self._json(404, {"error": "unknown path"})

    return Control


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT of the S3 server")
    parser.add_argument("--listen", default="127.0.0.1")
    args = parser.parse_args(argv)
    parts = urlsplit(args.upstream)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        parser.error("--upstream must be http://HOST:PORT")
    rules = RuleBook()
    proxy = ProxyServer((parts.hostname, parts.port), rules, sys.stderr, host=args.listen)
    control = ThreadingHTTPServer((args.listen, 0), control_handler(rules))
    control.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, name="proxy", daemon=True).start()
    threading.Thread(target=control.serve_forever, name="control", daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps({"proxy": proxy.port, "control": control.server_address[1]}), flush=True)
    stop.wait()
    return 0


# -- the test side ----------------------------------------------------------------------------------
@dataclass
class FaultProxy:
    """The proxy process as a test drives it (started with ``launch``, stopped by PID with ``stop``)."""

    process: subprocess.Popen[str]
    port: int
    control_port: int
    log_path: Path
    host: str = "127.0.0.1"
    _opened: list[IO[str]] = field(default_factory=list, repr=False)

    @classmethod
    def launch(cls, upstream: str, log_path: Path, timeout: float = 20.0) -> FaultProxy:
        log = log_path.open("w")
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--upstream", upstream],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        result: dict[str, str] = {}

        def first_line() -> None:
            assert process.stdout is not None
            result["line"] = process.stdout.readline()

        reader = threading.Thread(target=first_line, daemon=True)
        reader.start()
        reader.join(timeout)
        try:
            ports = json.loads(result.get("line", ""))
        except ValueError:
            process.kill()
            process.wait(10)
            log.close()
            text = log_path.read_text(errors="replace")
            raise RuntimeError(f"fault proxy did not start:\n{text}") from None
        return cls(process, int(ports["proxy"]), int(ports["control"]), log_path, _opened=[log])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _call(self, method: str, path: str, payload: object | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"http://{self.host}:{self.control_port}{path}", data=data,
                                         method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def fail(self, op: str, status: int = 500, *, times: int | None = None, skip: int = 0,
             key: str | None = None, code: str | None = None, message: str | None = None,
             header: str | None = None, key_prefix: str | None = None) -> int:
        """Answer ``status`` to ``op`` (every time, or the next ``times`` after ``skip``); with ``header``
        only to requests carrying that header."""
        rule = {"op": op, "action": "error", "status": status, "times": times, "skip": skip, "key": key,
                "code": code, "message": message, "header": header, "key_prefix": key_prefix}
        return int(self._call("POST", "/rules", rule)["id"])

    def delay(self, op: str, seconds: float, *, times: int | None = None, skip: int = 0,
              key: str | None = None, key_prefix: str | None = None) -> int:
        """Let ``op`` reach S3, then hold its answer for ``seconds``."""
        rule = {"op": op, "action": "delay", "seconds": seconds, "times": times, "skip": skip, "key": key,
                "key_prefix": key_prefix}
        return int(self._call("POST", "/rules", rule)["id"])

    def reset(self, op: str, *, after_bytes: int, where: str = "request", times: int | None = None,
              skip: int = 0, key: str | None = None) -> int:
        """Reset the connections of ``op`` after ``after_bytes`` bytes of its request/response body."""
        rule = {"op": op, "action": "reset", "after_bytes": after_bytes, "where": where, "times": times,
                "skip": skip, "key": key}
        return int(self._call("POST", "/rules", rule)["id"])

    def clear(self, *, counts: bool = False) -> None:
        """Remove every rule (and zero the counters when ``counts``)."""
        self._call("POST", "/clear", {"counts": counts})

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "/state"))

    def requests(self, op: str) -> int:
        return int(self.state()["requests"].get(op, 0))

    def faults(self, op: str) -> int:
        return int(self.state()["faults"].get(op, 0))

    def headers(self, op: str) -> dict[str, int]:
        """Watched header -> how many ``op`` requests carried it."""
        return dict(self.state()["headers"].get(op, {}))

    def signers(self, op: str | None = None) -> dict[str, int]:
        """Access key id -> requests signed with it (of ``op``, or of every operation)."""
        state = self.state()["signers"]
        total: Counter[str] = Counter()
        for name, counts in state.items():
            if op is None or name == op:
                total.update(counts)
        return dict(total)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for log in self._opened:
            log.close()


if __name__ == "__main__":
    sys.exit(main())
