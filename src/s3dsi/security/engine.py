"""One TLS endpoint over memory buffers (``ssl.SSLObject`` + two ``MemoryBIO``): bytes in, bytes out.

GSI tokens are raw TLS records, so every security context here (control channel, data channels,
FTPS) is this engine plus a small state machine. Nothing here blocks or touches a socket; the
handshake steps and the key generation are CPU work that callers run off the event loop.
"""

from __future__ import annotations

import _ssl
import ssl
from collections.abc import Sequence

from cryptography import x509

MAX_RECORD = 5 + 16384 + 2048  # header + largest TLS ciphertext
RECORD_TYPES = range(20, 25)  # change_cipher_spec, alert, handshake, application_data, heartbeat


class SecurityContextError(Exception):
    """The security context failed; the text is safe to show the peer (OpenSSL's reason)."""


def describe(err: ssl.SSLError) -> str:
    if isinstance(err, ssl.SSLCertVerificationError) and err.verify_message:
        return f"certificate verify failed: {err.verify_message}"
    return str(err.reason or err.strerror or err)


def split_record(buffer: bytes | bytearray) -> int:
    """Length of the complete TLS record at the start of ``buffer``; 0 when more bytes are needed.

    SecurityContextError when the bytes cannot be a TLS record.
    """
    if len(buffer) < 5:
        return 0
    if buffer[0] not in RECORD_TYPES or buffer[1] != 3:
        raise SecurityContextError("the peer did not send a TLS record")
    length = 5 + int.from_bytes(buffer[3:5], "big")
    if length > MAX_RECORD:
        raise SecurityContextError("TLS record too long")
    return length if len(buffer) >= length else 0


class TlsEngine:
    def __init__(self, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self._in, self._out, server_side=server_side,
                                    server_hostname=server_hostname)
        self.handshake_done = False
        self.peer_closed = False  # the peer sent close_notify (a clean end of a data channel)

    def feed(self, data: bytes) -> None:
        if data:
            self._in.write(data)

    def take(self) -> bytes:
        """Everything the engine has to send."""
        return self._out.read()

    @property
    def unsent(self) -> int:
        return self._out.pending

    @property
    def unread(self) -> int:
        return self._in.pending

    def handshake(self) -> bool:
        """Advance the handshake with what was fed; True once it is complete."""
        if self.handshake_done:
            return True
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as err:
            raise SecurityContextError(describe(err)) from None
        self.handshake_done = True
        return True

    def write(self, data: bytes) -> None:
        try:
            self.obj.write(data)
        except ssl.SSLError as err:
            raise SecurityContextError(describe(err)) from None

    def read(self) -> bytes:
        """All application data the fed records hold (b"" if none); after the peer's close_notify,
        what came before it, with ``peer_closed`` set."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self.obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                break
            except ssl.SSLError as err:
                raise SecurityContextError(describe(err)) from None
            if not chunk:  # SSLObject.read returns b"" (rather than raising) once close_notify arrived
                self.peer_closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def encrypts(self) -> bool:
        """Whether the cipher encrypts (ENC/632) rather than only protecting integrity (MIC/631)."""
        cipher = self.obj.cipher()
        return cipher is None or "NULL" not in cipher[0].upper()

    def peer_chain(self) -> list[x509.Certificate]:
        """The certificates the peer sent, leaf first (whatever was verified during the handshake)."""
        public = getattr(self.obj, "get_unverified_chain", None)  # Python 3.13+
        items: Sequence[object]
        if public is not None:
            items = public() or []
            return [x509.load_der_x509_certificate(bytes(item)) for item in items]
        items = self.obj._sslobj.get_unverified_chain() or []  # type: ignore[attr-defined]
        return [x509.load_der_x509_certificate(item.public_bytes(_ssl.ENCODING_DER))
                for item in items]
