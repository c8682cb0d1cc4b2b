"""Credential sources without a network: a stub STS for assumed roles, botocore's chain from the
environment; refresh windows, caching, failures and what reaches the redactor."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from s3dsi.observability.logging import redact_text
from s3dsi.protocol.errors import CredentialsUnavailable
from s3dsi.storage.s3clients import S3Config, S3Credentials
from s3dsi.storage.s3credentials import (
    CredentialResolver,
    CredentialSpec,
    SourcedCredentials,
    _refreshable,
    refresh_windows,
)

ROLE = "arn:aws:iam::123456789012:role/lab-writer"


class StubSts:
    """AssumeRole answers with numbered sessions of ``lifetime`` seconds, or refuses."""

    def __init__(self, lifetime: float = 3600, refuse: str | None = None) -> None:
        self.lifetime = lifetime
        self.refuse = refuse
        self.calls: list[dict[str, Any]] = []
        self.signed_with: list[str] = []

    def client(self, keys: Any) -> StubSts:
        self.signed_with.append(keys.access_key)
        return self

    def assume_role(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.refuse:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": self.refuse}}, "AssumeRole")
        n = len(self.calls)
        return {"Credentials": {"AccessKeyId": f"ASIASESSION{n:04d}",
                                "SecretAccessKey": f"temp-secret-{n}-xyz",
                                "SessionToken": f"token-{n}-FQoGZXIvYXdz",
                                "Expiration": datetime.now(UTC) + timedelta(seconds=self.lifetime)}}


def resolver(sts: StubSts) -> CredentialResolver:
    made = CredentialResolver(S3Config(endpoint_url="http://127.0.0.1:9"))
    made._sts_client = sts.client  # type: ignore[method-assign]  # the STS seam
    return made


def test_refresh_windows_scale_with_short_sessions() -> None:
    assert refresh_windows(3600) == (900, 600)  # botocore's own for an hour
    assert refresh_windows(900) == (450, 225)  # not "refresh on every request"
    assert refresh_windows(4) == (2, 1)


def test_static_keys_stay_static() -> None:
    credentials = resolver(StubSts()).resolve(CredentialSpec("AKIASTATIC", "static-secret"))
    assert credentials == S3Credentials("AKIASTATIC", "static-secret")
    assert credentials.refreshing() is None


def test_an_assumed_role_is_assumed_at_once_and_not_again_until_needed() -> None:
    sts = StubSts(lifetime=900)
    spec = CredentialSpec("AKIAGATEWAY", "gateway-secret", role_arn=ROLE, external_id="lab-42",
                          session_name="s3dsi-alice", duration=900)
    credentials = resolver(sts).resolve(spec)
    assert isinstance(credentials, SourcedCredentials)
    assert sts.calls == [{"RoleArn": ROLE, "RoleSessionName": "s3dsi-alice", "DurationSeconds": 900,
                          "ExternalId": "lab-42"}]
    assert sts.signed_with == ["AKIAGATEWAY"]
    refreshing = credentials.refreshing()
    assert refreshing is not None
    for _ in range(5):  # a 15-minute session is not refreshed on every request
        assert refreshing.get_frozen_credentials().access_key == "ASIASESSION0001"
    assert len(sts.calls) == 1
    assert credentials.access_key_id == "ASIASESSION0001"
    assert credentials.secrets == ("temp-secret-1-xyz", "token-1-FQoGZXIvYXdz")
    text = redact_text("temp-secret-1-xyz token-1-FQoGZXIvYXdz")  # registered the moment they arrived
    assert "temp-secret" not in text and "FQoGZXIvYXdz" not in text


def test_a_session_about_to_expire_is_replaced_before_use() -> None:
    sts = StubSts(lifetime=2)
    credentials = resolver(sts).resolve(CredentialSpec("AKIAGW", "gw-secret", role_arn=ROLE))
    refreshing = credentials.refreshing()
    assert refreshing is not None
    time.sleep(1.2)  # past the mandatory window (a quarter of two seconds before expiry... and more)
    assert refreshing.get_frozen_credentials().access_key == "ASIASESSION0002"
    assert len(sts.calls) == 2


def test_sessions_of_one_user_share_one_role_session() -> None:
    sts = StubSts()
    made = resolver(sts)
    spec = CredentialSpec("AKIAGW", "gw-secret", role_arn=ROLE)
    first, second = made.resolve(spec), made.resolve(spec)
    assert first is second and len(sts.calls) == 1
    other = made.resolve(CredentialSpec("AKIAGW", "gw-secret", role_arn=ROLE, external_id="other"))
    assert other is not first and len(sts.calls) == 2
    assert first.cache_key != other.cache_key and "gw-secret" not in repr(first.cache_key)


def test_sts_refusal_is_a_reason_without_secrets() -> None:
    denial = "User: arn:aws:iam::123456789012:user/gw is not authorized to perform: sts:AssumeRole"
    sts = StubSts(refuse=denial)
    with pytest.raises(CredentialsUnavailable) as refused:
        resolver(sts).resolve(CredentialSpec("AKIAGW", "gw-secret-value", role_arn=ROLE))
    assert refused.value.text == f"STS AssumeRole of {ROLE} failed: AccessDenied: {denial}"
    assert refused.value.code == 550


def test_the_default_chain_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value")
    sts = StubSts()
    made = resolver(sts)
    credentials = made.resolve(CredentialSpec(default_chain=True))
    assert credentials.access_key_id == "AKIAFROMENV"
    role = made.resolve(CredentialSpec(default_chain=True, role_arn=ROLE))  # the chain's keys assume
    assert role.access_key_id == "ASIASESSION0001" and sts.signed_with == ["AKIAFROMENV"]
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsUnavailable, match="source=default: botocore found no credentials"):
        resolver(sts).resolve(CredentialSpec(default_chain=True))


def test_a_failed_look_up_keeps_what_the_chain_found_before(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFIRST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    made = CredentialResolver(S3Config(endpoint_url="http://127.0.0.1:9", credential_refresh=1))
    credentials = made.resolve(CredentialSpec(default_chain=True))
    refreshing = credentials.refreshing()
    assert refreshing is not None
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # the source goes away...
    time.sleep(1.2)
    assert refreshing.get_frozen_credentials().access_key == "AKIAFIRST"  # ...the last keys stay
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASECOND")
    time.sleep(1.2)
    assert refreshing.get_frozen_credentials().access_key == "AKIASECOND"  # a new one is picked up


def test_refreshable_uses_the_fetched_expiry() -> None:
    fetched: list[int] = []

    def fetch() -> dict[str, str]:
        fetched.append(1)
        expiry = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"access_key": "A", "secret_key": "S", "token": "", "expiry_time": expiry}

    credentials = _refreshable(fetch, "test")
    credentials.get_frozen_credentials()
    assert len(fetched) == 1 and credentials.token is None
