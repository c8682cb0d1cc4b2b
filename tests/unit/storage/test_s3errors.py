"""S3/botocore failures become the right DsiError, with safe texts that name the S3 error code."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
)

from s3dsi.protocol.errors import (
    BackendUnavailable,
    DirectoryNotEmpty,
    DsiError,
    InvalidPath,
    NoSpace,
    NotSupported,
    ObjectArchived,
    ObjectChanged,
    PathExists,
    PathNotFound,
    PermissionDenied,
    QuotaExceeded,
    RequesterPays,
)
from s3dsi.storage import s3errors

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def client_error(code: str, status: int, message: str = "", headers: dict[str, str] | None = None,
                 operation: str = "GetObject", **extra: Any) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message, **extra},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("NoSuchKey", 404, PathNotFound),
    ("NoSuchBucket", 404, PathNotFound),
    ("404", 404, PathNotFound),
    ("NoSuchUpload", 404, PathNotFound),
    ("AccessDenied", 403, PermissionDenied),
    ("403", 403, PermissionDenied),
    ("SignatureDoesNotMatch", 403, PermissionDenied),
    ("InvalidAccessKeyId", 403, PermissionDenied),
    ("ExpiredToken", 400, PermissionDenied),
    ("InvalidObjectState", 403, ObjectArchived),
    ("BucketAlreadyOwnedByYou", 409, PathExists),
    ("BucketAlreadyExists", 409, PathExists),
    ("InvalidBucketName", 400, InvalidPath),
    ("KeyTooLongError", 400, InvalidPath),
    ("PreconditionFailed", 412, ObjectChanged),
    ("412", 412, ObjectChanged),
    ("BucketNotEmpty", 409, DirectoryNotEmpty),
    ("EntityTooLarge", 400, NoSpace),
    ("QuotaExceeded", 403, QuotaExceeded),
    ("NotImplemented", 501, NotSupported),
    ("SlowDown", 503, BackendUnavailable),
    ("ServiceUnavailable", 503, BackendUnavailable),
    ("InternalError", 500, BackendUnavailable),
    ("PermanentRedirect", 301, BackendUnavailable),
    ("SomethingNew", 503, BackendUnavailable),
    ("SomethingNew", 404, PathNotFound),
    ("SomethingNew", 403, PermissionDenied),
])
def test_code_mapping(code: str, status: int, expected: type[DsiError]) -> None:
    error = s3errors.translate(client_error(code, status), path="/b/k", operation="open")
    assert type(error) is expected
    assert f"S3 {code}" in error.text
    assert "/b/k" in error.text
    assert error.operation == "open"


@pytest.mark.parametrize("code", ["EntityTooSmall", "InvalidPart", "InvalidPartOrder", "BadDigest"])
def test_multipart_mistakes_are_internal_errors_with_explanations(code: str) -> None:
    error = s3errors.translate(client_error(code, 400, "server words"), path="/b/k")
    assert type(error) is DsiError
    assert error.code == 451
    assert f"S3 {code}" in error.text
    assert "server words" not in error.text


def test_bucket_already_exists_explains_global_names() -> None:
    error = s3errors.translate(client_error("BucketAlreadyExists", 409), path="/taken")
    assert isinstance(error, PathExists)
    assert "another account" in error.text


def test_requester_pays_detected_from_message_or_charge_header() -> None:
    by_message = client_error("AccessDenied", 403, "Bucket is a Requester Pays bucket")
    by_header = client_error("AccessDenied", 403, "Access Denied",
                             headers={"x-amz-request-charged": "requester"})
    assert isinstance(s3errors.translate(by_message, path="/rp/k"), RequesterPays)
    assert isinstance(s3errors.translate(by_header, path="/rp/k"), RequesterPays)
    plain = s3errors.translate(client_error("AccessDenied", 403, "Access Denied"), path="/rp/k")
    assert type(plain) is PermissionDenied
    assert "Requester Pays" in plain.text


def test_unknown_codes_quote_the_message_without_secrets() -> None:
    exc = client_error("WeirdError", 400, f"bad signature for key {SECRET} " + "x" * 500,
                       StringToSign="AWS4-HMAC-SHA256 secret stuff", CanonicalRequest="PUT /b/k")
    error = s3errors.translate(exc, path="/b/k", secrets=[SECRET])
    assert SECRET not in error.text
    assert "***" in error.text
    assert "StringToSign" not in error.text
    assert "CanonicalRequest" not in error.text
    assert len(error.text) < 250
    for line in error.reply_lines():
        assert SECRET not in line


def test_known_codes_never_repeat_the_server_message() -> None:
    exc = client_error("SignatureDoesNotMatch", 403, f"The request signature... {SECRET}",
                       AWSAccessKeyId="AKIAEXAMPLE", StringToSign="...")
    error = s3errors.translate(exc, path="/b/k")
    assert SECRET not in error.text
    assert "AKIAEXAMPLE" not in error.text


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="https://bucket.s3.amazonaws.com/key?uploads"),
    ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com/"),
    ReadTimeoutError(endpoint_url="https://s3.amazonaws.com/"),
    IncompleteReadError(actual_bytes=1, expected_bytes=2),
    ConnectionResetError(),
])
def test_transport_failures_are_backend_unavailable(exc: Exception) -> None:
    error = s3errors.translate(exc, path="/b/k", operation="read")
    assert isinstance(error, BackendUnavailable)
    assert error.text.startswith("S3 ")
    assert "amazonaws.com" not in error.text


def test_missing_credentials() -> None:
    assert isinstance(s3errors.translate(NoCredentialsError()), PermissionDenied)


def test_dsi_errors_pass_through() -> None:
    original = PathNotFound("x")
    assert s3errors.translate(original) is original


def test_helpers_read_codes_statuses_and_headers() -> None:
    exc = client_error("403", 403, headers={"x-amz-bucket-region": "eu-west-1"}, operation="HeadBucket")
    assert s3errors.error_code(exc) == "403"
    assert s3errors.http_status(exc) == 403
    assert s3errors.response_header(exc, "X-Amz-Bucket-Region") == "eu-west-1"
    assert s3errors.is_not_found(client_error("NoSuchKey", 404))
    assert not s3errors.is_not_found(exc)
    assert s3errors.is_redirect(client_error("PermanentRedirect", 301))
    assert s3errors.error_code(ValueError()) is None


@pytest.mark.parametrize(("storage_class", "restore", "status", "readable"), [
    ("STANDARD", None, None, True),
    ("GLACIER_IR", None, None, True),
    ("GLACIER", None, None, False),
    ("DEEP_ARCHIVE", 'ongoing-request="true"', None, False),
    ("GLACIER", 'ongoing-request="false", expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"', None, True),
    ("INTELLIGENT_TIERING", None, "ARCHIVE_ACCESS", False),
    ("INTELLIGENT_TIERING", None, None, True),
])
def test_archived(storage_class: str, restore: str | None, status: str | None, readable: bool) -> None:
    error = s3errors.archived("/b/k", storage_class, restore, status)
    assert (error is None) is readable
    if error is not None:
        assert isinstance(error, ObjectArchived)
        assert "RestoreObject" in error.text
        assert ("in progress" in error.text) == (restore is not None)
