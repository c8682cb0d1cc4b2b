"""Data-channel security contexts (for the data path to wire in): DCAU A/S x PROT C/S/P, both roles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509

from s3dsi.security.credentials import Credential, parse_pem_credential
from s3dsi.security.datachannel import (
    AuthorizationError,
    DataChannelContext,
    Protection,
    dcau_self,
    dcau_subject,
)
from s3dsi.security.tlscontext import gsi_acceptor_context, gsi_initiator_context
from s3dsi.security.trust import PeerIdentity, TrustStore
from tests.support.pki import USER_DN, Pki


def proxy(path: Path) -> Credential:
    data = path.read_bytes()
    return parse_pem_credential(data, data, str(path))


def pair(pki: Pki, protection: Protection, *, acceptor_cred: Credential, initiator_cred: Credential,
         max_tls12: bool = False, authorize_initiator: object = None
         ) -> tuple[DataChannelContext, DataChannelContext]:
    def verify(chain: list[x509.Certificate]) -> PeerIdentity:
        return TrustStore.load(str(pki.cert_dir)).verify(chain)

    acceptor = DataChannelContext(gsi_acceptor_context(acceptor_cred, str(pki.cert_dir), max_tls12=max_tls12),
                                  initiator=False, protection=protection, verify=verify,  # type: ignore[arg-type]
                                  authorize=dcau_self(USER_DN))
    initiator = DataChannelContext(gsi_initiator_context(initiator_cred, max_tls12=max_tls12), initiator=True,
                                   protection=protection, verify=verify,  # type: ignore[arg-type]
                                   authorize=authorize_initiator or dcau_self(USER_DN))  # type: ignore[arg-type]
    return acceptor, initiator


def establish(acceptor: DataChannelContext, initiator: DataChannelContext) -> tuple[bytes, bytes]:
    """Run the handshake like two sockets; returns the application bytes each side received meanwhile."""
    to_acceptor = initiator.start()
    got_a = got_i = b""
    for _ in range(10):
        to_initiator, data = acceptor.receive(to_acceptor)
        got_a += data
        to_acceptor, data = initiator.receive(to_initiator)
        got_i += data
        if acceptor.established and initiator.established and not to_acceptor:
            return got_a, got_i
    raise AssertionError("no progress")


@pytest.mark.parametrize("max_tls12", [False, True])
def test_prot_c_hands_back_the_clear_bytes_behind_the_last_record(pki: Pki, max_tls12: bool) -> None:
    acceptor, initiator = pair(pki, "C", acceptor_cred=proxy(pki.proxies["limited"]),
                               initiator_cred=proxy(pki.proxies["rfc"]), max_tls12=max_tls12)
    to_acceptor = initiator.start()
    payload = os.urandom(5000)
    for _ in range(10):
        to_initiator, data = acceptor.receive(to_acceptor)
        assert data == b""
        to_acceptor, data = initiator.receive(to_initiator)
        assert data == b""
        if initiator.established:
            break
    assert initiator.established
    assert not acceptor.established
    # the flag record and the first clear-text block arrive in one segment, split anywhere
    segment = to_acceptor + initiator.wrap(payload)
    assert initiator.wrap(payload) == payload  # PROT C: clear text
    out, first = acceptor.receive(segment[:len(to_acceptor) + 7])
    assert acceptor.established
    assert out == b""
    _, rest = acceptor.receive(segment[len(to_acceptor) + 7:])
    assert first + rest == payload
    assert acceptor.peer is not None
    assert acceptor.peer.dn == USER_DN
    # and the other way: the acceptor sends clear text the initiator takes as is
    assert initiator.receive(b"clear")[1] == b"clear"


def test_prot_c_bytes_split_inside_a_record_header(pki: Pki) -> None:
    acceptor, initiator = pair(pki, "C", acceptor_cred=proxy(pki.proxies["rfc"]),
                               initiator_cred=proxy(pki.proxies["two-level"]))
    stream = initiator.start()
    received = b""
    while not acceptor.established:
        replies = b""
        for i in range(0, len(stream), 3):  # three bytes at a time
            out, data = acceptor.receive(stream[i:i + 3])
            received += data
            replies += out
        stream, _ = initiator.receive(replies)
        if initiator.established and stream:
            stream += b"DATA"
    assert received == b"DATA"
    assert acceptor.receive(b"MORE")[1] == b"MORE"


@pytest.mark.parametrize("protection", ["S", "P"])
def test_prot_s_and_p_are_plain_mutual_tls(pki: Pki, protection: Protection) -> None:
    acceptor, initiator = pair(pki, protection, acceptor_cred=proxy(pki.proxies["limited"]),
                               initiator_cred=proxy(pki.proxies["rfc"]))
    assert establish(acceptor, initiator) == (b"", b"")
    assert not acceptor.gsi_exchange
    payload = os.urandom(40000)
    wire = initiator.wrap(payload)
    assert payload not in wire and wire[0] == 23
    assert acceptor.receive(wire)[1] == payload
    assert initiator.receive(acceptor.wrap(b"back"))[1] == b"back"
    last = initiator.wrap(b"last") + initiator.close_notify()
    assert acceptor.receive(last)[1] == b"last"
    assert acceptor.peer_closed


def test_dcau_a_refuses_another_identity(pki: Pki) -> None:
    acceptor, initiator = pair(pki, "C", acceptor_cred=proxy(pki.proxies["rfc"]),
                               initiator_cred=proxy(pki.users["unmapped"].proxy))
    with pytest.raises(AuthorizationError, match="DCAU A"):
        establish(acceptor, initiator)


def test_dcau_s_with_a_subject(pki: Pki) -> None:
    host = parse_pem_credential(pki.host_cert.read_bytes(), pki.host_key.read_bytes(), "host")
    acceptor, initiator = pair(pki, "C", acceptor_cred=host, initiator_cred=proxy(pki.proxies["rfc"]),
                               authorize_initiator=dcau_subject("/C=XX/O=GSITest/CN=localhost"))
    acceptor._authorize = dcau_subject(USER_DN)
    establish(acceptor, initiator)
    assert initiator.peer is not None
    assert initiator.peer.dn == "/C=XX/O=GSITest/CN=localhost"
    bad, other = pair(pki, "C", acceptor_cred=host, initiator_cred=proxy(pki.proxies["rfc"]),
                      authorize_initiator=dcau_subject("/C=XX/O=GSITest/CN=elsewhere"))
    with pytest.raises(AuthorizationError, match="DCAU S"):
        establish(bad, other)


def test_initiator_verifies_out_of_band(pki: Pki) -> None:
    """The TLS client role does not verify in TLS (CERT_NONE); the context must refuse anyway."""
    acceptor, initiator = pair(pki, "C", acceptor_cred=proxy(pki.users["untrusted"].proxy),
                               initiator_cred=proxy(pki.proxies["rfc"]))
    acceptor._authorize = lambda peer: None
    with pytest.raises(AuthorizationError.__mro__[1], match="unable to get local issuer"):
        establish(acceptor, initiator)
