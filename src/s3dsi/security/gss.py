"""The GSI GSS-API mechanism as GCT speaks it, sans-IO: tokens in, tokens out (gsi.md §2).

A token is a run of raw TLS records. After the mutual TLS handshake come three GSI messages, all TLS
application data:

1. acceptor -> ``0x00``, only when the acceptor has nothing else to send when its handshake completes
   (always under TLS 1.3, never after a full TLS 1.2 handshake, whose Finished is still pending);
   the initiator reads and ignores it;
2. initiator -> ``'D'`` (delegate) or ``'0'``;
3. on ``'D'``: acceptor -> a DER PKCS#10 request for a fresh key the size of the peer's; initiator ->
   the DER proxy certificate it signed for that key. The delegated credential is that certificate,
   the key and the peer's chain.

``GssAcceptor`` serves the control channel (AUTH GSSAPI / ADAT); ``GssInitiator`` is its counterpart
(tests, and later a client role). After ``complete``, ``wrap``/``unwrap`` protect control lines: one
TLS record per line (``gss_wrap`` is a plain ``SSL_write``). ``step`` may generate an RSA key and
run handshake crypto: call it off the event loop.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from s3dsi.security.credentials import Credential, DelegatedCredential
from s3dsi.security.engine import SecurityContextError, TlsEngine
from s3dsi.security.proxy import issue_proxy, key_bits, new_key, proxy_info
from s3dsi.security.trust import PeerIdentity, VerificationError

Verifier = Callable[[Sequence[x509.Certificate]], PeerIdentity]
NUL, DELEGATE, NO_DELEGATION = b"\x00", b"D", b"0"
CSR_SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NULL SUBJECT NAME ENTRY")])


class GssError(SecurityContextError):
    """Authentication failed; the message is for the peer (530 reply / client error)."""


def _verified(verify: Verifier, chain: Sequence[x509.Certificate]) -> PeerIdentity:
    try:
        return verify(chain)
    except VerificationError as err:
        raise GssError(str(err)) from None


def _public_der(cert_or_key: x509.Certificate | rsa.RSAPrivateKey) -> bytes:
    key = cert_or_key.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class _Context:
    def __init__(self, engine: TlsEngine, verify: Verifier) -> None:
        self._tls = engine
        self._verify = verify
        self.state = "handshake"
        self.peer: PeerIdentity | None = None
        self.peer_sent: tuple[x509.Certificate, ...] = ()

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    def step(self, token: bytes | None = None) -> bytes:
        """Consume one input token (the initiator's first step has none), return the output token
        (possibly empty). GssError on failure."""
        try:
            return self._step(token)
        except GssError:
            raise
        except SecurityContextError as err:
            raise GssError(str(err)) from None

    def _step(self, token: bytes | None) -> bytes:
        raise NotImplementedError

    def _check_peer(self) -> PeerIdentity:
        self.peer_sent = tuple(self._tls.peer_chain())
        self.peer = _verified(self._verify, self.peer_sent)
        return self.peer

    # -- protection of control lines (RFC 2228 ENC/MIC) --------------------------------------------
    @property
    def encrypts(self) -> bool:
        return self._tls.encrypts()

    def wrap(self, plaintext: bytes) -> bytes:
        if not self.complete:
            raise GssError("the security context is not established")
        self._tls.write(plaintext)
        return self._tls.take()

    def unwrap(self, token: bytes) -> bytes:
        if not self.complete:
            raise GssError("the security context is not established")
        self._tls.feed(token)
        return self._tls.read()


class GssAcceptor(_Context):
    """Server side of AUTH GSSAPI: ``step(token) -> token`` until ``complete``."""

    def __init__(self, context: ssl.SSLContext, verify: Verifier) -> None:
        super().__init__(TlsEngine(context, server_side=True), verify)
        self.delegated: DelegatedCredential | None = None
        self._key: rsa.RSAPrivateKey | None = None

    def _step(self, token: bytes | None) -> bytes:
        if token is None:
            raise GssError("the acceptor speaks second: it needs the initiator's token")
        if self.complete:
            raise GssError("the security context is already established")
        self._tls.feed(token)
        if self.state == "handshake":
            if not self._tls.handshake():
                return self._tls.take()
            self._check_peer()
            if not self._tls.unsent:
                self._tls.write(NUL)  # TLS 1.3: nothing pending, so the NUL tells the initiator to go on
            self.state = "flag"
            return self._tls.take()
        data = self._tls.read()
        if self.state == "flag":
            return self._on_flag(data)
        return self._on_certificate(data)

    def _on_flag(self, data: bytes) -> bytes:
        if not data:
            return self._tls.take()
        flag = data[:1]
        if flag == NO_DELEGATION:
            self.state = "complete"
            return self._tls.take()
        if flag != DELEGATE:
            raise GssError("unexpected delegation flag from the client")
        assert self.peer is not None
        self._key = new_key(key_bits(self.peer.leaf.public_key()))
        request = (x509.CertificateSigningRequestBuilder().subject_name(CSR_SUBJECT)
                   .sign(self._key, hashes.SHA256()))
        self._tls.write(request.public_bytes(serialization.Encoding.DER))
        self.state = "certificate"
        return self._tls.take()

    def _on_certificate(self, data: bytes) -> bytes:
        if not data:
            return self._tls.take()
        assert self.peer is not None
        assert self._key is not None
        try:
            cert = x509.load_der_x509_certificate(data)
        except ValueError:
            raise GssError("the delegated certificate cannot be read") from None
        leaf = self.peer_sent[0]
        if _public_der(cert) != _public_der(self._key):
            raise GssError("the delegated certificate is not for the requested key")
        try:
            cert.verify_directly_issued_by(leaf)
        except (ValueError, TypeError) as err:
            raise GssError(f"the delegated certificate was not issued by the client's proxy: {err}") from None
        if proxy_info(cert) is None:
            raise GssError("the delegated certificate is not a proxy certificate")
        self.delegated = DelegatedCredential(Credential(cert, self._key, self.peer_sent))
        self._key = None
        self.state = "complete"
        return self._tls.take()

    def close(self) -> None:
        if self.delegated is not None:
            self.delegated.close()


class GssInitiator(_Context):
    """Client side: ``step(None)`` gives the first token; feed each acceptor token until ``complete``.

    ``delegate``: the credential that signs the acceptor's request (None: send ``'0'``).
    """

    def __init__(self, context: ssl.SSLContext, verify: Verifier, *, delegate: Credential | None = None,
                 limited: bool = True, server_hostname: str | None = None) -> None:
        super().__init__(TlsEngine(context, server_side=False, server_hostname=server_hostname), verify)
        self._delegate = delegate
        self._limited = limited

    def _step(self, token: bytes | None) -> bytes:
        if self.complete:
            raise GssError("the security context is already established")
        self._tls.feed(token or b"")
        if self.state == "handshake":
            if not self._tls.handshake():
                return self._tls.take()
            self._check_peer()
            out = self._tls.take()
            if out:  # TLS 1.3: our last flight goes first; the acceptor's NUL comes back
                self.state = "nul"
                return out
            return self._send_flag()
        data = self._tls.read()
        if self.state == "nul":
            if not data:
                return self._tls.take()
            return self._send_flag()
        return self._sign_request(data)

    def _send_flag(self) -> bytes:
        self._tls.write(DELEGATE if self._delegate is not None else NO_DELEGATION)
        self.state = "request" if self._delegate is not None else "complete"
        return self._tls.take()

    def _sign_request(self, data: bytes) -> bytes:
        if not data:
            return self._tls.take()
        assert self._delegate is not None
        try:
            request = x509.load_der_x509_csr(data)
        except ValueError:
            raise GssError("the delegation request cannot be read") from None
        cert = issue_proxy(self._delegate.cert, self._delegate.key, request.public_key(),
                           limited=self._limited)
        self._tls.write(cert.public_bytes(serialization.Encoding.DER))
        self.state = "complete"
        return self._tls.take()
