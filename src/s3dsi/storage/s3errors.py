"""The one place where S3 and botocore failures become ``DsiError``s.

Texts are built from the S3 error *code* and our own wording, never from request headers or
credentials; the server's message is only quoted (shortened, with known secrets blanked) for codes we
do not recognise. Throttling and 5xx are retried by botocore first (see ``S3Config``); what reaches
here has exhausted those retries.

Requester Pays: S3 refuses requests to such a bucket from non-owners with a plain ``403
AccessDenied`` that does not name the cause. We report ``RequesterPays`` only when the reply says so
(an ``x-amz-request-charged`` header, or a message mentioning requester pays / RequestPayer, as some
S3-compatible stores send); otherwise the ``PermissionDenied`` text mentions it as a possible cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
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

_MESSAGE_LIMIT = 160

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound", "NoSuchVersion"}
_DENIED = {
    "AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem", "InvalidAccessKeyId",
    "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidSecurity",
    "MethodNotAllowed", "405", "InvalidPayer", "UnauthorizedAccess", "AccessControlListNotSupported",
}
_UNAVAILABLE = {
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling", "ThrottlingException",
    "RequestLimitExceeded", "TooManyRequests", "RequestTimeTooSkewed", "500", "502", "503", "504",
}
_REDIRECT = {"PermanentRedirect", "TemporaryRedirect", "301", "307", "AuthorizationHeaderMalformed",
             "IllegalLocationConstraintException"}

# Our own wording per code; the code itself is always put in front ("S3 <Code>: ...").
# gfal2 derives errno from reply text ("No such file" -> ENOENT), so not-found texts start with it.
_EXPLAIN: Mapping[str, str] = {
    "NoSuchKey": "No such file or directory (no such object)",
    "NoSuchBucket": "No such file or directory (no such bucket)",
    "NoSuchUpload": "the multipart upload no longer exists (aborted or completed)",
    "BucketAlreadyOwnedByYou": "the bucket already exists and is owned by you",
    "BucketAlreadyExists": "the bucket name is already taken by another account (bucket names are global)",
    "BucketNotEmpty": "the bucket is not empty",
    "InvalidBucketName": "S3 does not accept this bucket name",
    "KeyTooLongError": "the object name is longer than S3 allows (1024 bytes)",
    "InvalidObjectState": "the object is archived (GLACIER/DEEP_ARCHIVE) and must be restored first",
    "PreconditionFailed": "the object changed since it was opened",
    "EntityTooLarge": "the upload is larger than S3 allows (5 GiB per request or part, 5 TiB per object)",
    "EntityTooSmall": "a multipart part other than the last is smaller than S3's minimum (5 MiB)",
    "InvalidPart": "a multipart part is missing or its ETag does not match",
    "InvalidPartOrder": "multipart parts were not listed in ascending order",
    "NotImplemented": "this S3 store does not implement the request",
    "InvalidStorageClass": "the configured storage class is not accepted by this S3 store",
    "InvalidRange": "the requested byte range is outside the object",
    "QuotaExceeded": "the storage quota is exceeded",
    "SlowDown": "the object store kept throttling requests",
    "RequestTimeTooSkewed": "the clock of this server differs too much from the object store's",
    "AccessDenied": "access denied (for a Requester Pays bucket of another account this is expected: "
                    "this server does not accept requester charges)",
    "SignatureDoesNotMatch": "the secret access key in the S3 map is not correct",
    "InvalidAccessKeyId": "the access key id in the S3 map is not known to the object store",
    "ExpiredToken": "the session token has expired",
    "PermanentRedirect": "the bucket is in another region or endpoint",
    "BadDigest": "the data did not match its checksum (corrupted in transit)",
    "InvalidDigest": "the data did not match its checksum (corrupted in transit)",
    "XAmzContentSHA256Mismatch": "the data did not match its checksum (corrupted in transit)",
    "InvalidTag": "the tags exceed S3's limits (10 tags, 128-character keys, 256-character values)",
}


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a ``ClientError`` (``"404"``-style for HEAD requests without a body)."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code is not None else str(http_status(exc) or "")
    return None


def http_status(exc: BaseException) -> int | None:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def response_header(exc: BaseException, name: str) -> str | None:
    if isinstance(exc, ClientError):
        headers: Mapping[str, str] = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return headers.get(name.lower())
    return None


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in _NOT_FOUND or http_status(exc) == 404


def is_redirect(exc: BaseException) -> bool:
    return error_code(exc) in _REDIRECT


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def from_code(code: str, *, path: str, operation: str | None = None, message: str = "",
              status: int | None = None, headers: Mapping[str, str] | None = None) -> DsiError:
    """The DsiError for an S3 error code; the in-memory back end raises through here as well."""
    explain = _EXPLAIN.get(code) or message[:_MESSAGE_LIMIT] or "request failed"
    text = f"S3 {code}: {path}: {explain}" if path else f"S3 {code}: {explain}"
    factory = _class_for(code, status, message, headers or {})
    return factory(text, operation=operation)


def _class_for(code: str, status: int | None, message: str,
               headers: Mapping[str, str]) -> Callable[..., DsiError]:
    if code in _NOT_FOUND or code == "NoSuchUpload":
        return PathNotFound
    if code in ("AccessDenied", "403", "Forbidden") and _mentions_requester_pays(message, headers):
        return RequesterPays
    simple: Mapping[str, Callable[..., DsiError]] = {
        "InvalidObjectState": ObjectArchived,
        "BucketAlreadyOwnedByYou": PathExists,
        "BucketAlreadyExists": PathExists,
        "InvalidBucketName": InvalidPath,
        "KeyTooLongError": InvalidPath,
        "PreconditionFailed": ObjectChanged,
        "412": ObjectChanged,
        "BucketNotEmpty": DirectoryNotEmpty,
        "EntityTooLarge": NoSpace,
        "QuotaExceeded": QuotaExceeded,
        "XMinioStorageFull": NoSpace,
        "NotImplemented": NotSupported,
        "501": NotSupported,
        "InvalidStorageClass": NotSupported,
    }
    if code in simple:
        return simple[code]
    if code in _DENIED:
        return PermissionDenied
    if code in _UNAVAILABLE or code in _REDIRECT:
        return BackendUnavailable
    if status is not None:
        if status == 404:
            return PathNotFound
        if status == 403:
            return PermissionDenied
        if status == 412:
            return ObjectChanged
        if status >= 500:
            return BackendUnavailable
    return DsiError


def _mentions_requester_pays(message: str, headers: Mapping[str, str]) -> bool:
    lowered = message.lower()
    return ("x-amz-request-charged" in headers or "requester pays" in lowered
            or "requesterpays" in lowered or "requestpayer" in lowered)


_ARCHIVE_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}


def archived(path: str, storage_class: str | None, restore: str | None,
             archive_status: str | None = None) -> ObjectArchived | None:
    """ObjectArchived for an object that cannot be read until restored, else None.

    GLACIER/DEEP_ARCHIVE objects (and INTELLIGENT_TIERING ones in an archive tier, which carry
    ``x-amz-archive-status``) are readable only while a finished restore is in effect, which S3
    reports as ``x-amz-restore: ongoing-request="false", expiry-date=...``.
    """
    if storage_class not in _ARCHIVE_CLASSES and not archive_status:
        return None
    restore = (restore or "").replace(" ", "")
    if 'ongoing-request="false"' in restore:
        return None
    state = "a restore is in progress" if 'ongoing-request="true"' in restore else "it is not restored"
    where = archive_status or storage_class
    return ObjectArchived(f"S3 InvalidObjectState: {path}: object is in {where} and {state}; restore it "
                          "(S3 RestoreObject) and retry when the restore has finished", operation="open")


def translate(exc: BaseException, *, path: str = "", operation: str | None = None,
              secrets: Iterable[str] = ()) -> DsiError:
    """The DsiError for any failure raised by boto3/botocore while serving ``path``."""
    if isinstance(exc, DsiError):
        return exc
    if isinstance(exc, ClientError):
        error: Mapping[str, Any] = exc.response.get("Error", {})
        code = error_code(exc) or "Unknown"
        message = _redact(str(error.get("Message") or ""), secrets)
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return from_code(code, path=path, operation=operation, message=message,
                         status=http_status(exc), headers=headers)
    if isinstance(exc, NoCredentialsError):
        return PermissionDenied("S3 credentials are missing", operation=operation)
    if isinstance(exc, ParamValidationError):
        return InvalidPath(f"S3 refused the request parameters for {path or 'the request'}",
                           operation=operation)
    kind = type(exc).__name__
    if isinstance(exc, ReadTimeoutError | IncompleteReadError | ResponseStreamingError):
        return BackendUnavailable(f"S3 {kind}: the object store stopped sending data", operation=operation)
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return BackendUnavailable(f"S3 {kind}: the object store endpoint could not be reached",
                                  operation=operation)
    if isinstance(exc, BotoCoreError | OSError):
        return BackendUnavailable(f"S3 {kind}: request to the object store failed", operation=operation)
    return DsiError(f"S3 request failed: {kind}", operation=operation)
