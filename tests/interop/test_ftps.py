"""Explicit FTPS (AUTH TLS, RFC 4217) with curl, lftp and ftplib against a real s3dsi daemon over moto.

The daemon uses the test PKI's host certificate for TLS and ``require_tls 1``, so a clear-text login is
refused. Data connections follow PROT: C clear, P TLS with the daemon as TLS server, accepted only from
the control connection's peer and only when they resume the control connection's TLS session (curl
and lftp do; Python's ftplib needs the usual five-line subclass, and without it is refused with a
clear reply). With ``encrypt_data 1`` every transfer and listing needs PROT P. MODE E over FTPS (no
stock client does it) is driven by hand, both directions.
"""

from __future__ import annotations

import ftplib
import io
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.security.trust import subject_hash
from tests.interop.conftest import S3dsi, unique, write_file
from tests.support.ftp_client import recv_exact
from tests.support.moto_server import MotoS3
from tests.support.pki import Pki
from tests.support.programs import need
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


def test_curl_ssl_reqd_upload_list_download_with_prot_p(ftps: S3dsi, ca_file: str, bucket: str,
                                                        tmp_path: Path) -> None:
    """Passive only: Debian 12's curl 7.88.1 skips TLS on active-mode data connections (a regression
    of its connection filters, fixed in curl 8.0), which the daemon rightly refuses; active PROT P is
    shown with ftplib below."""
    data = os.urandom(6 * 1024 * 1024 + 11)
    src = write_file(tmp_path / "src", data)
    name = unique("curlp")
    mode: list[str] = []
    up = curl("--ssl-reqd", "--cacert", ca_file, *mode, "-T", str(src), f"{base(ftps)}/{bucket}/{name}")
    assert "< 200 Protection level set to P." in up.stderr
    assert ftps.object_bytes(bucket, name) == data
    assert name in curl("--ssl-reqd", "--cacert", ca_file, *mode, f"{base(ftps)}/{bucket}/").stdout
    curl("--ssl-reqd", "--cacert", ca_file, *mode, "-o", str(tmp_path / "back"),
         f"{base(ftps)}/{bucket}/{name}")
    assert (tmp_path / "back").read_bytes() == data


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
    up = write_file(tmp_path / "up.bin", os.urandom(3 * 1024 * 1024 + 5))
    script = (f"set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; "
              f"set ssl:ca-file {ca_file}; set net:max-retries 1; "
              f"open -u {USER},'{PASSWORD}' ftp://127.0.0.1:{ftps.daemon.port}; "
              f"cls /{bucket}/; get /{bucket}/lf.txt -o {tmp_path}/lf.txt; "
              f"put {up} -o /{bucket}/lftp-up.bin; bye")
    proc = subprocess.run([need("lftp"), "-d", "-c", script], capture_output=True, text=True, timeout=120,
                          env=client_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lf.txt" in proc.stdout
    assert "AUTH TLS" in proc.stderr and "PROT P" in proc.stderr
    assert (tmp_path / "lf.txt").read_bytes() == data
    assert ftps.object_bytes(bucket, "lftp-up.bin") == up.read_bytes()


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session (RFC 4217 §10.2),
    as curl and lftp do; stock ftplib does not."""

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)  # type: ignore[attr-defined]
        return conn, size


def tls_client(ftps: S3dsi, ca_file: str, cls: type[ftplib.FTP_TLS] = ReusingFTP_TLS) -> ftplib.FTP_TLS:
    client = cls(context=ssl.create_default_context(cafile=ca_file))
    client.connect("127.0.0.1", ftps.daemon.port, timeout=30)
    client.login(USER, PASSWORD)  # AUTH TLS first (ftplib does it in login)
    return client


def test_ftplib_ftp_tls(ftps: S3dsi, ca_file: str, bucket: str) -> None:
    client = tls_client(ftps, ca_file)
    try:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sendcmd("FEAT").count("AUTH TLS") == 1
        data = os.urandom(300_000)
        client.storbinary(f"STOR /{bucket}/tls.bin", io.BytesIO(data))  # PROT C
        assert ftps.object_bytes(bucket, "tls.bin") == data
        client.prot_p()
        private = os.urandom(2 * 1024 * 1024 + 3)
        client.storbinary(f"STOR /{bucket}/private.bin", io.BytesIO(private))
        assert ftps.object_bytes(bucket, "private.bin") == private
        assert {"tls.bin", "private.bin"} <= set(client.nlst(f"/{bucket}"))
        got = bytearray()
        client.retrbinary(f"RETR /{bucket}/private.bin", got.extend)
        assert bytes(got) == private
        client.set_pasv(False)  # active: the daemon connects, and is the TLS server all the same
        got = bytearray()
        client.retrbinary(f"RETR /{bucket}/private.bin", got.extend)
        assert bytes(got) == private
        client.storbinary(f"STOR /{bucket}/active.bin", io.BytesIO(private))
        assert ftps.object_bytes(bucket, "active.bin") == private
        client.set_pasv(True)
        with pytest.raises(ftplib.error_perm, match="534"):
            client.sendcmd("CCC")
        client.prot_c()
        assert "tls.bin" in client.nlst(f"/{bucket}")
    finally:
        client.close()


def test_a_data_connection_that_does_not_resume_the_session_is_refused(ftps: S3dsi, ca_file: str,
                                                                     bucket: str) -> None:
    """Stock ftplib opens a fresh TLS session per data connection: refused, with the reason, and the
    session goes on."""
    ftps.moto.client().put_object(Bucket=bucket, Key="noreuse", Body=b"secret" * 1000)
    client = tls_client(ftps, ca_file, ftplib.FTP_TLS)
    try:
        client.prot_p()
        received: list[bytes] = []
        with pytest.raises((ssl.SSLError, OSError)):  # the handshake is cut off
            client.retrbinary(f"RETR /{bucket}/noreuse", received.append)
        with pytest.raises(ftplib.error_temp, match="did not resume the control connection's TLS session"):
            client.getresp()
        assert received == []
        client.prot_c()
        assert client.sendcmd("NOOP").startswith("200")
    finally:
        client.close()


def test_a_stranger_cannot_take_a_prot_p_data_port(ftps: S3dsi, ca_file: str, bucket: str) -> None:
    ftps.moto.client().put_object(Bucket=bucket, Key="victim", Body=b"v" * 100_000)
    client = tls_client(ftps, ca_file)
    try:
        client.prot_p()
        client.voidcmd("TYPE I")
        host, port = ftplib.parse227(client.sendcmd("PASV"))
        thief = socket.socket()
        thief.bind(("127.0.0.2", 0))
        thief.connect((host, port))  # first, from another address: closed before any handshake
        thief.settimeout(10)
        client.putcmd(f"RETR /{bucket}/victim")
        assert thief.recv(100) == b""
        conn = client.context.wrap_socket(socket.create_connection((host, port), timeout=30),
                                          server_hostname="127.0.0.1", session=client.sock.session)
        assert client.getresp().startswith("150")
        received = bytearray()
        while chunk := conn.recv(65536):
            received += chunk
        conn.close()
        assert client.voidresp().startswith("226")
        assert bytes(received) == b"v" * 100_000
        thief.close()
    finally:
        client.close()


@pytest.fixture(scope="module")
def ftps_private(moto_s3: MotoS3, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    root = tmp_path_factory.mktemp("s3dsi-ftps-private")
    config = S3dsiConfig(root, moto_s3.endpoint, moto_s3.access_key, moto_s3.secret_key,
                         gridftp_options={"require_tls": "1", "encrypt_data": "1"}).write()
    daemon = config.start(env=pki.server_env())
    try:
        yield S3dsi(daemon, config, moto_s3)
    finally:
        daemon.stop()


def test_encrypt_data_refuses_clear_data_channels(ftps_private: S3dsi, ca_file: str, bucket: str) -> None:
    client = tls_client(ftps_private, ca_file)
    try:
        with pytest.raises(ftplib.error_perm, match=r"521 .*PROT P"):
            client.nlst(f"/{bucket}")
        client.prot_p()
        client.storbinary(f"STOR /{bucket}/enc.bin", io.BytesIO(b"encrypted" * 1000))
        assert ftps_private.object_bytes(bucket, "enc.bin") == b"encrypted" * 1000
    finally:
        client.close()


def _mode_e_block(offset: int, payload: bytes, descriptor: int = 0) -> bytes:
    header = descriptor.to_bytes(1, "big") + len(payload).to_bytes(8, "big") + offset.to_bytes(8, "big")
    return header + payload


def test_mode_e_over_prot_p_both_directions(ftps: S3dsi, ca_file: str, bucket: str) -> None:
    """Four TLS data connections resuming the control session: an upload (we connect) and a download
    (the daemon connects to our PORT listener, and is still the TLS server, RFC 4217 §7)."""
    data = os.urandom(12 * 1024 * 1024 + 77)
    client = tls_client(ftps, ca_file)
    try:
        client.prot_p()
        client.voidcmd("TYPE I")
        client.voidcmd("MODE E")
        host, port = ftplib.parse227(client.sendcmd("PASV"))
        client.putcmd(f"STOR /{bucket}/modee.bin")
        conns = [client.context.wrap_socket(socket.create_connection((host, port), timeout=30),
                                            server_hostname="127.0.0.1", session=client.sock.session)
                 for _ in range(4)]
        assert client.getresp().startswith("150")
        step = 256 * 1024
        for n, offset in enumerate(range(0, len(data), step)):
            conns[n % 4].sendall(_mode_e_block(offset, data[offset:offset + step]))
        conns[0].sendall(_mode_e_block(0, b"", 0x48)[:9] + (4).to_bytes(8, "big"))  # EOF|EOD, 4 EODs
        for conn in conns[1:]:
            conn.sendall(_mode_e_block(0, b"", 0x08))
        while (reply := client.getresp()).startswith("1"):
            pass
        assert reply.startswith("226"), reply
        assert ftps.object_bytes(bucket, "modee.bin") == data

        listener = socket.create_server(("127.0.0.1", 0))
        lport = listener.getsockname()[1]
        client.sendcmd("OPTS RETR Parallelism=4,4,4;")
        client.sendcmd(f"PORT 127,0,0,1,{lport // 256},{lport % 256}")
        client.putcmd(f"RETR /{bucket}/modee.bin")
        received = bytearray(len(data))
        accepted: list[ssl.SSLSocket] = []
        eods: list[int] = []
        listener.settimeout(30)

        def stream() -> None:  # the daemon opens all four before it sends: handshake them at once
            raw, _ = listener.accept()
            tls = client.context.wrap_socket(raw, server_hostname="127.0.0.1", session=client.sock.session)
            accepted.append(tls)
            while True:
                header = recv_exact(tls, 17)
                descriptor, count = header[0], int.from_bytes(header[1:9], "big")
                offset = int.from_bytes(header[9:17], "big")
                if count and not descriptor & 0x40:
                    received[offset:offset + count] = recv_exact(tls, count)
                if descriptor & 0x08:
                    eods.append(1)
                    return

        readers = [threading.Thread(target=stream) for _ in range(4)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(60)
        assert len(eods) == 4
        while (reply := client.getresp()).startswith("1"):
            pass
        assert reply.startswith("226"), reply
        assert bytes(received) == data
        for conn in (*conns, *accepted):
            conn.close()
        listener.close()
    finally:
        client.close()
