"""The fourth field of a credential-map line: ``key=value`` pairs separated by commas.

Credential keys say where the S3 credentials come from:

* ``role_arn=ARN``: the session's credentials come from STS AssumeRole on that role, called with the
  line's keys or with ``source``'s credentials; ``external_id=``, ``session_name=`` and ``duration=``
  (seconds, or with an s/m/h unit) go with it;
* ``source=default``: botocore's credential chain of the daemon's account (environment, shared
  config with ``profile=NAME``, web identity, container and instance metadata); the key fields are
  then empty.

Policy keys (``root``, ``buckets``, ``append_only``, ...) narrow the site's S3 policy; their syntax
and rules are in ``s3dsi.config.s3policy``. Values cannot contain ``,`` (the separator), ``;`` or white
space. Errors name the key, never the value.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field

from s3dsi.config import s3policy
from s3dsi.config import values as v

SOURCES = ("default",)
MIN_DURATION, MAX_DURATION = 900, 12 * 3600  # STS's bounds (botocore refuses shorter before sending)
_ROLE_ARN = re.compile(r"arn:[a-z0-9-]+:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_EXTERNAL_ID = re.compile(r"[\w+=.@:/-]{2,1224}")
_SESSION_NAME = re.compile(r"[\w+=.@-]{2,64}")
_PROFILE = re.compile(r"[\w.+@-]{1,128}")
CREDENTIAL_KEYS = ("role_arn", "external_id", "session_name", "duration", "source", "profile")
ROLE_KEYS = ("external_id", "session_name", "duration")
KNOWN_KEYS = (*CREDENTIAL_KEYS, *s3policy.POLICY_KEYS)


class OptionError(ValueError):
    """A malformed fourth field; the message names the key, never its value."""


@dataclass(frozen=True)
class MapOptions:
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str | None = None
    duration: int | None = None  # seconds
    source: str | None = None
    profile: str | None = None
    policy: Mapping[str, object] = field(default_factory=dict)  # policy key -> parsed value
    written: Mapping[str, str] = field(default_factory=dict)  # every key -> its text, in order

    def render(self) -> str:
        return ",".join(f"{key}={value}" for key, value in self.written.items())

    def describe_source(self, access_key_id: str) -> str:
        """Where the credentials come from, in words (no secret)."""
        if self.source is not None:
            source = f"botocore's default chain (profile {self.profile})" if self.profile else \
                "botocore's default chain"
        else:
            source = f"keys {access_key_id}"
        if self.role_arn is None:
            return source
        extra = [f"{k} {v}" for k, v in (("external id", self.external_id), ("session", self.session_name),
                                          ("duration", f"{self.duration}s" if self.duration else None)) if v]
        return f"role {self.role_arn} assumed with {source}" + (f" ({', '.join(extra)})" if extra else "")


def _credential_value(key: str, text: str) -> object:
    if key == "role_arn":
        if not _ROLE_ARN.fullmatch(text):
            raise OptionError("role_arn: expected an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        return text
    if key == "external_id":
        if not _EXTERNAL_ID.fullmatch(text):
            raise OptionError("external_id: expected 2-1224 letters, digits or +=.@:/-_")
        return text
    if key == "session_name":
        if not _SESSION_NAME.fullmatch(text):
            raise OptionError("session_name: expected 2-64 letters, digits or +=.@-_")
        return text
    if key == "duration":
        try:
            seconds = v.parse_duration(text)
        except ValueError:
            raise OptionError("duration: expected seconds, or a number with an s, m or h unit") from None
        if not MIN_DURATION <= seconds <= MAX_DURATION:
            raise OptionError(f"duration: expected {MIN_DURATION} to {MAX_DURATION} seconds (15m to 12h)")
        return seconds
    if key == "source":
        if text not in SOURCES:
            raise OptionError(f"source: expected one of: {', '.join(SOURCES)}")
        return text
    if not _PROFILE.fullmatch(text):  # profile
        raise OptionError("profile: expected a profile name of the shared AWS config")
    return text


def parse_options(text: str) -> MapOptions:
    """The parsed fourth field ("" gives the empty MapOptions); OptionError naming the key at fault."""
    if not text:
        return MapOptions()
    if "=" not in text and text.startswith("arn:"):
        text = f"role_arn={text}"  # a bare role ARN: the field's meaning before it took options
    written: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OptionError("expected key=value pairs separated by ',' (e.g. role_arn=ARN,append_only=1)")
        if key not in KNOWN_KEYS:
            raise OptionError(f"unknown key {v.shorten(key, 40)} (known: {', '.join(KNOWN_KEYS)})")
        if key in written:
            raise OptionError(f"{key} is given twice")
        if not value:
            raise OptionError(f"{key}: empty value")
        written[key] = value
    credentials: dict[str, object] = {}
    policy: dict[str, object] = {}
    for key, value in written.items():
        if key in CREDENTIAL_KEYS:
            credentials[key] = _credential_value(key, value)
            continue
        try:
            policy[key] = s3policy.parse_value(key, value)
        except s3policy.PolicyError as exc:
            raise OptionError(f"{key}: expected {exc}") from None
    for key in ROLE_KEYS:
        if key in credentials and "role_arn" not in credentials:
            raise OptionError(f"{key} needs role_arn")
    if "profile" in credentials and credentials.get("source") != "default":
        raise OptionError("profile needs source=default")
    try:
        s3policy.check_consistent(s3policy.from_values(policy))
    except s3policy.PolicyError as exc:
        raise OptionError(str(exc)) from None
    return MapOptions(policy=types.MappingProxyType(policy), written=types.MappingProxyType(written),
                      **credentials)  # type: ignore[arg-type]
