"""How daemon paths map onto S3 names (``/bucket/key``), S3's naming limits, and per-path Unique values.

Shared by every back end so that the S3 and in-memory implementations agree on names exactly.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from s3dsi.protocol.errors import InvalidPath, PermissionDenied

MAX_KEY_BYTES = 1024
# The top-level name in every bucket under which the daemon keeps its restart records
# (storage/records.py): no user path may name it, and listings do not show it.
RESERVED_NAME = ".s3dsi"
RESERVED_PREFIX = f"{RESERVED_NAME}/"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


@dataclass(frozen=True)
class S3Path:
    """A normalised daemon path split into bucket and key; ``bucket == ""`` is the root ``/``."""

    path: str
    bucket: str
    key: str

    @property
    def is_root(self) -> bool:
        return not self.bucket

    @property
    def is_bucket(self) -> bool:
        return bool(self.bucket) and not self.key

    @property
    def name(self) -> str:
        """The last path segment (what a listing shows); ``/`` for the root."""
        return self.path.rsplit("/", 1)[-1] or "/"

    @property
    def dir_prefix(self) -> str:
        """The key prefix of the directory this path names: ``""`` for a bucket, else ``key/``."""
        return f"{self.key}/" if self.key else ""

    @property
    def marker_key(self) -> str:
        """The zero-byte object that makes an empty directory exist."""
        return f"{self.key}/"

    @property
    def parent_prefix(self) -> str:
        """Key prefix of the parent directory: ``""`` when the parent is the bucket itself."""
        head, sep, _ = self.key.rpartition("/")
        return f"{head}/" if sep else ""

    def child(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"


def parse_path(path: str) -> S3Path:
    """Split an absolute normalised path. InvalidPath for anything the protocol layer should not send."""
    if not path.startswith("/"):
        raise InvalidPath(f"Path must be absolute: {path!r}")
    if path == "/":
        return S3Path("/", "", "")
    if path.endswith("/"):
        raise InvalidPath(f"Path must not end with '/': {path!r}")
    bucket, _, key = path[1:].partition("/")
    segments = [bucket, *key.split("/")] if key else [bucket]
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidPath(f"Path has an empty, '.' or '..' segment: {path!r}")
    if is_reserved_key(key):
        raise PermissionDenied(f"{path}: Permission denied (/{bucket}/{RESERVED_NAME} is reserved for the "
                               "daemon's restart records)")
    return S3Path(path, bucket, key)


def is_reserved_key(key: str) -> bool:
    """Whether ``key`` lies under the daemon's own top-level name (``.s3dsi`` or ``.s3dsi/...``)."""
    return key == RESERVED_NAME or key.startswith(RESERVED_PREFIX)


def check_key(target: S3Path) -> None:
    """InvalidPath when S3 cannot hold the key (directory markers add one byte for the ``/``)."""
    if len(target.key.encode("utf-8", "surrogatepass")) + 1 > MAX_KEY_BYTES:
        raise InvalidPath(f"S3 KeyTooLongError: key of {target.path} is longer than "
                          f"{MAX_KEY_BYTES - 1} bytes")


def check_bucket_name(name: str) -> None:
    """The S3 rules for naming a *new* bucket (existing ones are reached by whatever name they have)."""
    problem = None
    if not _BUCKET_NAME.match(name):
        problem = "3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a " \
                  "letter or digit"
    elif ".." in name or ".-" in name or "-." in name:
        problem = "no adjacent periods or a period next to a hyphen"
    elif _looks_like_ip(name):
        problem = "not formatted as an IP address"
    elif name.startswith(_RESERVED_BUCKET_PREFIXES) or name.endswith(_RESERVED_BUCKET_SUFFIXES):
        problem = "not using a reserved prefix or suffix"
    if problem:
        raise InvalidPath(f"S3 InvalidBucketName: {name!r}: bucket names must be {problem}")


def _looks_like_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def unique_for(path: str) -> str:
    """A stable value distinct per path (globus-url-copy -r skips directories whose Unique it has seen)."""
    return hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def strip_etag(etag: str) -> str:
    """ETags travel without their HTTP quotes inside the daemon."""
    return etag.strip('"')


def quote_etag(etag: str) -> str:
    return f'"{strip_etag(etag)}"'
