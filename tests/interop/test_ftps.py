"""Explicit FTPS (AUTH TLS, RFC 4217) with curl, lftp and ftplib against a real s3dsi daemon over moto.

The daemon uses the test PKI's host certificate for TLS and ``require_tls 1``, so a clear-text login is
refused. Data connections are clear (PROT C): PROT P is accepted and recorded, but data-channel
protection is phase 2, so a client that insists on PROT P for data is tested on login and commands
that need no data connection (PWD, SIZE, MDTM), and its listing is refused with 521.
"""

from __future__ import annotations

import ftplib
import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.security.trust import subject_hash
from tests.interop.conftest import S3dsi, need, unique, write_file
from tests.support.moto_server import MotoS3
from tests.support.pki import Pki
from tests.support.s3dsi_env import PASSWORD, USER, S3dsiConfig, client_env

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def ftps(moto_s3: MotoS3, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    root = tmp_path_factory.mktemp("s3dsi-ftps")
    config = S3dsiConfig(root, moto_s3.endpoint, moto_s3.access_key, moto_s3.secret_key,
                         gridftp_options={"require_tls": "1"}).write()
    daemon = config.start(env=pki.server_env())
    try:
        yield S3dsi(daemon, config, moto_s3)
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def ca_file(pki: Pki) -> str:
    return str(pki.cert_dir / f"{subject_hash(pki.ca.cert)}.0")


def base(ftps: S3dsi) -> str:
    return f"ftp://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{ftps.daemon.port}"


def curl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([need("curl"), "-sS", "-v", *args], capture_output=True, text=True, timeout=120,
                          env=client_env(), check=False)
    if check:
        assert proc.returncode == 0, f"curl rc={proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


def test_curl_control_channel_tls_upload_list_download(ftps: S3dsi, ca_file: str, bucket: str,
                                                       tmp_path: Path) -> None:
    data = os.urandom(6 * 1024 * 1024 + 7)
    src = write_file(tmp_path / "src", data)
    name = unique("curl")
    upload = curl("--ftp-ssl-control", "--cacert", ca_file, "-T", str(src), f"{base(ftps)}/{bucket}/{name}")
    assert "> AUTH SSL" in upload.stderr and "< 234 " in upload.stderr
    assert "PROT C" in upload.stderr or "PROT P" not in upload.stderr
    assert ftps.object_bytes(bucket, name) == data
    listing = curl("--ftp-ssl-control", "--cacert", ca_file, f"{base(ftps)}/{bucket}/").stdout
    assert name in listing
    curl("--ftp-ssl-control", "--cacert", ca_file, "-o", str(tmp_path / "back"),
         f"{base(ftps)}/{bucket}/{name}")
    assert (tmp_path / "back").read_bytes() == data


def test_curl_ssl_reqd_logs_in_with_prot_p(ftps: S3dsi, ca_file: str, bucket: str) -> None:
    ftps.moto.client().put_object(Bucket=bucket, Key="sized", Body=b"x" * 1234)
    head = curl("--ssl-reqd", "--cacert", ca_file, "-I", f"{base(ftps)}/{bucket}/sized")
    assert "Content-Length: 1234" in head.stdout
    assert "< 200 Protection level set to P." in head.stderr
    listing = curl("--ssl-reqd", "--cacert", ca_file, f"{base(ftps)}/{bucket}/", check=False)
    assert listing.returncode != 0
    assert "< 521 " in listing.stderr  # data-channel protection is phase 2


def test_clear_text_login_is_refused_with_require_tls(ftps: S3dsi, bucket: str) -> None:
    refused = curl(f"{base(ftps)}/{bucket}/", check=False)
    assert refused.returncode != 0
    assert "< 530 Login refused" in refused.stderr
    assert "PASS" not in refused.stderr  # the password never crossed in clear text
    client = ftplib.FTP()
    client.connect("127.0.0.1", ftps.daemon.port, timeout=30)
    try:
        with pytest.raises(ftplib.error_perm, match=r"530 .*AUTH TLS"):
            client.login(USER, PASSWORD)
    finally:
        client.close()


def test_lftp_with_ssl_force(ftps: S3dsi, ca_file: str, bucket: str, tmp_path: Path) -> None:
    data = b"lftp over ftps\n" * 5000
    ftps.moto.client().put_object(Bucket=bucket, Key="lf.txt", Body=data)
    script = (f"set ftp:ssl-force true; set ftp:ssl-protect-data false; set ftp:ssl-protect-list false; "
              f"set ssl:ca-file {ca_file}; set net:max-retries 1; "
              f"open -u {USER},'{PASSWORD}' ftp://127.0.0.1:{ftps.daemon.port}; "
              f"cls /{bucket}/; get /{bucket}/lf.txt -o {tmp_path}/lf.txt; bye")
    proc = subprocess.run([need("lftp"), "-d", "-c", script], capture_output=True, text=True, timeout=120,
                          env=client_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lf.txt" in proc.stdout
    assert "AUTH TLS" in proc.stderr
    assert (tmp_path / "lf.txt").read_bytes() == data


def test_ftplib_ftp_tls(ftps: S3dsi, ca_file: str, bucket: str) -> None:
    client = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=ca_file))
    client.connect("127.0.0.1", ftps.daemon.port, timeout=30)
    try:
        client.login(USER, PASSWORD)  # AUTH TLS first (ftplib does it in login)
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sendcmd("FEAT").count("AUTH TLS") == 1
        data = os.urandom(300_000)
        import io  # noqa: PLC0415
        client.storbinary(f"STOR /{bucket}/tls.bin", io.BytesIO(data))
        assert ftps.object_bytes(bucket, "tls.bin") == data
        assert "tls.bin" in client.nlst(f"/{bucket}")
        client.prot_p()
        assert client.sendcmd(f"SIZE /{bucket}/tls.bin") == "213 300000"
        with pytest.raises(ftplib.error_perm, match="521"):
            client.nlst(f"/{bucket}")
        with pytest.raises(ftplib.error_perm, match="534"):
            client.sendcmd("CCC")
        client.prot_c()
        assert "tls.bin" in client.nlst(f"/{bucket}")
    finally:
        client.close()
