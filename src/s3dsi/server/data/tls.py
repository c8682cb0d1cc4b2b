"""TLS on a data connection: the handshake before a transfer, and PROT S/P records afterwards.

``handshake`` runs a security context's exchange over a connection's raw bytes before any reader is
attached (GSI DCAU: ``security.datachannel.DataChannelContext``; FTPS: ``FtpsServerHandshake``);
the CPU-heavy steps (RSA signatures, chain verification) run on a worker thread. Whatever follows
the handshake in the same segment is handed back: clear data for PROT C (the peer's first bytes
often share a segment with its last handshake record), decrypted data for PROT S/P.

``RecordLayer`` is what a ``DataConnection`` uses after the handshake for PROT S/P: ciphertext from
the socket goes into a memory BIO and ``SSLObject.read`` decrypts straight into the reader's view (a
part buffer), so protected uploads keep the zero-copy shape of clear ones apart from the decryption
itself; sends are encrypted in one ``SSLObject.write`` per chunk (OpenSSL cuts the records).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any, Protocol

from s3dsi.protocol.errors import DataChannelError
from s3dsi.security.engine import SecurityContextError, TlsEngine, describe
from s3dsi.server.data.connection import DataConnection

HANDSHAKE_TIMEOUT = 60.0
_SCRATCH = 64 * 1024


class HandshakeSteps(Protocol):
    """A security context seen as bytes in, bytes out (``DataChannelContext`` has this shape)."""

    @property
    def established(self) -> bool: ...

    def start(self) -> bytes: ...

    def receive(self, data: bytes) -> tuple[bytes, bytes]: ...


class _RawReader:
    """Collects a connection's bytes during the handshake (no transfer reader is attached yet)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.changed = asyncio.Event()
        self._scratch = memoryview(bytearray(_SCRATCH))

    def bind(self, conn: DataConnection) -> None:
        pass

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self._scratch[:nbytes]
        self.changed.set()

    def eof_received(self) -> None:
        self.eof = True
        self.changed.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.changed.set()


async def handshake(conn: DataConnection, steps: HandshakeSteps, executor: Executor, *,
                    timeout: float = HANDSHAKE_TIMEOUT) -> tuple[bytes, bytes]:
    """Run ``steps`` over ``conn`` until established. Returns the application bytes the context
    decoded from the last handshake records, and the raw bytes that arrived after them (clear data
    for PROT C, more TLS records for S/P). DataChannelError when the peer fails or goes away."""
    loop = asyncio.get_running_loop()
    raw = _RawReader()
    conn.attach(raw)  # a reader of bytes, not of a transfer
    try:
        async with asyncio.timeout(timeout):
            first = steps.start()
            if first:
                conn.write_raw(first)
            while not steps.established:
                while not raw.data and not raw.eof:
                    raw.changed.clear()
                    await raw.changed.wait()
                if not raw.data:
                    raise DataChannelError("data connection closed during its security handshake")
                data, raw.data = bytes(raw.data), bytearray()
                out, app = await loop.run_in_executor(executor, steps.receive, data)
                if out:
                    conn.write_raw(out)
            return app, bytes(raw.data)
    except TimeoutError:
        raise DataChannelError("data connection security handshake timed out") from None
    except SecurityContextError as err:
        raise DataChannelError(f"data connection security handshake failed: {err}") from None
    finally:
        conn.detach()


class FtpsServerHandshake:
    """Explicit FTPS data channel (RFC 4217), the daemon as TLS server. With ``require_reuse``, the
    client must resume the control connection's TLS session (as vsftpd's ``require_ssl_reuse``): a
    stranger who reached the port cannot complete a handshake that counts."""

    def __init__(self, context: ssl.SSLContext, *, require_reuse: bool) -> None:
        self.engine = TlsEngine(context, server_side=True)
        self.require_reuse = require_reuse
        self.established = False

    def start(self) -> bytes:
        return b""

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        engine = self.engine
        engine.feed(data)
        if not engine.handshake():
            return engine.take(), b""
        if self.require_reuse and not engine.obj.session_reused:
            raise SecurityContextError("the data connection did not resume the control connection's TLS "
                                       "session (required: a client must reuse it)")
        self.established = True
        return engine.take(), engine.read()


class RecordLayer:
    """PROT S/P on an established connection (see the module docstring)."""

    def __init__(self, engine: TlsEngine) -> None:
        self._engine = engine
        self._obj = engine.obj
        self._incoming = engine._in  # the engine's own BIO, fed without a copy
        self._read: Any = engine.obj.read  # typeshed knows only the bytes-returning form
        self.closed = False  # the peer's close_notify (or its end of stream) was read

    def feed(self, data: memoryview) -> None:
        self._incoming.write(data)  # the BIO copies it: no bytes object of our own in between

    def read_into(self, view: memoryview) -> int:
        """Decrypt into ``view``: bytes written, 0 when more ciphertext is needed, -1 at the end."""
        try:
            n = int(self._read(len(view), view))  # with a buffer: the byte count, not bytes
        except ssl.SSLWantReadError:
            return 0
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self.closed = True
            return -1
        except ssl.SSLError as err:
            raise DataChannelError(f"protected data connection failed: {describe(err)}") from None
        if n == 0:
            self.closed = True
            return -1
        return n

    def end_of_input(self) -> None:
        """The TCP stream ended: what is left in the BIO is all there will be."""
        self._engine._in.write_eof()

    def encrypt(self, parts: Sequence[bytes | memoryview]) -> bytes:
        try:
            for part in parts:
                self._obj.write(part)
        except ssl.SSLError as err:
            raise DataChannelError(f"protected data connection failed: {describe(err)}") from None
        return self._engine.take()

    def close_notify(self) -> bytes:
        try:
            self._obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        return self._engine.take()

