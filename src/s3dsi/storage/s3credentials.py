"""Where a user's S3 credentials come from, and keeping temporary ones fresh while transfers run.

A ``CredentialSpec`` (from the credential map's line) is one of:

* **static keys**: ``S3Credentials``, given to botocore as they are (as always);
* **``role_arn``**: STS AssumeRole on that role, called with the line's keys or with the credentials of
  ``source``; the result is a botocore ``RefreshableCredentials`` that assumes the role again before the
  session expires. botocore refreshes 15 minutes ahead (10 minutes at the latest), which for a
  15-minute session would mean on every request, so the windows scale with the session's lifetime:
  half of it (at most 15 minutes) ahead in the background, a quarter (at most 10 minutes) ahead at the
  latest. Every client signs each request with whatever is current, so a transfer longer than one
  session's lifetime simply continues;
* **``source=default``**: botocore's own credential chain for the account the process runs as
  (environment, shared config and credentials files with ``profile=``, web identity, container and
  EC2 instance metadata with IMDSv2). The chain is looked up again every ``credential_refresh``
  seconds (a new botocore session: a fresh instance-metadata or web-identity answer), because botocore
  keeps instance credentials for at least 15 minutes past what the metadata service says and tests
  (and sites) need a bound they can set; when a look-up fails, the previous credentials stay in use
  (botocore still refreshes them itself) and a warning says why.

Resolved credentials are cached per spec (without keeping another copy of a secret), so every session
of one user shares one set of temporary credentials and one set of clients. Secret keys and session
tokens fetched are registered with the log redactor the moment they arrive. Failures become
``CredentialsUnavailable`` with STS's or botocore's reason, secrets blanked.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.credentials
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from s3dsi.observability.logging import get_logger, redact_text, register_secret
from s3dsi.protocol.errors import CredentialsUnavailable
from s3dsi.storage import s3errors
from s3dsi.storage.s3clients import ClientCredentials, S3Config, S3Credentials

log = get_logger("s3dsi.storage")

ADVISORY_REFRESH = 15 * 60  # botocore's: refresh in the background this long before expiry...
MANDATORY_REFRESH = 10 * 60  # ...and block until refreshed this long before
_CACHED_SOURCES = 256
Metadata = dict[str, str]


@dataclass(frozen=True, repr=False)
class CredentialSpec:
    """Where one user's credentials come from (the credential map's line)."""

    access_key_id: str = ""
    secret_access_key: str = ""
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str | None = None
    duration: int | None = None  # seconds; None: STS's default (one hour)
    default_chain: bool = False  # source=default
    profile: str | None = None  # with default_chain: a profile of the shared config

    def __repr__(self) -> str:
        return (f"CredentialSpec(access_key_id={self.access_key_id!r}, role_arn={self.role_arn!r}, "
                f"default_chain={self.default_chain}, profile={self.profile!r})")

    @property
    def is_static(self) -> bool:
        return self.role_arn is None and not self.default_chain

    def fingerprint(self) -> str:
        fields = (self.access_key_id, self.secret_access_key, self.role_arn, self.external_id,
                  self.session_name, self.duration, self.default_chain, self.profile)
        return hashlib.sha256("\0".join(str(f) for f in fields).encode()).hexdigest()

    def describe(self) -> str:
        """What a log line or ``s3dsi probe`` says about the source (no secret)."""
        source = (f"botocore's default chain (profile {self.profile})" if self.profile else
                  "botocore's default chain") if self.default_chain else f"keys {self.access_key_id}"
        return f"role {self.role_arn} assumed with {source}" if self.role_arn else source


class SourcedCredentials:
    """Credentials that refresh themselves, for the client pool (``ClientCredentials``)."""

    def __init__(self, key: str, description: str) -> None:
        self._key = key
        self.description = description
        self.credentials: botocore.credentials.RefreshableCredentials | None = None
        self._current: tuple[str, str, str] = ("", "", "")  # access key, secret, token last fetched
        self.fetches = 0

    def __repr__(self) -> str:
        return f"SourcedCredentials({self.description}, access_key_id={self.access_key_id!r})"

    @property
    def access_key_id(self) -> str:
        return self._current[0]

    @property
    def cache_key(self) -> tuple[str, str]:
        return "source", self._key

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in self._current[1:] if s)

    def refreshing(self) -> botocore.credentials.Credentials | None:
        return self.credentials

    def fetched(self, access_key: str, secret: str, token: str | None) -> None:
        register_secret(secret, transient=True)
        register_secret(token, transient=True)
        self._current = (access_key, secret, token or "")
        self.fetches += 1

    def check(self) -> None:
        """Refresh now if the credentials are (nearly) expired; CredentialsUnavailable if that fails."""
        assert self.credentials is not None
        _frozen(self.credentials, self.description)


def _frozen(credentials: botocore.credentials.Credentials,
            what: str) -> botocore.credentials.ReadOnlyCredentials:
    try:
        return credentials.get_frozen_credentials()
    except CredentialsUnavailable:
        raise
    except Exception as exc:  # botocore's own refresh of a chain source, or an expired one
        raise CredentialsUnavailable(f"S3 credentials from {what}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or s3errors.http_status(exc) or "error"
        message = str(error.get("Message") or "").strip()
        text = f"{code}: {message}" if message else str(code)
    else:
        text = str(exc) or type(exc).__name__
    return redact_text(text)[:300]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _own_home() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return os.path.expanduser("~")


class _Chain:
    """botocore's credential chain of this process's account, looked up again every ``interval``."""

    def __init__(self, profile: str | None, interval: int, holder: SourcedCredentials) -> None:
        self.profile = profile
        self.interval = interval
        self.holder = holder
        self._last: botocore.credentials.Credentials | None = None
        self._lock = threading.Lock()

    def _lookup(self) -> botocore.credentials.Credentials:
        try:
            session = botocore.session.Session(profile=self.profile)
            # the files of the account the process runs as now (after a privilege drop $HOME may
            # still name root's home)
            home = _own_home()
            if "AWS_CONFIG_FILE" not in os.environ:
                session.set_config_variable("config_file", os.path.join(home, ".aws", "config"))
            if "AWS_SHARED_CREDENTIALS_FILE" not in os.environ:
                session.set_config_variable("credentials_file", os.path.join(home, ".aws", "credentials"))
            found = session.get_credentials()
        except Exception as exc:  # ProfileNotFound, a web identity token file that cannot be read...
            raise CredentialsUnavailable(f"source=default: {_reason(exc)}") from exc
        if found is None:
            raise CredentialsUnavailable("source=default: botocore found no credentials (environment, "
                                         "shared config and credentials files, web identity token, "
                                         "container or instance metadata)")
        return found

    def fetch(self) -> Metadata:
        with self._lock:
            try:
                found = self._lookup()
            except CredentialsUnavailable as err:
                if self._last is None:
                    log.warning("S3 credentials unavailable", source="default", reason=err.text)
                    raise
                log.warning("looking up source=default credentials again failed; the previous ones stay "
                            "in use", reason=err.text)
                found = self._last
            frozen = _frozen(found, "source=default")
            self._last = found
        access_key, secret = str(frozen.access_key), str(frozen.secret_key)
        self.holder.fetched(access_key, secret, frozen.token)
        return {"access_key": access_key, "secret_key": secret, "token": frozen.token or "",
                "expiry_time": _iso(datetime.now(UTC) + timedelta(seconds=self.interval))}


class _Role:
    """STS AssumeRole with a source's credentials (static keys, or a refreshing source)."""

    def __init__(self, spec: CredentialSpec, source: botocore.credentials.Credentials, source_what: str,
                 make_sts: Callable[[botocore.credentials.ReadOnlyCredentials], Any],
                 holder: SourcedCredentials) -> None:
        assert spec.role_arn is not None
        self.spec = spec
        self.role_arn = spec.role_arn
        self.source = source
        self.source_what = source_what
        self.make_sts = make_sts
        self.holder = holder

    def fetch(self) -> Metadata:
        keys = _frozen(self.source, self.source_what)
        params: dict[str, Any] = {"RoleArn": self.role_arn,
                                  "RoleSessionName": self.spec.session_name or "s3dsi"}
        if self.spec.duration is not None:
            params["DurationSeconds"] = self.spec.duration
        if self.spec.external_id is not None:
            params["ExternalId"] = self.spec.external_id
        try:
            response = self.make_sts(keys).assume_role(**params)
        except ClientError as exc:
            reason = _reason(exc)
            log.warning("STS AssumeRole failed", role_arn=self.role_arn, reason=reason)
            raise CredentialsUnavailable(f"STS AssumeRole of {self.role_arn} failed: {reason}") from exc
        except BotoCoreError as exc:
            reason = _reason(exc)
            log.warning("STS AssumeRole failed", role_arn=self.role_arn, reason=reason)
            raise CredentialsUnavailable(f"STS AssumeRole of {self.role_arn} failed: the STS endpoint could "
                                         f"not be reached ({type(exc).__name__})") from exc
        creds = response["Credentials"]
        access_key, secret, token = str(creds["AccessKeyId"]), str(creds["SecretAccessKey"]), \
            str(creds.get("SessionToken") or "")
        self.holder.fetched(access_key, secret, token)
        log.info("assumed role", role_arn=self.role_arn, expires=_iso(creds["Expiration"]))
        return {"access_key": access_key, "secret_key": secret, "token": token,
                "expiry_time": _iso(creds["Expiration"])}


def refresh_windows(lifetime: float) -> tuple[int, int]:
    """(advisory, mandatory) seconds before expiry: botocore's 15/10 minutes, scaled down for sessions
    so short that those windows would mean refreshing on every request."""
    advisory = max(1, int(min(ADVISORY_REFRESH, lifetime / 2)))
    return advisory, max(1, int(min(MANDATORY_REFRESH, lifetime / 4)))


def _refreshable(fetch: Callable[[], Metadata], method: str, *, windows: tuple[int, int] | None = None
                 ) -> botocore.credentials.RefreshableCredentials:
    first = fetch()  # now, so that a login learns at once that the source does not work
    expiry = datetime.strptime(first["expiry_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if windows is None:
        windows = refresh_windows((expiry - datetime.now(UTC)).total_seconds())
    return botocore.credentials.RefreshableCredentials(
        first["access_key"], first["secret_key"], first["token"] or None,  # type: ignore[arg-type]
        expiry, fetch, method,
        advisory_timeout=windows[0], mandatory_timeout=windows[1])


class CredentialResolver:
    """Turns a ``CredentialSpec`` into client credentials; one per process (per S3BackendFactory)."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._session: botocore.session.Session | None = None  # for STS clients (not the S3 clients')
        self._cache: OrderedDict[str, SourcedCredentials] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}

    def resolve(self, spec: CredentialSpec) -> ClientCredentials:
        """The spec's credentials; the first use fetches them (AssumeRole, the chain), so failures show
        here. CredentialsUnavailable with the reason."""
        if spec.is_static:
            return S3Credentials(spec.access_key_id, spec.secret_access_key)
        key = spec.fingerprint()
        with self._lock:
            build_lock = self._building.setdefault(key, threading.Lock())
        with build_lock:  # one AssumeRole for many sessions of the same user logging in at once
            with self._lock:
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
            if cached is not None:
                cached.check()
                return cached
            built = self._build(spec, key)
            with self._lock:
                self._cache[key] = built
                while len(self._cache) > _CACHED_SOURCES:
                    self._cache.popitem(last=False)
            return built

    def _build(self, spec: CredentialSpec, key: str) -> SourcedCredentials:
        holder = SourcedCredentials(key, spec.describe())
        if spec.default_chain:
            chain_holder = holder if spec.role_arn is None else SourcedCredentials(key + ":source", "source")
            chain = _Chain(spec.profile, self.config.credential_refresh, chain_holder)
            # refreshed when the look-up interval is over (expiry = fetch time + interval)
            source: botocore.credentials.Credentials = _refreshable(chain.fetch, "s3dsi-default-chain",
                                                                    windows=(0, 0))
            source_what = "source=default"
        else:
            source = botocore.credentials.Credentials(spec.access_key_id, spec.secret_access_key)
            source_what = f"keys {spec.access_key_id}"
        if spec.role_arn is None:
            assert isinstance(source, botocore.credentials.RefreshableCredentials)
            holder.credentials = source
            return holder
        role = _Role(spec, source, source_what, self._sts_client, holder)
        holder.credentials = _refreshable(role.fetch, "s3dsi-assume-role")
        return holder

    def _sts_client(self, keys: botocore.credentials.ReadOnlyCredentials) -> Any:
        config = self.config
        verify: bool | str = config.verify_tls
        if config.verify_tls and config.ca_bundle:
            verify = config.ca_bundle
        with self._lock:  # botocore sessions are not safe for concurrent client creation
            if self._session is None:
                self._session = botocore.session.Session()
            return self._session.create_client(
                "sts", region_name=config.region, endpoint_url=config.sts_endpoint, verify=verify,
                aws_access_key_id=keys.access_key, aws_secret_access_key=keys.secret_key,
                aws_session_token=keys.token,
                config=Config(retries={"mode": config.retry_mode,
                                       "total_max_attempts": min(config.max_attempts, 4)},
                              connect_timeout=config.connect_timeout, read_timeout=30,
                              user_agent_extra="s3dsi"))
