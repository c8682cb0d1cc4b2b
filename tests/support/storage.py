"""Back ends ready for tests: an in-memory one, or an S3Backend on the moto server, each with a fresh bucket.

``StoreUnderTest`` hides the few things a behaviour test must arrange *outside* the Backend protocol
(archiving an object, changing it behind the reader's back) so the same test runs on both back ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.session

from s3dsi.storage.backend import ObjectInfo
from s3dsi.storage.memory import MemoryBackend
from s3dsi.storage.s3 import S3Backend, S3BackendFactory
from s3dsi.storage.s3clients import S3Config
from tests.support.moto_server import MotoS3

MiB = 1024 * 1024


class RequestLog:
    """Counts S3 operations a botocore session sends (``before-send`` sees retries as separate sends)."""

    def __init__(self, session: botocore.session.Session) -> None:
        self.operations: list[str] = []
        self.headers: list[tuple[str, dict[str, str]]] = []
        self.bodies: list[tuple[str, bytes]] = []  # small in-memory bodies only (XML requests)
        session.register("before-send.s3", self._record)

    def _record(self, **kwargs: Any) -> None:
        request = kwargs["request"]
        name = str(request.context.get("operation_name") or kwargs.get("event_name", "").split(".")[-1])
        self.operations.append(name)
        self.headers.append((name, {k: v if isinstance(v, str) else v.decode()
                                    for k, v in request.headers.items()}))
        if isinstance(request.body, bytes):
            self.bodies.append((name, request.body))

    def count(self, operation: str) -> int:
        return self.operations.count(operation)

    def clear(self) -> None:
        self.operations.clear()
        self.headers.clear()
        self.bodies.clear()


def moto_config(moto: MotoS3, **overrides: Any) -> S3Config:
    base: dict[str, Any] = {"endpoint_url": moto.endpoint, "region": moto.region, "addressing_style": "path",
                            "max_attempts": 2, "connect_timeout": 5.0, "read_timeout": 30.0}
    return S3Config(**{**base, **overrides})


def moto_backend(moto: MotoS3, **overrides: Any) -> tuple[S3Backend, S3BackendFactory, RequestLog]:
    session = botocore.session.Session()
    log = RequestLog(session)
    factory = S3BackendFactory(moto_config(moto, **overrides), session=session)
    return factory.for_credentials(moto.access_key, moto.secret_key), factory, log


@dataclass
class StoreUnderTest:
    kind: str  # "memory" or "s3"
    backend: MemoryBackend | S3Backend
    bucket: str
    archive: Callable[[str], None]
    restore: Callable[[str], None]
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def path(self, *parts: str) -> str:
        return "/".join([f"/{self.bucket}", *parts])

    def put(self, *parts: str, data: bytes = b"data", tags: dict[str, str] | None = None) -> ObjectInfo:
        return self.backend.put_object(self.path(*parts), memoryview(data), tags=tags)

    def read_all(self, path: str) -> bytes:
        info = self.backend.head_object(path)
        buffer = bytearray(info.size)
        assert self.backend.read_range(info, 0, memoryview(buffer)) == info.size
        return bytes(buffer)


def memory_store(**kwargs: Any) -> StoreUnderTest:
    backend = MemoryBackend(**kwargs)
    backend.create_bucket("test-bucket")
    return StoreUnderTest("memory", backend, "test-bucket", backend.archive, backend.restore)


def s3_store(moto: MotoS3, bucket: str, **overrides: Any) -> StoreUnderTest:
    backend, _, _ = moto_backend(moto, **overrides)
    client = moto.client()

    def archive(path: str) -> None:
        key = path.split("/", 2)[2]
        client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                           StorageClass="GLACIER", MetadataDirective="COPY")

    def restore(path: str) -> None:
        client.restore_object(Bucket=bucket, Key=path.split("/", 2)[2], RestoreRequest={"Days": 1})

    return StoreUnderTest("s3", backend, bucket, archive, restore)
