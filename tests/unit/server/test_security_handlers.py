"""AUTH/ADAT/PBSZ on a daemon in a thread (memory back end): the reference's transcript without a host
credential, a host credential that is unusable, and a GSI session end to end with the in-process
initiator (grid-mapfile login, explicit user, failed exchange, delegated credential removed)."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.security.credentials import CredentialError, parse_pem_credential
from s3dsi.security.gss import GssInitiator
from s3dsi.security.tlscontext import gsi_initiator_context
from s3dsi.security.trust import identity_of
from s3dsi.server.backends import SharedBackend
from s3dsi.server.security import SecurityServices
from s3dsi.storage.memory import MemoryBackend
from tests.support.daemon import DaemonThread
from tests.support.daemon import test_settings as make_settings
from tests.support.ftp_client import Client
from tests.support.pki import Pki

from ..protocol.transcript import load


def start(settings_env: dict[str, str] | None = None, **overrides: object) -> DaemonThread:
    settings = make_settings(**overrides)
    if settings_env is not None:
        settings = dataclasses.replace(settings, environment=settings_env)
    users = {"alice": "pw", "carol": "pw"}
    return DaemonThread(settings, SharedBackend(MemoryBackend()), users=users).start()


@pytest.fixture
def plain() -> Iterator[DaemonThread]:
    d = start({"X509_USER_CERT": "/nonexistent/hostcert.pem", "X509_USER_KEY": "/nonexistent/hostkey.pem"})
    try:
        yield d
    finally:
        d.stop()


def test_without_host_credential_as_the_reference(plain: DaemonThread) -> None:
    gt = {e.command: e.replies for e in load("raw_auth_gssapi_without_host_cred")}
    client = Client(plain.host, plain.port)
    try:
        client.send("AUTH TLS")
        assert client.read_reply().lines == gt["AUTH TLS"]  # no certificate: no FTPS either
        client.send("AUTH GSSAPI")
        reply = client.read_reply()
        assert reply.code == 530
        assert reply.lines[0] == gt["AUTH GSSAPI"][0] == "530-globus_xio: Server side credential failure"
        assert reply.lines[-1] == gt["AUTH GSSAPI"][-1] == "530 End."
        assert any("/nonexistent/hostcert.pem" in line for line in reply.lines)
        for command in ("ADAT AAAA", "PBSZ 0", "USER anonymous"):
            client.send(command)
            assert client.read_reply().lines == gt[command], command
        client.send("USER alice")
        client.read_reply()
        client.send("PASS pw")
        assert client.read_reply().code == 230  # passwords keep working
        client.send("AUTH GSSAPI")
        assert client.read_reply().lines == ["503 AUTH must come before the login."]
    finally:
        client.close()


def test_an_unusable_host_key_stops_the_start(pki: Pki, tmp_path: Path) -> None:
    key = tmp_path / "hostkey.pem"
    key.write_bytes(pki.host_key.read_bytes())
    key.chmod(0o640)
    settings = dataclasses.replace(make_settings(state_dir=str(tmp_path)), environment={
        "X509_USER_CERT": str(pki.host_cert), "X509_USER_KEY": str(key)})
    with pytest.raises(CredentialError, match="too open"):
        SecurityServices.load(settings, environ={})
    key.chmod(0o600)
    services = SecurityServices.load(settings, environ={})
    assert services.mechanisms == ("GSSAPI", "TLS")
    assert services.host_dn == "/C=XX/O=GSITest/CN=localhost"


@pytest.fixture
def gsi(pki: Pki) -> Iterator[DaemonThread]:
    d = start(pki.server_env())
    try:
        yield d
    finally:
        d.stop()


class GsiClient:
    def __init__(self, daemon: DaemonThread, proxy: Path, *, delegate: bool = True) -> None:
        data = proxy.read_bytes()
        credential = parse_pem_credential(data, data, str(proxy))
        self.context = GssInitiator(gsi_initiator_context(credential), identity_of,
                                    delegate=credential if delegate else None)
        self.client = Client(daemon.host, daemon.port)

    def authenticate(self) -> str:
        self.client.send("AUTH GSSAPI")
        assert self.client.read_reply().code == 334
        token = self.context.step(None)
        while True:
            self.client.send(f"ADAT {base64.b64encode(token).decode()}")
            reply = self.client.read_reply()
            if reply.code != 335:
                return reply.text
            token = self.context.step(base64.b64decode(reply.lines[0].split("=", 1)[1]))

    def command(self, line: str) -> list[str]:
        """Send ``line`` protected; the plain reply lines."""
        token = self.context.wrap(line.encode() + b"\r\n")
        self.client.send(f"ENC {base64.b64encode(token).decode()}")
        reply = self.client.read_reply()
        out = []
        for wire in reply.lines:
            assert wire[:4] in ("632-", "632 "), wire
            out.append(self.context.unwrap(base64.b64decode(wire[4:])).decode().rstrip("\r\n"))
        return out


def test_gsi_login_default_user_and_feat(gsi: DaemonThread, pki: Pki) -> None:
    c = GsiClient(gsi, pki.proxies["rfc"])
    try:
        assert c.authenticate() == "235 GSSAPI Authentication successful."
        assert c.command("USER :globus-mapping:") == ["331 Password required for :globus-mapping:."]
        assert c.command("PASS") == ["230 User alice logged in."]
        feat = c.command("FEAT")
        assert feat[0] == "211-Extensions supported" and feat[-1] == "211 End."
        assert " AUTH GSSAPI" in feat and " DCAU" in feat
        assert c.command("SITE WHOAMI") == ["200 alice"]
        assert c.command("PBSZ 1048576") == ["200 PBSZ=1048576"]
        assert c.command("DCAU N") == ["200 DCAU N."]
    finally:
        c.client.close()


def test_gsi_user_not_in_the_entry_is_refused(gsi: DaemonThread, pki: Pki) -> None:
    c = GsiClient(gsi, pki.proxies["rfc"], delegate=False)
    try:
        assert c.authenticate().startswith("235")
        assert c.command("USER carol")[0].startswith("331")
        assert c.command("PASS dummy")[0].startswith("530 Login incorrect.")
        assert c.command("USER bob")[0].startswith("331")
        assert c.command("PASS dummy") == ["230 User bob logged in."]
    finally:
        c.client.close()


def test_gsi_unmapped_dn_is_refused(gsi: DaemonThread, pki: Pki) -> None:
    c = GsiClient(gsi, pki.users["unmapped"].proxy)
    try:
        assert c.authenticate().startswith("235")
        c.command("USER :globus-mapping:")
        assert c.command("PASS")[0].startswith("530 ")
    finally:
        c.client.close()


def test_failed_exchange_then_commands_in_clear_again(gsi: DaemonThread, pki: Pki) -> None:
    c = GsiClient(gsi, pki.users["outside"].proxy)
    try:
        text = c.authenticate()
        assert text.startswith("530-") and "not allowed by the signing policy" in text
        c.client.send("USER alice")
        assert c.client.read_reply().code == 331
    finally:
        c.client.close()


def test_only_adat_during_the_exchange(gsi: DaemonThread) -> None:
    client = Client(gsi.host, gsi.port)
    try:
        client.send("AUTH GSSAPI")
        assert client.read_reply().code == 334
        client.send("USER alice")
        assert client.read_reply().lines == ["530 Must perform GSSAPI authentication."]
        client.send("ADAT !!!")
        assert client.read_reply().code == 501
    finally:
        client.close()


def test_delegated_credential_is_removed_when_the_session_ends(gsi: DaemonThread, pki: Pki) -> None:
    c = GsiClient(gsi, pki.proxies["rfc"])
    assert c.authenticate().startswith("235")
    assert gsi.daemon is not None
    session = next(iter(gsi.daemon.ctx.sessions))
    delegated = session.security.delegated
    assert delegated is not None
    path = Path(delegated.path)
    directory = path.parent
    assert directory.is_dir() and oct(directory.stat().st_mode & 0o777) == "0o700"
    assert c.command("QUIT") == ["221 Goodbye."]
    c.client.file.close()
    c.client.close()
    deadline = time.monotonic() + 10
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not directory.exists()
    assert not path.exists()
    with pytest.raises(RuntimeError, match="removed"):
        _ = delegated.path
