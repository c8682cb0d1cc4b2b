"""Fixtures for the whole suite. Keep this file small and generic; put area-specific fixtures in the
conftest.py of that area's test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto_server import MotoS3, MotoServerProcess
from tests.support.pki import Pki, build_pki


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """A moto S3 server process on 127.0.0.1 for the whole session (``.endpoint``, ``.access_key``,
    ``.secret_key``, ``.region``, ``.client()``, ``.create_bucket()``); its log is in ``.log_path``."""
    with MotoServerProcess.start(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_bucket(moto_s3: MotoS3) -> str:
    """A fresh, uniquely named, empty bucket on the moto server (in its default region)."""
    return moto_s3.create_bucket()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The test grid PKI (tests/support/pki.py): CA with signing policy and CRL, host and user
    certificates, grid-proxy-init proxies, grid-mapfile."""
    return build_pki(tmp_path_factory.mktemp("pki"))
