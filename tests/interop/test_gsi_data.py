"""gsiftp:// data channels with the real globus-url-copy: DCAU A (the default), N, and PROT S (-dcsafe)
and P (-dcpriv), in stream mode (-p 1) and MODE E (-p 4), up and down — the daemon as TLS server on
uploads (the client connects) and as TLS client on MODE E downloads (the daemon connects, the peer's
proxy has clientAuth only). The delegated credential authenticates the daemon's side."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, unique, write_file
from tests.interop.test_gsi import gsi, guc, url  # noqa: F401 - the module's daemon fixture
from tests.support.pki import Pki

pytestmark = pytest.mark.interop

SECURITY = {"default": [], "nodcau": ["-nodcau"], "dcsafe": ["-dcsafe"], "dcpriv": ["-dcpriv"]}


@pytest.mark.parametrize("streams", ["1", "4"])
@pytest.mark.parametrize("security", list(SECURITY))
def test_matrix(gsi: S3dsi, pki: Pki, bucket: str, tmp_path: Path, streams: str,  # noqa: F811
                security: str) -> None:
    data = os.urandom(6 * 1024 * 1024 + 4321)
    src = write_file(tmp_path / "src", data)
    name = unique(f"m-{security}-p{streams}")
    opts = [*SECURITY[security], "-p", streams]
    guc(pki, *opts, f"file://{src}", url(gsi, f"/{bucket}/{name}"))
    assert gsi.object_bytes(bucket, name) == data
    guc(pki, *opts, url(gsi, f"/{bucket}/{name}"), f"file://{tmp_path}/back")
    assert (tmp_path / "back").read_bytes() == data
