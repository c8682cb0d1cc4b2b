"""RFC 2228 protected control channel over an established GSS context, and explicit FTPS (RFC 4217).

Both are ``ControlLayer``s (see server/control.py): ``incoming(bytes) -> bytes`` gives plain command
bytes, ``outgoing(lines) -> bytes`` the wire form of reply lines, ``pending() -> bytes`` what the layer
itself must send (TLS handshake records).

``ProtectedControl`` (after AUTH GSSAPI): the outer stream is Telnet-framed lines; ``ENC``, ``MIC``
and ``CONF`` lines are unwrapped identically (GCT does not look at the verb either), the plaintext
keeps or gets its CRLF and loses a trailing NUL. Any other line is replaced by a sentinel line that the
protocol core answers with ``533`` (RFC 2228; GCT would fail the connection instead). A token that is
not base64 becomes a sentinel answered with ``535``; a token TLS rejects ends the connection (the
TLS state cannot recover). Each reply line is wrapped on its own (one TLS record) and sent as
``632-``/``632 `` (``631`` for a NULL cipher), as GCT's client expects.

``TlsControl`` (after AUTH TLS): the whole control stream inside TLS; replies are encrypted lines.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Sequence
from typing import Protocol

from s3dsi.protocol.lines import UNDECODABLE_LINE, UNPROTECTED_LINE, ControlLineBuffer
from s3dsi.protocol.replies import encode_line
from s3dsi.security.engine import SecurityContextError, TlsEngine

ADAT_MAX_LINE = 1024 * 1024  # ADAT and ENC lines carry certificate chains (VOMS ACs make them long)
PROTECTED_VERBS = frozenset({"ENC", "MIC", "CONF"})


class Wrapper(Protocol):
    @property
    def encrypts(self) -> bool: ...

    def wrap(self, plaintext: bytes) -> bytes: ...

    def unwrap(self, token: bytes) -> bytes: ...


class ProtectedControl:
    def __init__(self, context: Wrapper) -> None:
        self.context = context
        self._lines = ControlLineBuffer(max_line=ADAT_MAX_LINE)

    def incoming(self, data: bytes) -> bytes:
        out = bytearray()
        for line in self._lines.feed(data):
            if line.too_long:
                raise ConnectionError("protected command line too long")
            if line.verb not in PROTECTED_VERBS:
                out += UNPROTECTED_LINE
                continue
            try:
                token = base64.b64decode((line.arg or "").strip(), validate=True)
            except (binascii.Error, ValueError):
                out += UNDECODABLE_LINE
                continue
            try:
                plain = self.context.unwrap(token)
            except SecurityContextError as err:
                raise ConnectionError(f"protected command rejected: {err}") from None
            plain = plain.rstrip(b"\x00")
            if not plain:
                continue
            if not plain.endswith(b"\n"):
                plain += b"\r\n"
            out += plain
        return bytes(out)

    def outgoing(self, lines: Sequence[str]) -> bytes:
        code = "632" if self.context.encrypts else "631"
        out = bytearray()
        last = len(lines) - 1
        for index, line in enumerate(lines):
            token = self.context.wrap(encode_line(line) + b"\r\n")
            separator = " " if index == last else "-"
            out += f"{code}{separator}{base64.b64encode(token).decode('ascii')}\r\n".encode("ascii")
        return bytes(out)

    def pending(self) -> bytes:
        return b""


class TlsControl:
    def __init__(self, context: ssl.SSLContext) -> None:
        self._tls = TlsEngine(context, server_side=True)

    def incoming(self, data: bytes) -> bytes:
        self._tls.feed(data)
        try:
            if not self._tls.handshake():
                return b""
            return self._tls.read()
        except SecurityContextError as err:
            raise ConnectionError(f"TLS on the control connection failed: {err}") from None

    def outgoing(self, lines: Sequence[str]) -> bytes:
        try:
            self._tls.write(b"".join(encode_line(line) + b"\r\n" for line in lines))
        except SecurityContextError as err:
            raise ConnectionError(str(err)) from None
        return self._tls.take()

    def pending(self) -> bytes:
        return self._tls.take()
