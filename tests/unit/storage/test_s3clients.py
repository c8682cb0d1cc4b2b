"""S3Config from Settings, endpoints per region, the client pool and the bucket-region cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from s3dsi.config.settings import Settings
from s3dsi.storage.s3 import full_object_crc32c
from s3dsi.storage.s3clients import BucketRegions, ClientPool, S3Config, S3Credentials


def test_from_settings() -> None:
    settings = Settings(host_name="https://s3.eu-west-1.amazonaws.com", region="eu-west-1",
                        addressing_style="path", verify_tls=False, ca_bundle="/etc/ca.pem",
                        storage_class="STANDARD_IA", part_workers=12, threads=4,
                        upload_checksums=("MD5",))
    config = S3Config.from_settings(settings)
    assert config.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert config.region == "eu-west-1"
    assert config.addressing_style == "path"
    assert config.verify_tls is False
    assert config.ca_bundle == "/etc/ca.pem"
    assert config.storage_class == "STANDARD_IA"
    assert config.max_pool_connections >= 12 + 4
    assert config.crc32c_checksums is False
    assert S3Config.from_settings(Settings()).crc32c_checksums is True


def test_regional_endpoints_only_for_aws() -> None:
    aws = S3Config(endpoint_url="https://s3.amazonaws.com", region="us-east-1")
    assert aws.is_aws
    assert aws.endpoint_for("us-east-1") == "https://s3.amazonaws.com"
    assert aws.endpoint_for("eu-west-1") is None  # botocore resolves the regional endpoint
    china = S3Config(endpoint_url="https://s3.cn-north-1.amazonaws.com.cn", region="cn-north-1")
    assert china.is_aws
    minio = S3Config(endpoint_url="http://127.0.0.1:9000", region="us-east-1")
    assert not minio.is_aws
    assert minio.endpoint_for("eu-west-1") == "http://127.0.0.1:9000"
    assert not S3Config(endpoint_url="https://notamazonaws.com").is_aws


def test_botocore_settings() -> None:
    tls: Any = S3Config(endpoint_url="https://s3.amazonaws.com").botocore_config("us-east-1")
    assert tls.s3 is not None
    assert tls.s3["payload_signing_enabled"] is False
    assert tls.request_checksum_calculation == "when_required"
    assert tls.response_checksum_validation == "when_required"
    assert tls.retries == {"mode": "standard", "total_max_attempts": 8}
    fewer: Any = S3Config.from_settings(Settings(max_attempts=3)).botocore_config("us-east-1")
    assert fewer.retries == {"mode": "standard", "total_max_attempts": 3}
    plain: Any = S3Config(endpoint_url="http://rgw.example.org:7480").botocore_config("us-east-1")
    assert plain.s3 is not None
    assert "payload_signing_enabled" not in plain.s3
    opted = S3Config(endpoint_url="http://rgw.example.org:7480", unsigned_payload_over_http=True)
    assert getattr(opted.botocore_config("x"), "s3")["payload_signing_enabled"] is False  # noqa: B009


@pytest.mark.parametrize(("endpoint", "crc32c", "signed"), [
    ("http://127.0.0.1:9000", True, False),  # loopback: no wire to tamper with, CRC32C checked by S3
    ("http://127.8.9.10:9000", True, False),
    ("http://[::1]:9000", True, False),
    ("http://localhost:9000", True, False),
    ("http://127.0.0.1:9000", False, True),  # without CRC32C the signature is the only body check
    ("http://10.1.2.3:9000", True, True),
    ("http://s3.internal:9000", True, True),
    ("https://s3.amazonaws.com", False, False),
])
def test_payload_signing(endpoint: str, crc32c: bool, signed: bool) -> None:
    config = S3Config(endpoint_url=endpoint, crc32c_checksums=crc32c)
    assert config.signs_payloads is signed
    options: Any = config.botocore_config("us-east-1").s3
    assert options.get("payload_signing_enabled", True) is signed


def test_credentials_never_show_their_secrets() -> None:
    creds = S3Credentials("AKIAEXAMPLE", "very-secret", "token-value")
    assert "very-secret" not in repr(creds)
    assert "token-value" not in repr(creds)
    assert "very-secret" not in str(creds.cache_key)
    assert creds.cache_key != S3Credentials("AKIAEXAMPLE", "other-secret").cache_key
    assert creds.secrets == ("very-secret", "token-value")


def test_client_pool_caches_per_credentials_and_region_with_a_bound() -> None:
    pool = ClientPool(S3Config(endpoint_url="http://127.0.0.1:9", max_clients=3))
    alice, bob = S3Credentials("AKIAALICE", "a"), S3Credentials("AKIABOB", "b")
    first = pool.client(alice, "us-east-1")
    assert pool.client(alice, "us-east-1") is first
    assert pool.client(bob, "us-east-1") is not first
    assert pool.client(alice, "eu-west-1").meta.region_name == "eu-west-1"
    assert pool.created == 3
    pool.client(bob, "eu-west-1")  # evicts the least recently used (alice, us-east-1)
    assert pool.client(alice, "us-east-1") is not first
    assert pool.created == 5


def test_client_pool_is_thread_safe() -> None:
    pool = ClientPool(S3Config(endpoint_url="http://127.0.0.1:9"))
    creds = S3Credentials("AKIA", "s")
    barrier = threading.Barrier(8)

    def get(_: int) -> int:
        barrier.wait()
        return id(pool.client(creds, "us-east-1"))

    with ThreadPoolExecutor(8) as executor:
        assert len(set(executor.map(get, range(8)))) == 1
    assert pool.created == 1


def test_bucket_regions_bounded() -> None:
    regions = BucketRegions(limit=2)
    regions.put("a", "r1")
    regions.put("b", "r2")
    assert regions.get("a") == "r1"
    regions.put("c", "r3")  # the oldest entry goes
    assert len(regions) == 2
    assert regions.get("a") is None
    assert regions.get("b") == "r2"
    regions.forget("c")
    assert regions.get("c") is None


@pytest.mark.parametrize("endpoint", ["https://s3.amazonaws.com", "http://127.0.0.1:9"])
def test_clients_use_configured_endpoint_for_home_region(endpoint: str) -> None:
    pool = ClientPool(S3Config(endpoint_url=endpoint, region="us-east-1"))
    client = pool.client(S3Credentials("AKIA", "s"), "us-east-1")
    assert client.meta.endpoint_url == endpoint


def test_only_a_whole_object_crc32c_is_taken_from_s3() -> None:
    assert full_object_crc32c("yZRlqg==", None) == "c99465aa"
    assert full_object_crc32c("yZRlqg==", "FULL_OBJECT") == "c99465aa"
    assert full_object_crc32c("yZRlqg==-3", None) is None  # composite: a checksum of the parts
    assert full_object_crc32c("yZRlqg==", "COMPOSITE") is None
    assert full_object_crc32c(None, None) is None
    assert full_object_crc32c("not base64!", None) is None


@pytest.mark.parametrize(("size", "continues"), [(0, False), (64 * 1024, False), (1024 * 1024, False),
                                                 (1024 * 1024 + 1, True)])
@pytest.mark.parametrize("operation", ["put_object", "upload_part"])
def test_small_bodies_go_without_100_continue(size: int, continues: bool, operation: str) -> None:
    """botocore asks for "100 Continue" before every PutObject/UploadPart body: a round trip per small
    file. The pool's clients send bodies up to 1 MiB with their headers, larger ones still ask first."""
    import botocore.awsrequest  # noqa: PLC0415

    from s3dsi.storage.s3io import MemoryviewBody  # noqa: PLC0415

    pool = ClientPool(S3Config(endpoint_url="http://127.0.0.1:9"))
    client = pool.client(S3Credentials("AKIA", "s"), "us-east-1")
    sent: list[dict[str, Any]] = []

    def capture(request: Any, **_kwargs: Any) -> botocore.awsrequest.AWSResponse:
        sent.append(dict(request.headers))
        raw = type("Raw", (), {"stream": lambda self, *a, **k: iter(())})()
        return botocore.awsrequest.AWSResponse(request.url, 200, {"ETag": '"e"'}, raw)

    client.meta.events.register("before-send.s3", capture)
    body = MemoryviewBody(memoryview(bytes(size)))
    if operation == "put_object":
        client.put_object(Bucket="b", Key="k", Body=body)
    else:
        client.upload_part(Bucket="b", Key="k", UploadId="u", PartNumber=1, Body=body)
    assert len(sent) == 1
    assert ("Expect" in sent[0]) is continues
