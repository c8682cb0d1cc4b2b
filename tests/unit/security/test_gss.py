"""The GSS acceptor (control channel) against an in-process initiator, TLS 1.3 and 1.2."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from s3dsi.security.credentials import Credential, load_credential, parse_pem_credential
from s3dsi.security.engine import SecurityContextError
from s3dsi.security.gss import GssAcceptor, GssError, GssInitiator
from s3dsi.security.proxy import LIMITED, proxy_info
from s3dsi.security.tlscontext import gsi_acceptor_context, gsi_initiator_context
from s3dsi.security.trust import TrustStore
from tests.support.pki import USER_DN, Pki


def proxy(path: Path) -> Credential:
    data = path.read_bytes()
    return parse_pem_credential(data, data, str(path))


def run(acceptor: GssAcceptor, initiator: GssInitiator) -> list[tuple[int, int]]:
    """Drive both sides to completion; the (client, server) token sizes of every round trip."""
    rounds = []
    token = initiator.step(None)
    while True:
        reply = acceptor.step(token)
        rounds.append((len(token), len(reply)))
        if acceptor.complete and initiator.complete:
            return rounds
        token = initiator.step(reply)
        assert len(rounds) < 10


def sides(pki: Pki, client: Credential, *, delegate: bool, max_tls12: bool = False,
          client_max_tls12: bool = False) -> tuple[GssAcceptor, GssInitiator]:
    def verify(chain: list[x509.Certificate]) -> object:
        return TrustStore.load(str(pki.cert_dir)).verify(chain)

    host = load_credential(str(pki.host_cert), str(pki.host_key))
    acceptor = GssAcceptor(gsi_acceptor_context(host, str(pki.cert_dir), max_tls12=max_tls12), verify)  # type: ignore[arg-type]
    initiator = GssInitiator(gsi_initiator_context(client, max_tls12=client_max_tls12), verify,  # type: ignore[arg-type]
                             delegate=client if delegate else None)
    return acceptor, initiator


@pytest.mark.parametrize("max_tls12", [False, True])
def test_delegation_in_four_round_trips(pki: Pki, max_tls12: bool) -> None:
    client = proxy(pki.proxies["rfc"])
    acceptor, initiator = sides(pki, client, delegate=True, max_tls12=max_tls12)
    rounds = run(acceptor, initiator)
    assert len(rounds) == 4
    assert rounds[-1][1] == 0  # 235 without ADAT=
    version = acceptor._tls.obj.version()
    assert version == ("TLSv1.2" if max_tls12 else "TLSv1.3")
    if not max_tls12:
        assert rounds[1][1] == 23  # the acceptor's NUL: one app-data record (5 + 1 + 1 + 16)
    assert acceptor.peer is not None
    assert acceptor.peer.dn == USER_DN
    assert initiator.peer is not None
    assert initiator.peer.dn == "/C=XX/O=GSITest/CN=localhost"
    delegated = acceptor.delegated
    assert delegated is not None
    cred = delegated.credential
    assert cred.cert.issuer == client.cert.subject
    assert proxy_info(cred.cert) is not None
    assert proxy_info(cred.cert).language == LIMITED  # type: ignore[union-attr]  # GCT clients delegate limited
    assert cred.key.key_size == client.key.key_size  # type: ignore[union-attr]
    assert cred.chain == tuple(client.certificates)
    # the delegated credential is itself a valid proxy chain of the same identity
    identity = TrustStore.load(str(pki.cert_dir)).verify(cred.certificates)
    assert (identity.dn, identity.limited, identity.proxy_depth) == (USER_DN, True, 2)
    path = Path(delegated.path)
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert proxy(path).cert == cred.cert
    acceptor.close()
    assert not path.parent.exists()


def test_no_delegation_in_three_round_trips(pki: Pki) -> None:
    acceptor, initiator = sides(pki, proxy(pki.proxies["two-level"]), delegate=False)
    assert len(run(acceptor, initiator)) == 3
    assert acceptor.delegated is None
    assert acceptor.peer is not None
    assert acceptor.peer.proxy_depth == 2


def test_client_capped_at_tls12_against_a_tls13_server(pki: Pki) -> None:
    acceptor, initiator = sides(pki, proxy(pki.proxies["limited"]), delegate=True, client_max_tls12=True)
    assert len(run(acceptor, initiator)) == 4
    assert acceptor.peer is not None
    assert acceptor.peer.limited


def test_wrap_and_unwrap_one_record_per_line(pki: Pki) -> None:
    acceptor, initiator = sides(pki, proxy(pki.proxies["rfc"]), delegate=False)
    run(acceptor, initiator)
    assert acceptor.encrypts
    token = initiator.wrap(b"USER :globus-mapping:\r\n")
    assert token[0] == 23
    assert len(token) == 5 + int.from_bytes(token[3:5], "big")  # exactly one TLS record
    assert acceptor.unwrap(token) == b"USER :globus-mapping:\r\n"
    lines = [acceptor.wrap(b"214-a\r\n"), acceptor.wrap(b"214 b\r\n")]
    assert [initiator.unwrap(t) for t in lines] == [b"214-a\r\n", b"214 b\r\n"]
    with pytest.raises(SecurityContextError):
        acceptor.unwrap(os.urandom(40))  # garbage is refused, not decoded


@pytest.mark.parametrize(("user", "reason"), [
    ("untrusted", "certificate verify failed: unable to get local issuer certificate"),
    ("nopolicy", "Error with signing policy"),
    ("outside", "not allowed by the signing policy"),
    ("revoked", "certificate revoked"),
])
def test_refused_clients(pki: Pki, user: str, reason: str) -> None:
    acceptor, initiator = sides(pki, proxy(pki.users[user].proxy), delegate=True)
    with pytest.raises(GssError, match=reason):
        run(acceptor, initiator)
    assert acceptor.peer is None or not acceptor.complete


def test_expired_proxy_fails_in_the_handshake(pki: Pki) -> None:
    acceptor, initiator = sides(pki, proxy(pki.proxies["expired"]), delegate=True)
    with pytest.raises(SecurityContextError, match="certificate verify failed: certificate has expired"):
        run(acceptor, initiator)


def test_tokens_after_completion_are_refused(pki: Pki) -> None:
    acceptor, initiator = sides(pki, proxy(pki.proxies["rfc"]), delegate=False)
    run(acceptor, initiator)
    with pytest.raises(GssError, match="already established"):
        acceptor.step(b"")


def test_acceptor_context_settings(pki: Pki) -> None:
    host = load_credential(str(pki.host_cert), str(pki.host_key))
    context = gsi_acceptor_context(host, str(pki.cert_dir))
    assert context.num_tickets == 0
    assert context.options & ssl.OP_NO_TICKET
    assert context.verify_flags & ssl.VERIFY_ALLOW_PROXY_CERTS
    assert not context.verify_flags & ssl.VERIFY_X509_STRICT
    assert context.verify_mode == ssl.CERT_REQUIRED
