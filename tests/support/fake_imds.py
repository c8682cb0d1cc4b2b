"""A small fake EC2 instance metadata service (IMDSv2 only) and ECS-style container credential endpoint
on loopback, for the credential tests (botocore honours ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` and
``AWS_CONTAINER_CREDENTIALS_FULL_URI``).

IMDSv2: ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` hands out a session
token; every ``GET`` under ``/latest/`` must carry it (``X-aws-ec2-metadata-token``), else ``401``, as
on an instance that requires IMDSv2. ``/latest/meta-data/iam/security-credentials/`` names the role,
``.../ROLE`` answers the credentials JSON with the ``Expiration`` EC2 would send. Container:
``GET /container-credentials`` answers the same credentials. ``serve(keys)`` changes what both hand
out (EC2 rotates an instance role's credentials); counters show what was asked.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.moto_iam import Keys

ROLE_PATH = "/latest/meta-data/iam/security-credentials/"


class FakeImds:
    def __init__(self, keys: Keys, *, role: str = "s3dsi-instance-role", token: str = "",
                 lifetime: timedelta = timedelta(hours=6)) -> None:
        self.role = role
        self.lifetime = lifetime
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._keys = keys
        self._session_token = token  # what goes with the keys (IAM user keys have none)
        self._imds_tokens: set[str] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-imds", daemon=True)

    def start(self) -> FakeImds:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def container_uri(self) -> str:
        return f"{self.endpoint}container-credentials"

    def serve(self, keys: Keys, token: str = "") -> None:
        with self._lock:
            self._keys, self._session_token = keys, token

    def _credentials(self) -> dict[str, str]:
        with self._lock:
            keys, token = self._keys, self._session_token
        now = datetime.now(UTC)
        return {"Code": "Success", "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "Type": "AWS-HMAC",
                "AccessKeyId": keys.access_key, "SecretAccessKey": keys.secret_key, "Token": token,
                "Expiration": (now + self.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        imds = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: str, content_type: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                if self.path != "/latest/api/token" or not self.headers.get(
                        "X-aws-ec2-metadata-token-ttl-seconds"):
                    imds.counts["bad-put"] += 1
                    self._answer(400, "Bad Request")
                    return
                token = secrets.token_urlsafe(24)
                with imds._lock:
                    imds._imds_tokens.add(token)
                imds.counts["token"] += 1
                self._answer(200, token)

            def do_GET(self) -> None:
                if self.path == "/container-credentials":
                    imds.counts["container"] += 1
                    self._answer(200, json.dumps(imds._credentials()), "application/json")
                    return
                with imds._lock:
                    known = self.headers.get("X-aws-ec2-metadata-token") in imds._imds_tokens
                if not known:  # IMDSv1, or a made-up token
                    imds.counts["refused"] += 1
                    self._answer(401, "Unauthorized")
                    return
                if self.path == ROLE_PATH:
                    imds.counts["role"] += 1
                    self._answer(200, imds.role)
                elif self.path == ROLE_PATH + imds.role:
                    imds.counts["credentials"] += 1
                    self._answer(200, json.dumps(imds._credentials()), "application/json")
                else:
                    self._answer(404, "Not Found")

        return Handler
