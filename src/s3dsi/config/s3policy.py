"""Per-user and site S3 policy: what a user may reach (virtual root, bucket allow-list), how writes
behave (append-only, overwrite only if unchanged) and what every write carries (storage class,
server-side encryption, object ACL, Requester Pays).

The same keys exist in the S3 conf (site defaults, for every user) and in the fourth field of a
credential-map line (per user). A user's values may only *narrow* what the site allows: a root inside
the site's root, a subset of its buckets, append-only or if-unchanged added but never lifted,
Requester Pays only where the site accepts it, and a storage class, encryption, KMS key or ACL only
where the site left it open (``sse`` may go from AES256 to aws:kms, never down). ``narrow`` applies
these rules and names the key that breaks one; the daemon refuses such a login, ``s3dsi map check``
reports it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from s3dsi.config import values as v
from s3dsi.config.settings import Settings

Overwrite = Literal["always", "if-unchanged"]
Sse = Literal["AES256", "aws:kms"]
EVERY_BUCKET = "*"

# Existing buckets may carry legacy names (upper case, underscores); new ones follow the strict rules.
_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_KMS_KEY_RE = re.compile(r"[A-Za-z0-9:/_.@=+-]{1,2048}")
CANNED_ACLS = ("private", "bucket-owner-full-control", "bucket-owner-read", "public-read",
               "public-read-write", "authenticated-read", "aws-exec-read")
BUCKET_OWNER_FULL_CONTROL = "bucket-owner-full-control"


class PolicyError(ValueError):
    """A policy value is malformed, or a user's value would widen what the site allows."""


@dataclass(frozen=True)
class Root:
    """A virtual root: ``/`` of the user's view is ``/bucket/prefix`` of the store."""

    bucket: str
    prefix: str = ""  # key prefix without leading or trailing ``/``; "" for the whole bucket

    @property
    def path(self) -> str:
        return f"/{self.bucket}/{self.prefix}" if self.prefix else f"/{self.bucket}"

    def contains(self, other: Root) -> bool:
        if other.bucket != self.bucket:
            return False
        return not self.prefix or other.prefix == self.prefix or other.prefix.startswith(f"{self.prefix}/")


@dataclass(frozen=True)
class S3Policy:
    root: Root | None = None
    buckets: tuple[str, ...] | None = None  # None: every bucket the credentials reach
    append_only: bool = False
    overwrite: Overwrite = "always"
    requester_pays: tuple[str, ...] = ()  # buckets whose requests carry RequestPayer; ("*",): every one
    storage_class: str | None = None
    sse: Sse | None = None
    sse_kms_key_id: str | None = None
    object_acl: str | None = None  # None: bucket-owner-full-control for buckets of other accounts

    def pays_for(self, bucket: str) -> bool:
        return EVERY_BUCKET in self.requester_pays or bucket in self.requester_pays

    def allows_bucket(self, bucket: str) -> bool:
        if self.root is not None:
            return bucket == self.root.bucket
        return self.buckets is None or bucket in self.buckets

    @property
    def shapes_namespace(self) -> bool:
        """Whether the view or the write rules differ from the plain namespace (a policy layer is needed)."""
        return (self.root is not None or self.buckets is not None or self.append_only
                or self.overwrite != "always")

    def describe(self) -> list[str]:
        """``key=value`` of every setting that differs from the default (for logs and ``map check``)."""
        out: list[str] = []
        if self.root is not None:
            out.append(f"root={self.root.path}")
        if self.buckets is not None:
            out.append(f"buckets={':'.join(self.buckets)}")
        if self.append_only:
            out.append("append_only=1")
        if self.overwrite != "always":
            out.append(f"overwrite={self.overwrite}")
        if self.requester_pays:
            out.append("requester_pays=" + ("1" if EVERY_BUCKET in self.requester_pays
                                            else ":".join(self.requester_pays)))
        for key in ("storage_class", "sse", "sse_kms_key_id", "object_acl"):
            value = getattr(self, key)
            if value:
                out.append(f"{key}={value}")
        return out


# -- values -----------------------------------------------------------------------------------------
def check_bucket_name(name: str) -> str:
    if not _BUCKET_RE.fullmatch(name) or ".." in name:
        raise PolicyError(f"not a valid bucket name: {v.shorten(name, 70)}")
    return name


def parse_root(text: str) -> Root:
    value = text.strip()
    if not value.startswith("/"):
        raise PolicyError("an absolute path /bucket or /bucket/prefix")
    segments = value.strip("/").split("/") if value.strip("/") else []
    if not segments:
        raise PolicyError("/bucket or /bucket/prefix (the root of all buckets is '/' already)")
    if any(s in ("", ".", "..") for s in segments):
        raise PolicyError("a path without empty, '.' or '..' segments")
    return Root(check_bucket_name(segments[0]), "/".join(segments[1:]))


def parse_buckets(text: str) -> tuple[str, ...]:
    names = [n.strip() for n in text.split(":") if n.strip()]
    if not names:
        raise PolicyError("bucket names separated by ':' (b1:b2)")
    return tuple(dict.fromkeys(check_bucket_name(n) for n in names))


def parse_flag(text: str) -> bool:
    try:
        return v.parse_bool(text)
    except ValueError:
        raise PolicyError("1 or 0") from None


def parse_overwrite(text: str) -> Overwrite:
    value = text.strip().lower()
    if value == "always":
        return "always"
    if value == "if-unchanged":
        return "if-unchanged"
    raise PolicyError("'always' or 'if-unchanged'")


def parse_requester_pays(text: str) -> tuple[str, ...]:
    value = text.strip()
    try:
        return (EVERY_BUCKET,) if v.parse_bool(value) else ()
    except ValueError:
        pass
    try:
        return parse_buckets(value)
    except PolicyError:
        raise PolicyError("1, 0 or bucket names separated by ':'") from None


def parse_storage_class(text: str) -> str:
    try:
        value = v.parse_storage_class(text)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    if value is None:
        raise PolicyError("a storage class name such as STANDARD or INTELLIGENT_TIERING")
    return value


def parse_sse(text: str) -> Sse:
    value = text.strip()
    if value.upper() == "AES256":
        return "AES256"
    if value.lower() == "aws:kms":
        return "aws:kms"
    raise PolicyError("AES256 or aws:kms")


def parse_kms_key(text: str) -> str:
    value = text.strip()
    if not _KMS_KEY_RE.fullmatch(value):
        raise PolicyError("a KMS key id, alias (alias/name) or ARN")
    return value


def parse_acl(text: str) -> str:
    value = text.strip().lower()
    if value not in CANNED_ACLS:
        raise PolicyError(f"a canned ACL: {', '.join(CANNED_ACLS)}")
    return value


PARSERS: Mapping[str, Callable[[str], object]] = {
    "root": parse_root,
    "buckets": parse_buckets,
    "append_only": parse_flag,
    "overwrite": parse_overwrite,
    "requester_pays": parse_requester_pays,
    "storage_class": parse_storage_class,
    "sse": parse_sse,
    "sse_kms_key_id": parse_kms_key,
    "object_acl": parse_acl,
}
POLICY_KEYS = tuple(PARSERS)


def parse_value(key: str, text: str) -> object:
    """The parsed value of policy ``key``; PolicyError saying what was expected."""
    parser = PARSERS.get(key)
    if parser is None:
        raise PolicyError(f"unknown policy key {key!r}")
    return parser(text)


def from_values(values: Mapping[str, object]) -> S3Policy:
    """A policy of exactly these parsed values (key -> value from ``parse_value``), others default."""
    return replace(S3Policy(), **values)  # type: ignore[arg-type]  # values come from parse_value


def check_consistent(policy: S3Policy) -> S3Policy:
    """PolicyError for combinations that cannot work, whoever set them."""
    if policy.root is not None and policy.buckets is not None and policy.root.bucket not in policy.buckets:
        raise PolicyError(f"root {policy.root.path} is not in buckets {':'.join(policy.buckets)}")
    if policy.sse_kms_key_id and policy.sse != "aws:kms":
        raise PolicyError("sse_kms_key_id needs sse=aws:kms")
    return policy


# -- the site's policy and a user's narrowing of it -------------------------------------------------
def expand_root(text: str, user: str) -> str:
    """``$USER`` (or ``${USER}``) in a site root is the local user name of the session."""
    return re.sub(r"\$(?:\{USER\}|USER(?![A-Za-z0-9_]))", lambda _m: user, text)


def site_policy(settings: Settings, user: str | None = None) -> S3Policy:
    """The S3 conf's policy, ``$USER`` in ``root`` expanded for ``user`` (left as is without one)."""
    root = None
    if settings.root is not None:
        root = parse_root(expand_root(settings.root, user) if user is not None else settings.root)
    return check_consistent(S3Policy(
        root=root, buckets=settings.buckets, append_only=settings.append_only,
        overwrite=parse_overwrite(settings.overwrite), requester_pays=settings.requester_pays,
        storage_class=settings.storage_class, sse=parse_sse(settings.sse) if settings.sse else None,
        sse_kms_key_id=settings.sse_kms_key_id, object_acl=settings.object_acl))


def _fixed(site: object, user: object, key: str) -> None:
    if site is not None and user != site:
        raise PolicyError(f"{key}={user} differs from the site's {key}={site}; only the site may change it")


def narrow(site: S3Policy, user: Mapping[str, object]) -> S3Policy:
    """``site`` narrowed by a user's parsed values (key -> value, from ``parse_value``)."""
    result = site
    if "root" in user:
        root = user["root"]
        assert isinstance(root, Root)
        if site.root is not None and not site.root.contains(root):
            raise PolicyError(f"root={root.path} is outside the site's root {site.root.path}")
        if site.buckets is not None and root.bucket not in site.buckets:
            raise PolicyError(f"root={root.path} is in a bucket the site does not allow "
                              f"(buckets={':'.join(site.buckets)})")
        result = replace(result, root=root)
    if "buckets" in user:
        buckets = user["buckets"]
        assert isinstance(buckets, tuple)
        if site.root is not None:
            raise PolicyError(f"buckets cannot be given: the site's root {site.root.path} already confines "
                              "every user to one bucket")
        if site.buckets is not None and not set(buckets) <= set(site.buckets):
            extra = sorted(set(buckets) - set(site.buckets))
            raise PolicyError(f"buckets={':'.join(extra)} not among the site's buckets "
                              f"{':'.join(site.buckets)}")
        result = replace(result, buckets=buckets)
    if "append_only" in user:
        if site.append_only and not user["append_only"]:
            raise PolicyError("append_only=0 cannot lift the site's append_only=1")
        result = replace(result, append_only=bool(user["append_only"]) or site.append_only)
    if "overwrite" in user:
        if site.overwrite == "if-unchanged" and user["overwrite"] != "if-unchanged":
            raise PolicyError("overwrite=always cannot lift the site's overwrite=if-unchanged")
        result = replace(result, overwrite=user["overwrite"])  # type: ignore[arg-type]
    if "requester_pays" in user:
        pays = user["requester_pays"]
        assert isinstance(pays, tuple)
        beyond = EVERY_BUCKET in pays or not set(pays) <= set(site.requester_pays)
        if pays and EVERY_BUCKET not in site.requester_pays and beyond:
            allowed = ":".join(site.requester_pays) or "none"
            raise PolicyError(f"requester_pays goes beyond what the site accepts (site: {allowed}); "
                              "accepting Requester Pays charges is the site's decision")
        result = replace(result, requester_pays=pays)
    for key in ("storage_class", "object_acl", "sse_kms_key_id"):
        if key in user:
            _fixed(getattr(site, key), user[key], key)
            result = replace(result, **{key: user[key]})  # type: ignore[arg-type]
    if "sse" in user:
        sse = user["sse"]
        if site.sse == "aws:kms" and sse != "aws:kms":
            raise PolicyError("sse=AES256 cannot weaken the site's sse=aws:kms")
        result = replace(result, sse=sse)  # type: ignore[arg-type]
    return check_consistent(result)
