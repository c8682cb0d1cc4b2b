"""S3Backend decisions that moto cannot show: HeadBucket refusals that still reveal a region, foreign
buckets, unreachable endpoints. botocore's Stubber answers instead of a server (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from s3dsi.protocol.errors import (
    BackendUnavailable,
    PathExists,
    PathNotFound,
    PermissionDenied,
    RequesterPays,
)
from s3dsi.storage.s3 import S3Backend, S3BackendFactory
from s3dsi.storage.s3clients import S3Config

SECRET = "stub-secret-key-0123456789"


@pytest.fixture
def factory() -> S3BackendFactory:
    # Port 9 (discard) on loopback: nothing listens, so any unstubbed request fails fast.
    return S3BackendFactory(S3Config(endpoint_url="http://127.0.0.1:9", region="us-east-1", max_attempts=1,
                                     connect_timeout=1.0))


@pytest.fixture
def backend(factory: S3BackendFactory) -> S3Backend:
    return factory.for_credentials("AKIASTUB", SECRET)


@pytest.fixture
def home(factory: S3BackendFactory, backend: S3Backend) -> Iterator[Stubber]:
    client = factory.clients.client(backend.store.credentials, "us-east-1")
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def refuse_head_bucket(stubber: Stubber, status: int, region: str | None) -> None:
    headers: dict[str, Any] = {"x-amz-bucket-region": region} if region else {}
    stubber.add_client_error("head_bucket", service_error_code=str(status), http_status_code=status,
                             response_meta={"HTTPHeaders": headers})


@pytest.mark.parametrize("status", [301, 403])
def test_refused_head_bucket_still_gives_the_region(factory: S3BackendFactory, backend: S3Backend,
                                                    home: Stubber, status: int) -> None:
    refuse_head_bucket(home, status, "ap-southeast-2")
    entry = backend.stat("/theirs")
    assert entry.is_dir
    assert entry.name == "theirs"
    assert factory.regions.get("theirs") == "ap-southeast-2"


def test_forbidden_without_region_is_permission_denied(factory: S3BackendFactory, backend: S3Backend,
                                                       home: Stubber) -> None:
    refuse_head_bucket(home, 403, None)
    with pytest.raises(PermissionDenied):
        backend.stat("/theirs")
    assert factory.regions.get("theirs") is None


def test_missing_bucket_is_not_cached(factory: S3BackendFactory, backend: S3Backend, home: Stubber) -> None:
    refuse_head_bucket(home, 404, None)
    with pytest.raises(PathNotFound, match="NoSuchBucket"):
        backend.stat("/gone/key")
    assert factory.regions.get("gone") is None


def test_mkdir_of_a_bucket_owned_by_someone_else(backend: S3Backend, home: Stubber) -> None:
    refuse_head_bucket(home, 403, "us-east-1")
    with pytest.raises(PathExists, match="another account"):
        backend.mkdir("/taken")


def test_requester_pays_refusal(factory: S3BackendFactory, backend: S3Backend, home: Stubber) -> None:
    factory.regions.put("rp", "us-east-1")
    home.add_client_error("head_object", service_error_code="AccessDenied", http_status_code=403,
                          service_message="Access Denied: requester pays bucket needs x-amz-request-payer")
    with pytest.raises(RequesterPays):
        backend.head_object("/rp/data")


def test_secret_never_reaches_the_error_text(factory: S3BackendFactory, backend: S3Backend,
                                             home: Stubber) -> None:
    factory.regions.put("b", "us-east-1")
    home.add_client_error("list_objects_v2", service_error_code="OddFailure", http_status_code=400,
                          service_message=f"credential {SECRET} rejected")
    with pytest.raises(Exception) as caught:
        backend.list_pages("/b")
    assert SECRET not in str(caught.value)
    assert "OddFailure" in str(caught.value)


def test_unreachable_endpoint_is_backend_unavailable(backend: S3Backend) -> None:
    with pytest.raises(BackendUnavailable) as caught:
        backend.stat("/bucket/key")
    assert SECRET not in caught.value.text
    assert caught.value.text.startswith("S3 ")
    assert repr(backend) == "S3Backend(access_key_id='AKIASTUB')"
