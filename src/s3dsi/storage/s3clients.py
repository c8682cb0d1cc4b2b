"""S3 connection settings, and the process-wide pool of botocore clients and bucket regions.

Creating a botocore client costs ~15 ms and ~0.2 MiB once a session has loaded the S3 model (the
first costs ~250 ms and ~12 MiB), so every client comes from one shared botocore session and is
cached per (credentials, region), bounded, behind a lock.

Static keys are given to botocore as such. Credentials that refresh themselves (an assumed role,
botocore's chain: ``s3credentials``) are a botocore ``RefreshableCredentials`` object, which the client's
request signer consults before every request, so a transfer outlives any one set of temporary keys.
botocore's ``create_client`` takes only static keys; the object is put where botocore keeps a client's
credentials (``_request_signer._credentials``, which botocore's own ``_get_credentials`` reads).
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from urllib.parse import urlsplit

import botocore.credentials
import botocore.session
from botocore.config import Config

from s3dsi.config.settings import AddressingStyle, Settings
from s3dsi.storage.s3io import send_small_bodies_at_once, use_fast_timestamps

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
    # -- credentials and policy (see s3credentials, s3options) --
    sts_endpoint: str | None = None  # None: botocore's STS endpoint (AWS), for role_arn
    credential_refresh: int = 300  # seconds between look-ups of botocore's chain (source=default)
    full_object_checksums: bool = True  # multipart uploads with ChecksumType=FULL_OBJECT
    conditional_writes: bool = True  # commits with If-None-Match/If-Match (else a check just before)

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
            # an S3-compatible store usually answers STS itself (MinIO, Ceph RGW)
            sts_endpoint=settings.sts_endpoint or (None if _is_aws(settings.host_name)
                                                   else settings.host_name),
            credential_refresh=settings.credential_refresh,
            full_object_checksums=settings.full_object_checksums,
            conditional_writes=settings.conditional_writes,
        )

    @property
    def is_aws(self) -> bool:
        return _is_aws(self.endpoint_url)

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


def _is_aws(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn")) or host == "amazonaws.com"


class ClientCredentials(Protocol):
    """What the client pool needs of a user's credentials."""

    @property
    def access_key_id(self) -> str: ...  # for display only: the current one

    @property
    def cache_key(self) -> tuple[str, str]: ...  # one client set per key (never holds a secret)

    @property
    def secrets(self) -> tuple[str, ...]: ...  # strings that must never appear in an error text

    def refreshing(self) -> botocore.credentials.Credentials | None:
        """A botocore credentials object that refreshes itself, or None for the static keys above."""
        ...


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def refreshing(self) -> botocore.credentials.Credentials | None:
        return None

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
        send_small_bodies_at_once(self.session)
        self._clients: OrderedDict[tuple[str, str, str], S3Client] = OrderedDict()
        self._lock = threading.Lock()
        self.created = 0  # for tests and metrics

    def client(self, credentials: ClientCredentials, region: str) -> S3Client:
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

    def _create(self, credentials: ClientCredentials, region: str) -> S3Client:
        config = self.config
        verify: bool | str = config.verify_tls
        if config.verify_tls and config.ca_bundle:
            verify = config.ca_bundle
        create: Callable[..., object] = self.session.create_client
        refreshing = credentials.refreshing()
        if refreshing is None:
            assert isinstance(credentials, S3Credentials)
            keys = {"aws_access_key_id": credentials.access_key_id,
                    "aws_secret_access_key": credentials.secret_access_key,
                    "aws_session_token": credentials.session_token}
        else:  # replaced below, before the client sends anything
            keys = {"aws_access_key_id": "unused", "aws_secret_access_key": "unused"}
        client = cast("S3Client", create(
            "s3",
            region_name=region,
            endpoint_url=config.endpoint_for(region),
            verify=verify,
            config=config.botocore_config(region),
            **keys,
        ))
        if refreshing is not None:
            bind_credentials(client, refreshing)
        return client


def bind_credentials(client: object, credentials: botocore.credentials.Credentials) -> None:
    """Make ``client`` sign with ``credentials`` (refreshed by botocore before each request)."""
    signer = getattr(client, "_request_signer", None)
    if signer is None or not hasattr(signer, "_credentials"):
        raise RuntimeError("this botocore version keeps client credentials elsewhere; s3dsi cannot bind "
                           "refreshing credentials to its clients")
    signer._credentials = credentials
