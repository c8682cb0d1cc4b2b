"""Security of one data connection (DCAU A/S with PROT C/S/P), sans-IO, for the data path to wire in.

Who is which: the side that connects is the TLS client / GSS initiator, whatever the direction of
the data (gsi.md §2.4). Tokens travel raw on the TCP stream.

* ``protection="C"`` with DCAU: the GSI handshake, then the NUL/flag exchange (acceptor ``0x00``
  when nothing else is pending, initiator ``'0'``: data channels never delegate), then the stream is
  **clear text**. The peer sends its last record and its first data bytes in one segment, so records
  are fed to TLS one at a time, and once the exchange is over whatever follows is handed back as data.
* ``protection="S"``/``"P"``: plain mutual TLS, no NUL/flag exchange; every byte afterwards is TLS
  application data (``wrap``/``receive``). Under TLS 1.3 S is encrypted as well.

Authorization (``authorize``) runs on the verified peer identity: ``dcau_self(our_dn)`` for DCAU A
(the peer's EEC DN equals ours), ``dcau_subject(dn)`` for DCAU S. The initiator's TLS context does
not verify (``CERT_NONE``, see tlscontext.py); the chain is always verified here, out of band, before
``established`` turns true.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Literal

from s3dsi.security.engine import SecurityContextError, TlsEngine, split_record
from s3dsi.security.gss import NO_DELEGATION, NUL, GssError, Verifier, _verified
from s3dsi.security.trust import PeerIdentity

Protection = Literal["C", "S", "P"]
Authorizer = Callable[[PeerIdentity], None]


class AuthorizationError(GssError):
    """The peer authenticated but is not who DCAU requires."""


def dcau_self(own_dn: str) -> Authorizer:
    """DCAU A: the peer must present the same end-entity identity as ours."""
    def check(peer: PeerIdentity) -> None:
        if peer.dn != own_dn:
            raise AuthorizationError(f"data channel peer {peer.dn} is not {own_dn} (DCAU A)")
    return check


def dcau_subject(subject: str) -> Authorizer:
    """DCAU S <subject>: the peer's end-entity identity must be ``subject``."""
    def check(peer: PeerIdentity) -> None:
        if peer.dn != subject:
            raise AuthorizationError(f"data channel peer {peer.dn} is not {subject} (DCAU S)")
    return check


class DataChannelContext:
    """``start()`` then ``receive(bytes) -> (to_send, data)`` until ``established``; then ``wrap`` to send.

    ``receive`` never loses bytes: before ``established`` it keeps what it could not use yet; after it,
    PROT C returns the bytes unchanged and PROT S/P decrypts them.
    """

    def __init__(self, context: ssl.SSLContext, *, initiator: bool, protection: Protection,
                 verify: Verifier, authorize: Authorizer, server_hostname: str | None = None) -> None:
        self.initiator = initiator
        self.protection = protection
        self._tls = TlsEngine(context, server_side=not initiator, server_hostname=server_hostname)
        self._verify = verify
        self._authorize = authorize
        self._buffer = bytearray()
        self.state = "handshake"  # -> "nul" (initiator, TLS 1.3) / "flag" (acceptor) -> "established"
        self.peer: PeerIdentity | None = None

    @property
    def established(self) -> bool:
        return self.state == "established"

    @property
    def tls(self) -> TlsEngine:
        """The TLS endpoint (a data path takes it over for PROT S/P records once established)."""
        return self._tls

    @property
    def peer_closed(self) -> bool:
        """PROT S/P: the peer ended the TLS session (close_notify): end of data on this connection."""
        return self._tls.peer_closed

    @property
    def gsi_exchange(self) -> bool:
        """The NUL/flag exchange happens only for PROT C ("SSL-compatible" mode skips it)."""
        return self.protection == "C"

    def start(self) -> bytes:
        """The first bytes to send (the ClientHello for the initiator, nothing for the acceptor)."""
        if self.initiator:
            self._tls.handshake()
            return self._tls.take()
        return b""

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Feed bytes read from the connection; returns (bytes to send back, application data)."""
        if self.established:
            if self.protection == "C":
                return b"", data
            self._tls.feed(data)
            return self._tls.take(), self._tls.read()
        self._buffer += data
        out = bytearray()
        while not self.established:
            size = split_record(self._buffer)
            if not size:
                break
            record = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._tls.feed(record)
            out += self._advance()
        if not self.established:
            return bytes(out), b""
        rest, self._buffer = bytes(self._buffer), bytearray()
        if self.protection == "C":
            return bytes(out), rest
        self._tls.feed(rest)
        return bytes(out + self._tls.take()), self._tls.read()

    def _advance(self) -> bytes:
        if self.state == "handshake":
            if not self._tls.handshake():
                return self._tls.take()
            self.peer = _verified(self._verify, self._tls.peer_chain())
            self._authorize(self.peer)
            if not self.gsi_exchange:
                self.state = "established"
                return self._tls.take()
            if self.initiator:
                out = self._tls.take()
                if out:
                    self.state = "nul"
                    return out
                return self._send_flag()
            if not self._tls.unsent:
                self._tls.write(NUL)
            self.state = "flag"
            return self._tls.take()
        data = self._tls.read()
        if not data:
            return self._tls.take()
        if self.state == "nul":
            return self._send_flag()
        if data[:1] != NO_DELEGATION:
            raise SecurityContextError("unexpected data channel flag (data channels never delegate)")
        self.state = "established"
        return self._tls.take()

    def _send_flag(self) -> bytes:
        self._tls.write(NO_DELEGATION)
        self.state = "established"
        return self._tls.take()

    def wrap(self, data: bytes) -> bytes:
        """Bytes to put on the wire for ``data``: as is for PROT C, TLS records for S/P."""
        if not self.established:
            raise SecurityContextError("the data channel security context is not established")
        if self.protection == "C":
            return data
        self._tls.write(data)
        return self._tls.take()

    def close_notify(self) -> bytes:
        """The TLS close_notify alert for S/P (nothing for C)."""
        if self.protection == "C" or not self.established:
            return b""
        try:
            self._tls.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        return self._tls.take()
