"""Client-side CPU cost per GiB of botocore settings on the S3 data path (a measurement, not a test).

A minimal HTTP/1.1 object server runs in a child process on 127.0.0.1 (it discards uploads and
serves ranged GETs from memory), so what is measured is the client: CPU seconds of this process per
GiB moved, for each way of calling botocore that s3dsi could use. Used to choose the settings in
``s3dsi.storage.s3clients.S3Config`` and the body handling in ``s3dsi.storage.s3io``.

    .venv/bin/python bench/storage_botocore_costs.py [--mib 1024] [--part-mib 64] [--tls]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import multiprocessing
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
import crc32c
import urllib3
from botocore.config import Config

from s3dsi.storage.backend import ObjectInfo
from s3dsi.storage.s3 import S3Backend, S3BackendFactory
from s3dsi.storage.s3clients import S3Config
from s3dsi.storage.s3io import MemoryviewBody, read_body_into

MiB = 1024 * 1024


# ---- the object server (child process) -------------------------------------------------------------
def _serve_connection(conn: socket.socket, payload: bytes) -> None:
    reader = conn.makefile("rb", buffering=1 << 20)
    sink = bytearray(4 << 20)
    view = memoryview(sink)
    while True:
        request_line = reader.readline()
        if not request_line:
            return
        headers: dict[str, str] = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        method = request_line.split()[0]
        if headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while (size := int(reader.readline().split(b";")[0], 16)) > 0:
                _discard(reader, view, size + 2)
            while reader.readline() not in (b"\r\n", b""):
                pass
        else:
            _discard(reader, view, int(headers.get("content-length", "0")))
        if method == b"GET":
            first, last = headers["range"].removeprefix("bytes=").split("-")
            start, end = int(first), int(last)
            length = end - start + 1
            conn.sendall(b"HTTP/1.1 206 Partial Content\r\nETag: \"e\"\r\nContent-Length: "
                         + str(length).encode() + b"\r\nContent-Range: bytes "
                         + f"{start}-{end}/{len(payload)}".encode() + b"\r\n\r\n")
            conn.sendall(memoryview(payload)[start:end + 1])
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\n\r\n")


def _discard(reader: Any, view: memoryview, count: int) -> None:
    while count > 0:
        got = reader.readinto(view[:min(count, len(view))])
        if not got:
            return
        count -= got


def _server_main(sock: socket.socket, size: int, cert: str | None) -> None:
    payload = bytes(size)
    context = None
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert)
    while True:
        conn, _ = sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context:
            conn = context.wrap_socket(conn, server_side=True)
        threading.Thread(target=_serve_connection, args=(conn, payload), daemon=True).start()


def _self_signed(directory: Path) -> str:
    pem = directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(pem), "-out", str(pem)], check=True, capture_output=True)
    return str(pem)


# ---- the client scenarios --------------------------------------------------------------------------
def _client(endpoint: str, **config: Any) -> Any:
    s3: Any = {"addressing_style": "path", **config.pop("s3", {})}
    return botocore.session.Session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, verify=False,
        aws_access_key_id="AKIABENCH", aws_secret_access_key="bench",
        config=Config(s3=s3, retries={"total_max_attempts": 1}, **config))


REPEAT = 3  # other work on the machine only ever adds: the best of a few runs is the cost


def _measure(label: str, total: int, run: Callable[[], object]) -> None:
    wall, cpu = float("inf"), float("inf")
    for _ in range(REPEAT):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run()
        wall, cpu = min(wall, time.perf_counter() - wall0), min(cpu, time.process_time() - cpu0)
    gib = total / (1024 * MiB)
    print(f"{label:<62} {cpu / gib:6.2f} CPU s/GiB  {total / MiB / wall:7.0f} MiB/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024, help="data moved per scenario")
    parser.add_argument("--part-mib", type=int, default=64)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # self-signed loopback cert
    part = args.part_mib * MiB
    count = max(1, args.mib * MiB // part)
    total = count * part

    tmp = tempfile.TemporaryDirectory()
    cert = _self_signed(Path(tmp.name)) if args.tls else None
    listener = socket.create_server(("127.0.0.1", 0))
    server = multiprocessing.get_context("fork").Process(
        target=_server_main, args=(listener, part, cert), daemon=True)
    server.start()
    endpoint = f"{'https' if cert else 'http'}://127.0.0.1:{listener.getsockname()[1]}"
    scheme = endpoint.split(":", maxsplit=1)[0]
    print(f"{count} x {args.part_mib} MiB over {scheme}, python {sys.version.split()[0]}")

    buffer = bytearray(b"\x5a" * part)
    view = memoryview(buffer)
    crc_b64 = base64.b64encode(crc32c.crc32c(buffer).to_bytes(4, "big")).decode()

    _measure("crc32c (crc32c package) alone", total,
             lambda: [crc32c.crc32c(view) for _ in range(count)])
    _measure("sha256 (hashlib) alone", total, lambda: [hashlib.sha256(view) for _ in range(count)])

    def put(client: Any, body: Callable[[], Any], **extra: Any) -> Callable[[], None]:
        def run() -> None:
            for _ in range(count):
                client.put_object(Bucket="b", Key="k", Body=body(), **extra)
        return run

    default = _client(endpoint)
    lean = _client(endpoint, request_checksum_calculation="when_required",
                   response_checksum_validation="when_required")
    unsigned = _client(endpoint, request_checksum_calculation="when_required",
                       response_checksum_validation="when_required", s3={"payload_signing_enabled": False})
    as_bytes = bytes(buffer)
    _measure("PUT botocore defaults, bytes body", total, put(default, lambda: as_bytes))
    _measure("PUT when_required + own CRC32C header, bytes body", total,
             put(lean, lambda: as_bytes, ChecksumCRC32C=crc_b64))
    _measure("PUT when_required + own CRC32C, bytearray body", total,
             put(lean, lambda: buffer, ChecksumCRC32C=crc_b64))
    _measure("PUT when_required + own CRC32C, MemoryviewBody", total,
             put(lean, lambda: MemoryviewBody(view), ChecksumCRC32C=crc_b64))
    _measure("PUT as above + payload_signing_enabled=False, MemoryviewBody", total,
             put(unsigned, lambda: MemoryviewBody(view), ChecksumCRC32C=crc_b64))
    _measure("PUT as above + payload_signing_enabled=False, bytearray", total,
             put(unsigned, lambda: buffer, ChecksumCRC32C=crc_b64))

    def get(mode: str) -> Callable[[], None]:
        def run() -> None:
            for _ in range(count):
                reply = lean.get_object(Bucket="b", Key="k", Range=f"bytes=0-{part - 1}", IfMatch='"e"')
                body = reply["Body"]
                if mode == "read":
                    view[:] = body.read()
                elif mode == "readinto":
                    got = 0
                    while got < part:
                        got += body.readinto(view[got:])
                else:
                    read_body_into(body, view)
        return run

    _measure("GET body.read() then copy into the part buffer", total, get("read"))
    _measure("GET StreamingBody.readinto loop", total, get("readinto"))
    _measure("GET s3io.read_body_into (socket readinto, no copy)", total, get("raw"))

    info = ObjectInfo("/b/k", part, "e", datetime.now(UTC))
    for unsigned in (False, True):
        factory = S3BackendFactory(S3Config(endpoint_url=endpoint, addressing_style="path", verify_tls=False,
                                            max_attempts=1, unsigned_payload_over_http=unsigned))
        factory.regions.put("b", "us-east-1")
        backend = factory.for_credentials("AKIABENCH", "bench")
        backend.read_range(info, 0, view[:1])  # client creation and TLS handshake are not data path
        label = "unsigned_payload_over_http" if unsigned else "default S3Config"

        def upload(b: S3Backend = backend) -> None:
            for _ in range(count):
                b.upload_part("/b/k", "u", 1, view)

        def download(b: S3Backend = backend) -> None:
            for _ in range(count):
                b.read_range(info, 0, view)

        _measure(f"S3Backend.upload_part, CRC32C computed, {label}", total, upload)
        _measure(f"S3Backend.read_range, {label}", total, download)
    server.kill()
    tmp.cleanup()


if __name__ == "__main__":
    main()
