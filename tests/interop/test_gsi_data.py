"""gsiftp:// data channels with the real globus-url-copy: DCAU A (the default), N, and PROT S (-dcsafe)
and P (-dcpriv), in stream mode (-p 1) and MODE E (-p 4), up and down — the daemon as TLS server on
uploads (the client connects) and as TLS client on MODE E downloads (the daemon connects, the peer's
proxy has clientAuth only). The delegated credential authenticates the daemon's side."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, unique, write_file
from tests.interop.test_gsi import gsi, guc, url  # noqa: F401 - the module's daemon fixture
from tests.support.gridftp_server import GridFTPServer, gridftp_server, server_program
from tests.support.guc_debug import (
    Exchange,
    commands,
    parse_debug,
    perf_marker_bytes,
    range_markers,
    ranges_tile,
    replies,
)
from tests.support.pki import USER_DN, Pki
from tests.support.programs import need, need_gfal_plugins

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


@pytest.fixture(scope="module")
def gt_gsi(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GridFTPServer]:
    """The C globus-gridftp-server serving gsiftp:// with the same PKI (the DN maps to the account that
    owns its file area)."""
    if server_program() is None:
        pytest.fail("globus-gridftp-server is not installed (scripts/test installs it)")
    # its sessions run as the mapped account, which must read the trust directory: a public copy
    public = Path(tempfile.mkdtemp(prefix="s3dsi-gt-ca-"))
    try:
        public.chmod(0o755)
        shutil.copytree(pki.cert_dir, public / "certificates")
        for item in [public / "certificates", *(public / "certificates").iterdir()]:
            item.chmod(0o755 if item.is_dir() else 0o644)
        env = {**pki.server_env(), "X509_CERT_DIR": str(public / "certificates")}
        with gridftp_server(tmp_path_factory.mktemp("gridftp-gsi"), gsi=env, dn=USER_DN) as server:
            yield server
    finally:
        shutil.rmtree(public, ignore_errors=True)


def gt_url(server: GridFTPServer, path: str) -> str:
    return f"gsiftp://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize("security", ["default", "dcpriv"])
def test_third_party_with_the_c_server_both_ways(gsi: S3dsi, gt_gsi: GridFTPServer, pki: Pki,  # noqa: F811
                                                  bucket: str, security: str) -> None:
    """globus-url-copy steers both servers; each authenticates the other's data connections with the
    credential delegated to it (DCAU A: the same user on both ends)."""
    data = os.urandom(11 * 1024 * 1024 + 999)
    source = gt_gsi.write(f"src-{security}.bin", data)
    key = unique(f"tp-{security}")
    opts = [*SECURITY[security], "-p", "4"]
    guc(pki, *opts, gt_url(gt_gsi, source), url(gsi, f"/{bucket}/{key}"))  # C server -> s3dsi
    assert gsi.object_bytes(bucket, key) == data
    back = gt_gsi.path(f"back-{security}.bin")
    guc(pki, *opts, url(gsi, f"/{bucket}/{key}"), gt_url(gt_gsi, back))  # s3dsi -> C server
    assert gt_gsi.read(f"back-{security}.bin") == data


def guc_dbg(pki: Pki, *args: str) -> tuple[str, list[Exchange]]:
    proc = guc(pki, "-dbg", *args)
    return proc.stdout, parse_debug(proc.stderr)


def test_range_markers_and_perf_markers_over_protected_channels(gsi: S3dsi, pki: Pki,  # noqa: F811
                                                                 bucket: str, tmp_path: Path) -> None:
    data = os.urandom(3 * 5 * 1024 * 1024 + 12345)
    key = unique("gsi-vb")
    _, up = guc_dbg(pki, "-vb", "-p", "4", "-dcpriv", write_file(tmp_path / "s", data).as_uri(),
                    url(gsi, f"/{bucket}/{key}"))
    assert "PROT P" in commands(up)
    assert ranges_tile(range_markers(up), len(data))  # 111s through the 632-wrapped control channel
    perf = perf_marker_bytes(up)
    assert perf[0] == 0 and perf[-1] == len(data)
    assert gsi.object_bytes(bucket, key) == data


def test_fast_recursive_tree_reuses_protected_connections(gsi: S3dsi, pki: Pki, bucket: str,  # noqa: F811
                                                          tmp_path: Path) -> None:
    files = {f"d{i % 3}/f{i}.bin": os.urandom(1000 * i + 7) for i in range(9)}
    for rel, data in files.items():
        write_file(tmp_path / "tree" / rel, data)
    top = unique("gsi-fast")
    _, up = guc_dbg(pki, "-r", "-cd", "-fast", "-p", "2", "-dcpriv", (tmp_path / "tree").as_uri() + "/",
                    url(gsi, f"/{bucket}/{top}/"))
    for rel, data in files.items():
        assert gsi.object_bytes(bucket, f"{top}/{rel}") == data, rel
    assert sum(1 for r in replies(up) if r.startswith("125 ")) >= len(files) - 3  # secured once, reused
    back = tmp_path / "back"
    guc(pki, "-r", "-cd", "-fast", "-p", "2", "-dcpriv", url(gsi, f"/{bucket}/{top}/"), back.as_uri() + "/")
    got = {p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*") if p.is_file()}
    assert got == files


@pytest.mark.parametrize("security", ["default", "dcpriv"])
def test_listing_over_authenticated_data_channels(gsi: S3dsi, pki: Pki, bucket: str,  # noqa: F811
                                                  security: str) -> None:
    for key in ("l1.txt", "ldir/l2.txt"):
        gsi.moto.client().put_object(Bucket=bucket, Key=key, Body=b"x")
    out = guc(pki, *SECURITY[security], "-list", url(gsi, f"/{bucket}/")).stdout
    assert "l1.txt" in out and "ldir/" in out


def test_gfal2_with_default_dcau(gsi: S3dsi, pki: Pki, bucket: str, tmp_path: Path) -> None:  # noqa: F811
    from tests.interop.test_gfal import gfal_python  # noqa: PLC0415

    data = os.urandom(7 * 1024 * 1024 + 3)
    src = write_file(tmp_path / "g.bin", data)
    env = pki.client_env()
    env.update(GFAL_PYTHONBIN=gfal_python())

    def gfal(tool: str, *args: str) -> str:
        need_gfal_plugins(*args)
        proc = subprocess.run([need(tool), *args], capture_output=True, text=True, timeout=180, env=env,
                              check=False)
        assert proc.returncode == 0, f"{tool}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        return proc.stdout

    target = url(gsi, f"/{bucket}/gfal-dcau.bin")
    gfal("gfal-copy", src.as_uri(), target)
    assert gsi.object_bytes(bucket, "gfal-dcau.bin") == data
    gfal("gfal-copy", target, (tmp_path / "back.bin").as_uri())
    assert (tmp_path / "back.bin").read_bytes() == data
    assert "gfal-dcau.bin" in gfal("gfal-ls", url(gsi, f"/{bucket}/")).split()
    assert gfal("gfal-sum", target, "ADLER32").split()[-1] == f"{zlib.adler32(data):08x}"
