"""The credential map as the daemon reads it at each login: refused when others may read it or when it
belongs to someone else, whatever the process may read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3dsi.config.settings import Settings
from s3dsi.protocol.errors import PermissionDenied
from s3dsi.server.backends import MapFileBackends, mapped_credentials
from s3dsi.storage.s3clients import S3Config, S3Credentials
from s3dsi.storage.s3credentials import CredentialResolver

ENTRY = "alice;AKIAIOSFODNN7EXAMPLE;wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"


class _Factory:
    """What MapFileBackends uses of an S3BackendFactory (static keys resolve without a network)."""

    credentials = CredentialResolver(S3Config())

    def for_user(self, credentials: S3Credentials, policy: object = None) -> tuple[str, str]:
        return credentials.access_key_id, credentials.secret_access_key


def map_file(tmp_path: Path, mode: int = 0o600) -> Path:
    directory = tmp_path / ".globus"
    directory.mkdir(mode=0o700)
    path = directory / "s3"
    path.write_text(ENTRY)
    path.chmod(mode)
    return path


def test_a_private_map_is_read(tmp_path: Path) -> None:
    path = map_file(tmp_path)
    assert mapped_credentials(str(path), "alice").access_key_id == "AKIAIOSFODNN7EXAMPLE"
    backends = MapFileBackends(Settings(s3_map_filename=str(path)), _Factory())  # type: ignore[arg-type]
    assert backends.backend_for("alice") == ("AKIAIOSFODNN7EXAMPLE",  # type: ignore[comparison-overlap]
                                             "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    with pytest.raises(PermissionDenied, match="no S3 credentials are mapped"):
        mapped_credentials(str(path), "bob")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_a_map_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = map_file(tmp_path, mode)
    backends = MapFileBackends(Settings(s3_map_filename=str(path)), _Factory())  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied) as caught:
        backends.backend_for("alice")
    assert caught.value.text.startswith("credential map unusable: ")
    assert "too open" in caught.value.text and "chmod 600" in caught.value.text
    assert "wJalr" not in caught.value.text


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_map_owned_by_someone_else_is_refused_even_for_root(tmp_path: Path) -> None:
    path = map_file(tmp_path)
    os.chown(path, 4242, 4242)
    with pytest.raises(PermissionDenied) as caught:
        mapped_credentials(str(path), "alice")
    assert "owned by uid 4242" in caught.value.text


def test_a_map_behind_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    path = map_file(tmp_path)
    link = tmp_path / ".globus" / "link"
    link.symlink_to(path)
    with pytest.raises(PermissionDenied, match="symbolic link"):
        mapped_credentials(str(link), "alice")
