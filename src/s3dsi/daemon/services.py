"""What a daemon builds from its Settings at start and again on SIGHUP: the authenticator (password
file), the back-end provider (credential map over a shared S3 client pool) and the logging set-up."""

from __future__ import annotations

import dataclasses

import botocore.session

from s3dsi.config.settings import Settings
from s3dsi.identity.auth import Authenticator
from s3dsi.identity.passwords import PasswordFile, PasswordFileError
from s3dsi.identity.pwstore import load_isolated
from s3dsi.observability.logfiles import LogOpener
from s3dsi.observability.logging import LogFileProblem, configure_logging, reconfigure_logging
from s3dsi.observability.metrics import Metrics
from s3dsi.server.backends import MapFileBackends
from s3dsi.storage.s3 import S3BackendFactory
from s3dsi.storage.s3clients import S3Config


class S3Factories:
    """The process's S3BackendFactory, kept across reloads while the S3 settings stay the same (so a
    SIGHUP does not throw away the client pool and the bucket-region cache)."""

    def __init__(self, metrics: Metrics | None = None, *,
                 session: botocore.session.Session | None = None) -> None:
        self.metrics = metrics
        self._session = session  # a botocore session that has created no client yet (pre-loaded model)
        self._config: S3Config | None = None
        self._factory: S3BackendFactory | None = None

    def factory(self, settings: Settings) -> S3BackendFactory:
        config = S3Config.from_settings(settings)
        if self._factory is None or config != self._config:
            session, self._session = self._session or botocore.session.Session(), None
            if self.metrics is not None:
                self.metrics.instrument(session)  # before any client exists: clients copy the hooks
            self._factory = S3BackendFactory(config, session=session)
            self._config = config
        return self._factory

    def map_backends(self, settings: Settings) -> MapFileBackends:
        return MapFileBackends(settings, self.factory(settings))


def authenticator_from_data(settings: Settings, path: str | None, data: bytes) -> Authenticator:
    """An Authenticator from password-file bytes read elsewhere (the root helper); PasswordFileError."""
    passwords = PasswordFile.parse(data, path) if path is not None else None
    return Authenticator(passwords, allow_anonymous=settings.allow_anonymous,
                         anonymous_user=settings.anonymous_user,
                         anonymous_names=settings.anonymous_names_allowed)


def load_authenticator(settings: Settings, owner_uid: int | None = None) -> Authenticator:
    """Authenticator.from_settings, with every failure as PasswordFileError."""
    try:
        return Authenticator.from_settings(settings, owner_uid=owner_uid)
    except ValueError as err:
        raise PasswordFileError(str(err)) from None


def load_isolated_authenticator(settings: Settings) -> Authenticator:
    """The per-session parent's Authenticator: the password file is read by a forked loader and its
    hashes kept where each session process can unmap them (identity/pwstore.py). PasswordFileError."""
    passwords = load_isolated(settings.password_file) if settings.password_file else None
    try:
        return Authenticator(passwords, allow_anonymous=settings.allow_anonymous,
                             anonymous_user=settings.anonymous_user,
                             anonymous_names=settings.anonymous_names_allowed)
    except ValueError as err:
        raise PasswordFileError(str(err)) from None


def apply_logging(settings: Settings) -> None:
    """configure_logging, except log_transfer: TransferLog writes that file in the reference's format."""
    configure_logging(dataclasses.replace(settings, log_transfer=None))


def reapply_logging(settings: Settings, opener: LogOpener | None = None) -> list[LogFileProblem]:
    """apply_logging on SIGHUP: levels and format always change; files it cannot open are reported."""
    return reconfigure_logging(dataclasses.replace(settings, log_transfer=None), opener=opener)
