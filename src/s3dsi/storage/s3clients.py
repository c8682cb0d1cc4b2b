"""S3 connection settings, and the process-wide pool of botocore clients and bucket regions.

Creating a botocore client costs ~15 ms and ~0.2 MiB once a session has loaded the S3 model (the
first costs ~250 ms and ~12 MiB), so every client comes from one shared botocore session and is
cached per (credentials, region), bounded, behind a lock.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

import botocore.session
from botocore.config import Config

from s3dsi.config.settings import AddressingStyle, Settings
from s3dsi.storage.s3io import use_fast_timestamps

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

GiB = 1024 ** 3
MiB = 1024 ** 2
RetryMode = Literal["standard", "adaptive", "legacy"]


@dataclass(frozen=True)
class S3Config:
    """How to reach the object store; one per process."""

    endpoint_url: str = "https://s3.amazonaws.com"  # the S3 conf's host_name: default region endpoint
    region: str = "us-east-1"  # where new buckets are created
    addressing_style: AddressingStyle = "auto"
    verify_tls: bool = True
    ca_bundle: str | None = None
    storage_class: str | None = None  # for new objects; None: the store's default (STANDARD)
    max_pool_connections: int = 16  # per client: part workers + namespace threads + slack
    # Send CRC32C with every PutObject/UploadPart (multipart uploads are created with
    # ChecksumAlgorithm=CRC32C): S3 verifies the data. Off for stores that reject checksum headers.
    crc32c_checksums: bool = True
    # SigV4 SHA-256 of every payload costs CPU (0.6 s/GiB here, and as much again in a store that checks
    # it: docs/performance.md). It is off over HTTPS (TLS plus CRC32C protect the data) and towards a
    # loopback endpoint with CRC32C on (no wire to tamper with; CRC32C still catches corruption). Over
    # other plain-HTTP endpoints payloads are signed unless this is set.
    unsigned_payload_over_http: bool = False
    retry_mode: RetryMode = "standard"
    max_attempts: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    multipart_copy_threshold: int = 5 * GiB  # S3's CopyObject limit; lowered in tests
    copy_part_size: int = 512 * MiB
    copy_workers: int = 8
    max_clients: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Config:
        return cls(
            endpoint_url=settings.host_name,
            region=settings.region,
            addressing_style=settings.addressing_style,
            verify_tls=settings.verify_tls,
            ca_bundle=settings.ca_bundle,
            storage_class=settings.storage_class,
            max_pool_connections=max(settings.part_workers, 1) + max(settings.threads, 1) + 4,
            crc32c_checksums="CRC32C" in {c.upper() for c in settings.upload_checksums},
            unsigned_payload_over_http=settings.unsigned_payload_over_http,
            max_attempts=settings.max_attempts,
        )

    @property
    def is_aws(self) -> bool:
        host = (urlsplit(self.endpoint_url).hostname or "").lower()
        return host.endswith((".amazonaws.com", ".amazonaws.com.cn")) or host == "amazonaws.com"

    @property
    def uses_tls(self) -> bool:
        return self.endpoint_url.lower().startswith("https:")

    @property
    def is_loopback(self) -> bool:
        host = (urlsplit(self.endpoint_url).hostname or "").lower()
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def signs_payloads(self) -> bool:
        """Whether SigV4 covers the SHA-256 of request bodies (see ``unsigned_payload_over_http``)."""
        if self.uses_tls or self.unsigned_payload_over_http:
            return False
        return not (self.is_loopback and self.crc32c_checksums)

    def endpoint_for(self, region: str) -> str | None:
        """The endpoint URL for a bucket in ``region``; None lets botocore pick the regional AWS one.

        Only an amazonaws.com host_name has per-region endpoints; any other store answers for all of
        its regions at the configured URL.
        """
        if region == self.region or not self.is_aws:
            return self.endpoint_url
        return None

    def botocore_config(self, region: str) -> Config:
        s3_options: dict[str, Any] = {"addressing_style": self.addressing_style}
        if not self.signs_payloads:
            s3_options["payload_signing_enabled"] = False
        return Config(
            region_name=region,
            signature_version="s3v4",
            s3=s3_options,  # type: ignore[arg-type]
            retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            max_pool_connections=self.max_pool_connections,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            tcp_keepalive=True,
            # every request's parameters are ours, built in code: validating them again costs CPU per
            # request (per small file)
            parameter_validation=False,
            # We send our own CRC32C (C code, releases the GIL) instead of botocore checksumming
            # payloads in Python, and ranged GETs cannot be validated anyway.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="s3dsi",
        )


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def cache_key(self) -> tuple[str, str]:
        """Identifies the credentials without keeping another copy of the secret around."""
        digest = hashlib.sha256(f"{self.secret_access_key}\0{self.session_token or ''}".encode()).hexdigest()
        return self.access_key_id, digest

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in an error text."""
        return tuple(s for s in (self.secret_access_key, self.session_token) if s)


class BucketRegions:
    """Bucket name → region, learnt from HeadBucket; shared by every user of the process."""

    def __init__(self, limit: int = 10_000) -> None:
        self._regions: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, bucket: str) -> str | None:
        with self._lock:
            return self._regions.get(bucket)

    def put(self, bucket: str, region: str) -> None:
        with self._lock:
            self._regions[bucket] = region
            self._regions.move_to_end(bucket)
            while len(self._regions) > self._limit:
                self._regions.popitem(last=False)

    def forget(self, bucket: str) -> None:
        with self._lock:
            self._regions.pop(bucket, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._regions)


class ClientPool:
    """Bounded LRU of botocore S3 clients per (credentials, region), all from one botocore session."""

    def __init__(self, config: S3Config, session: botocore.session.Session | None = None) -> None:
        self.config = config
        self.session = session or botocore.session.Session()
        use_fast_timestamps(self.session)
        self._clients: OrderedDict[tuple[str, str, str], S3Client] = OrderedDict()
        self._lock = threading.Lock()
        self.created = 0  # for tests and metrics

    def client(self, credentials: S3Credentials, region: str) -> S3Client:
        key = (*credentials.cache_key, region)
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None:
                self._clients.move_to_end(key)
                return cached
            # botocore sessions are not safe for concurrent client creation, hence under the lock.
            client = self._create(credentials, region)
            self._clients[key] = client
            self.created += 1
            while len(self._clients) > self.config.max_clients:
                self._clients.popitem(last=False)
            return client

    def _create(self, credentials: S3Credentials, region: str) -> S3Client:
        config = self.config
        verify: bool | str = config.verify_tls
        if config.verify_tls and config.ca_bundle:
            verify = config.ca_bundle
        create: Callable[..., object] = self.session.create_client
        return cast("S3Client", create(
            "s3",
            region_name=region,
            endpoint_url=config.endpoint_for(region),
            verify=verify,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=config.botocore_config(region),
        ))
