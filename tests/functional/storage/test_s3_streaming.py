"""S3Backend.read_range on the wire: direct socket reads, connection reuse, recovery from a body cut short.

moto closes every connection after one reply, so a small keep-alive HTTP server on 127.0.0.1 plays the
object store here (it answers ranged GETs of one object and nothing else).
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from s3dsi.protocol.errors import BackendUnavailable
from s3dsi.storage.backend import ObjectInfo
from s3dsi.storage.s3 import S3Backend, S3BackendFactory
from s3dsi.storage.s3clients import S3Config

DATA = os.urandom(3 * 1024 * 1024 + 17)
ETAG = "0123456789abcdef0123456789abcdef"


class _ObjectServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.truncate_next = 0  # how many of the next replies to cut off halfway


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ObjectServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        first, last = (int(v) for v in self.headers["Range"].removeprefix("bytes=").split("-"))
        if self.headers.get("If-Match", "").strip('"') != ETAG:
            self.send_response(412)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = DATA[first:last + 1]
        self.send_response(206)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Range", f"bytes {first}-{last}/{len(DATA)}")
        self.send_header("ETag", f'"{ETAG}"')
        self.end_headers()
        if self.server.truncate_next:
            self.server.truncate_next -= 1
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def object_server() -> Iterator[_ObjectServer]:
    server = _ObjectServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def make_backend(server: _ObjectServer) -> S3Backend:
    factory = S3BackendFactory(S3Config(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
                                        addressing_style="path", max_attempts=2))
    factory.regions.put("bucket", "us-east-1")  # skip HeadBucket: this server only knows GET
    return factory.for_credentials("AKIATEST", "secret")


INFO = ObjectInfo("/bucket/object", len(DATA), ETAG, datetime(2026, 1, 1, tzinfo=UTC))


def test_ranges_arrive_intact_over_one_reused_connection(object_server: _ObjectServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    direct_reads: list[int] = []
    original = http.client.HTTPResponse.readinto

    def counting_readinto(self: http.client.HTTPResponse, buffer: Any) -> int:
        direct_reads.append(len(buffer))
        return original(self, buffer)

    # urllib3 itself only ever calls read(); readinto on the http.client response is our direct path.
    monkeypatch.setattr(http.client.HTTPResponse, "readinto", counting_readinto)
    backend = make_backend(object_server)
    out = bytearray(len(DATA))
    view = memoryview(out)
    step = 1024 * 1024
    for offset in range(0, len(DATA), step):
        backend.read_range(INFO, offset, view[offset:offset + step])
    assert bytes(out) == DATA
    assert object_server.connections == 1
    assert direct_reads
    assert max(direct_reads) >= 1024 * 1024


def test_a_body_cut_short_is_fetched_again_from_where_it_stopped(object_server: _ObjectServer) -> None:
    backend = make_backend(object_server)
    object_server.truncate_next = 2
    out = bytearray(len(DATA))
    assert backend.read_range(INFO, 0, memoryview(out)) == len(DATA)
    assert bytes(out) == DATA


def test_a_body_that_keeps_breaking_is_backend_unavailable(object_server: _ObjectServer) -> None:
    backend = make_backend(object_server)
    object_server.truncate_next = 10
    with pytest.raises(BackendUnavailable, match="stopped sending"):
        backend.read_range(INFO, 0, memoryview(bytearray(1000)))
