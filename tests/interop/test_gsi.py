"""gsiftp:// with the real globus-url-copy (and gfal2) against a real s3dsi daemon over moto.

The daemon gets the test PKI through the environment only (X509_USER_CERT/KEY, X509_CERT_DIR, GRIDMAP);
nothing under /etc/grid-security is used. Data channels are clear (``-nodcau``: DCAU is phase 2 and
s3dsi keeps it out of FEAT, so the client also assumes DCAU N). Every login delegates a credential (the
client always asks to), which the daemon logs.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.security.credentials import parse_pem_credential
from s3dsi.security.gss import GssInitiator
from s3dsi.security.tlscontext import gsi_initiator_context
from s3dsi.security.trust import identity_of
from tests.interop.conftest import S3dsi, unique, write_file
from tests.support.gridftp_server import _children as children_of
from tests.support.gridftp_server import server_program
from tests.support.moto_server import MotoS3, free_port
from tests.support.pki import MAPPED_USERS, USER_DN, Pki
from tests.support.programs import need
from tests.support.s3dsi_env import S3dsiConfig

pytestmark = pytest.mark.interop


def _gsi_daemon(moto_s3: MotoS3, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    root = tmp_path_factory.mktemp("s3dsi-gsi")
    config = S3dsiConfig(root, moto_s3.endpoint, moto_s3.access_key, moto_s3.secret_key,
                         users={name: f"pw-{name}" for name in (*MAPPED_USERS, "carol")}).write()
    daemon = config.start(env=pki.server_env())
    try:
        yield S3dsi(daemon, config, moto_s3)
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def gsi(moto_s3: MotoS3, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    """The module's daemon, for logins that succeed."""
    yield from _gsi_daemon(moto_s3, pki, tmp_path_factory)


@pytest.fixture
def gsi_refusing(moto_s3: MotoS3, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3dsi]:
    """A daemon of its own for a test whose login fails on purpose: a refused GSI login counts as a
    failed login for 127.0.0.1, and the login throttle would make every later login of the module's
    daemon wait (0.5, 1, 2 ... 16 s), right or wrong, as it is meant to."""
    yield from _gsi_daemon(moto_s3, pki, tmp_path_factory)


def url(gsi: S3dsi, path: str, user: str | None = None) -> str:
    at = f"{user}@" if user else ""
    return f"gsiftp://{at}127.0.0.1:{gsi.daemon.port}{path}"


def guc(pki: Pki, *args: str, proxy: Path | None = None, check: bool = True,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = pki.client_env(proxy)
    env.update(extra_env or {})
    proc = subprocess.run([need("globus-url-copy"), *args], capture_output=True, text=True, timeout=120,
                          env=env, check=False)
    if check:
        assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.parametrize("streams", ["1", "4"])
def test_upload_and_download_with_delegation(gsi: S3dsi, pki: Pki, bucket: str, tmp_path: Path,
                                             streams: str) -> None:
    data = os.urandom(7 * 1024 * 1024 + 123)
    src = write_file(tmp_path / "src", data)
    name = unique("gsi")
    guc(pki, "-nodcau", "-p", streams, f"file://{src}", url(gsi, f"/{bucket}/{name}"))
    assert gsi.object_bytes(bucket, name) == data
    guc(pki, "-nodcau", "-p", streams, url(gsi, f"/{bucket}/{name}"), f"file://{tmp_path}/back")
    assert (tmp_path / "back").read_bytes() == data
    log = gsi.daemon.log_text()
    assert f'dn="{USER_DN}"' in log
    assert "delegated=true" in log
    assert "user=alice ftp_user=:globus-mapping:" in log


def test_listing(gsi: S3dsi, pki: Pki, bucket: str) -> None:
    client = gsi.moto.client()
    for key in ("a.txt", "dir/b.txt"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    out = guc(pki, "-nodcau", "-list", url(gsi, f"/{bucket}/")).stdout
    assert "a.txt" in out
    assert "dir/" in out


@pytest.mark.parametrize("kind", ["limited", "two-level"])
def test_limited_and_two_level_proxies(gsi: S3dsi, pki: Pki, bucket: str, kind: str) -> None:
    gsi.moto.client().put_object(Bucket=bucket, Key="k", Body=b"hello")
    assert "k" in guc(pki, "-nodcau", "-list", url(gsi, f"/{bucket}/"), proxy=pki.proxies[kind]).stdout


def test_capped_at_tls12_by_the_client(gsi: S3dsi, pki: Pki, bucket: str) -> None:
    gsi.moto.client().put_object(Bucket=bucket, Key="k12", Body=b"hello")
    out = guc(pki, "-nodcau", "-list", url(gsi, f"/{bucket}/"),
              extra_env={"GLOBUS_GSSAPI_MAX_TLS_PROTOCOL": "TLS1_2_VERSION"}).stdout
    assert "k12" in out


def test_explicit_user_only_when_the_grid_mapfile_lists_it(gsi: S3dsi, pki: Pki, bucket: str) -> None:
    gsi.moto.client().put_object(Bucket=bucket, Key="k", Body=b"hello")
    assert "k" in guc(pki, "-nodcau", "-list", url(gsi, f"/{bucket}/", user="bob")).stdout
    assert "user=bob ftp_user=bob" in gsi.daemon.log_text()
    refused = guc(pki, "-nodcau", "-list", url(gsi, f"/{bucket}/", user="carol"), check=False)
    assert refused.returncode != 0
    assert "530" in refused.stderr + refused.stdout


@pytest.mark.parametrize(("who", "message"), [
    ("unmapped", "530"),
    ("untrusted", "unable to get local issuer certificate"),
    ("nopolicy", "signing policy"),
    ("outside", "not allowed by the signing policy"),
    ("revoked", "certificate revoked"),
])
def test_refused_identities(gsi_refusing: S3dsi, pki: Pki, bucket: str, tmp_path: Path, who: str,
                            message: str) -> None:
    gsi = gsi_refusing
    proxy = pki.users[who].proxy
    src = write_file(tmp_path / "src", b"must not arrive")
    name = unique("refused")
    proc = guc(pki, "-nodcau", f"file://{src}", url(gsi, f"/{bucket}/{name}"), proxy=proxy, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout, proc.stderr
    assert name not in gsi.keys(bucket)


def _control(sock: socket.socket, line: str) -> str:
    sock.sendall(line.encode() + b"\r\n")
    reply = b""
    while True:
        reply += sock.recv(65536)
        lines = reply.decode().split("\r\n")
        if len(lines) > 1 and any(len(x) > 3 and x[3] == " " and x[:3].isdigit() for x in lines[:-1]):
            return reply.decode()


def test_expired_proxy_is_refused_by_the_daemon_with_the_verify_error(gsi_refusing: S3dsi, pki: Pki) -> None:
    """globus-url-copy will not even send an expired proxy, so a GSS initiator of our own does."""
    gsi = gsi_refusing
    data = pki.proxies["expired"].read_bytes()
    credential = parse_pem_credential(data, data, "expired")
    initiator = GssInitiator(gsi_initiator_context(credential), identity_of)
    with socket.create_connection(gsi.address, timeout=30) as sock:
        assert sock.recv(1000).startswith(b"220")
        assert _control(sock, "AUTH GSSAPI").startswith("334 ")
        token = initiator.step(None)
        reply = _control(sock, f"ADAT {base64.b64encode(token).decode()}")
        assert reply.startswith("335 ADAT=")
        token = initiator.step(base64.b64decode(reply.split("=", 1)[1].strip()))
        reply = _control(sock, f"ADAT {base64.b64encode(token).decode()}")
        assert reply.startswith("530-")
        assert "certificate verify failed: certificate has expired" in reply
        assert reply.rstrip().endswith("530 End.")
        # the session goes on: a password login still works afterwards
        assert _control(sock, "USER carol").startswith("331")
        assert _control(sock, "PASS pw-carol").startswith("230")


def test_unprotected_command_after_gssapi_gets_533(gsi: S3dsi, pki: Pki) -> None:
    data = pki.proxies["rfc"].read_bytes()
    credential = parse_pem_credential(data, data, "rfc")
    initiator = GssInitiator(gsi_initiator_context(credential), identity_of,
                             delegate=credential)
    with socket.create_connection(gsi.address, timeout=30) as sock:
        assert sock.recv(1000).startswith(b"220")
        assert _control(sock, "AUTH GSSAPI").startswith("334 ")
        token = initiator.step(None)
        while True:
            reply = _control(sock, f"ADAT {base64.b64encode(token).decode()}")
            if reply.startswith("235"):
                break
            assert reply.startswith("335 ADAT="), reply
            token = initiator.step(base64.b64decode(reply.split("=", 1)[1].strip()))

        def protected_reply(line: str) -> bytes:
            reply = _control(sock, line)
            assert reply.startswith("632 "), reply  # replies are always wrapped, refusals too
            return initiator.unwrap(base64.b64decode(reply[4:].strip()))

        assert protected_reply("USER :globus-mapping:").startswith(b"533 Command protection level denied")
        wrapped = base64.b64encode(initiator.wrap(b"USER :globus-mapping:\r\n")).decode()
        assert protected_reply(f"ENC {wrapped}") == b"331 Password required for :globus-mapping:.\r\n"
        wrapped = base64.b64encode(initiator.wrap(b"PASS\r\n")).decode()
        assert protected_reply(f"MIC {wrapped}") == b"230 User alice logged in.\r\n"
        assert protected_reply("PWD").startswith(b"533 ")


def test_gfal2_ls_and_sum(gsi: S3dsi, pki: Pki, bucket: str) -> None:
    from tests.interop.test_gfal import gfal_python  # noqa: PLC0415

    data = b"gfal over gsiftp\n" * 1000
    gsi.moto.client().put_object(Bucket=bucket, Key="g.txt", Body=data)
    env = pki.client_env()
    env.update(GFAL_PYTHONBIN=gfal_python())
    option = ["-D", "GRIDFTP PLUGIN:DCAU=false"]
    ls = subprocess.run([need("gfal-ls"), *option, url(gsi, f"/{bucket}/")],
                        capture_output=True, text=True, timeout=120, env=env, check=False)
    assert ls.returncode == 0, ls.stderr
    assert "g.txt" in ls.stdout.split()
    import zlib  # noqa: PLC0415
    total = subprocess.run([need("gfal-sum"), *option, url(gsi, f"/{bucket}/g.txt"),
                            "ADLER32"], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert total.returncode == 0, total.stderr
    assert total.stdout.split()[-1] == f"{zlib.adler32(data):08x}"


def test_compare_logins_with_the_c_server(pki: Pki, tmp_path: Path) -> None:
    """The reference server accepts and refuses the same proxies (mapping the DN to this account)."""
    program = server_program()
    if program is None:
        pytest.fail("globus-gridftp-server is not installed (scripts/test installs it)")
    import pwd  # noqa: PLC0415

    me = pwd.getpwuid(os.geteuid()).pw_name
    gridmap = tmp_path / "grid-mapfile"
    gridmap.write_text(f'"{USER_DN}" {me}\n')
    (tmp_path / "empty.conf").write_text("")
    (tmp_path / "empty.d").mkdir()
    port = free_port()
    env = {**os.environ, **pki.server_env(), "GRIDMAP": str(gridmap)}
    server = subprocess.Popen([program, "-p", str(port), "-control-interface", "127.0.0.1", "-data-interface",
                               "127.0.0.1", "-c", str(tmp_path / "empty.conf"),
                               "-C", str(tmp_path / "empty.d"),
                               "-allow-root", "-log-level", "all", "-logfile", str(tmp_path / "gt.log")],
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    try:
        import time  # noqa: PLC0415

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                    if sock.recv(100).startswith(b"220"):
                        break
            except OSError:
                time.sleep(0.1)
        outcomes = {}
        for kind, proxy in {**pki.proxies, **{u: pki.users[u].proxy for u in
                                               ("unmapped", "untrusted", "nopolicy", "outside")}}.items():
            proc = guc(pki, "-nodcau", "-list", f"gsiftp://127.0.0.1:{port}/tmp/", proxy=proxy, check=False)
            outcomes[kind] = proc.returncode == 0
        assert outcomes == {"rfc": True, "limited": True, "two-level": True, "expired": False,
                            "unmapped": False, "untrusted": False, "nopolicy": False, "outside": False}
    finally:
        for child in children_of(server.pid):  # one per control connection, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        server.terminate()
        server.wait(10)
