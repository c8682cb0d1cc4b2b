"""The control connection's byte stream, with the seam for RFC 2228 security.

A ``ControlLayer`` sits between the socket and the line parser: ``incoming`` turns wire bytes into
plain command bytes, ``outgoing`` turns a reply into wire bytes, ``pending`` gives bytes the layer
itself must send (TLS handshake records). Clear text passes bytes through; after AUTH GSSAPI the
layer unwraps ``ENC``/``MIC`` lines and wraps every reply line separately as ``631``/``632``; after
AUTH TLS the whole stream is TLS (both in s3dsi.security.rfc2228). Command handlers never see the
difference. ``send_and_switch`` sends the last reply of the old layer and installs the new one with
no await in between, so no byte the client sends after that reply can reach the old layer.

Urgent (TCP out-of-band) bytes are kept in the stream: clients that send ``ABOR`` as urgent data
(Python's ftplib sends the whole ``ABOR\r\n`` with MSG_OOB, so its final LF is the urgent byte;
Globus marks the Telnet DM) would otherwise lose that byte, and the line would never end.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Protocol

from s3dsi.protocol.replies import Reply, encode_line


class ControlLayer(Protocol):
    def incoming(self, data: bytes) -> bytes:
        """Plain command bytes in ``data`` (ConnectionError when the layer cannot go on)."""
        ...

    def outgoing(self, lines: Sequence[str]) -> bytes:
        """Wire bytes for these reply lines (a layer may wrap each line on its own)."""
        ...

    def pending(self) -> bytes:
        """Bytes the layer has to send on its own after ``incoming`` (handshake records)."""
        ...


class ClearText:
    def incoming(self, data: bytes) -> bytes:
        return data

    def outgoing(self, lines: Sequence[str]) -> bytes:
        return b"".join(encode_line(line) + b"\r\n" for line in lines)

    def pending(self) -> bytes:
        return b""


def keep_urgent_inline(writer: asyncio.StreamWriter) -> None:
    """SO_OOBINLINE: the urgent byte stays in place in the byte stream instead of being dropped."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    except (OSError, AttributeError):
        pass  # not a TCP socket (tests, unix pipes): nothing can arrive out of band


_FLUSH_AT = 64 * 1024  # pending reply bytes written at once rather than at the end of the loop turn


class ControlStream:
    """Reads raw bytes and writes replies for one session, through its layer.

    Replies made in one turn of the event loop leave in one write (a transfer's ``112``, ``111`` and
    ``226`` are made back to back): one system call and one TCP segment instead of several, on the
    path every small file takes. Order is kept: everything goes through one buffer, flushed at the end
    of the turn, or at once when it is large or the layer is about to change.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 layer: ControlLayer | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.layer: ControlLayer = layer or ClearText()
        self._write_lock = asyncio.Lock()
        self._pending = bytearray()
        self._flush_scheduled = False
        keep_urgent_inline(writer)

    def _queue(self, data: bytes) -> bool:
        """Add ``data`` to what goes out at the end of this turn; True when it was written at once."""
        if self.writer.is_closing():
            return False
        self._pending += data
        if len(self._pending) >= _FLUSH_AT:
            self._flush()
            return True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return False

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._pending and not self.writer.is_closing():
            self.writer.write(bytes(self._pending))
        self._pending.clear()

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass

    async def read(self) -> bytes:
        """Plain command bytes; b"" at end of stream."""
        while True:
            data = await self.reader.read(65536)
            if not data:
                return b""
            plain = self.layer.incoming(data)
            own = self.layer.pending()
            if own:
                async with self._write_lock:
                    self._queue(own)
                    self._flush()
                    await self._drain()
            if plain:
                return plain

    async def send_and_switch(self, reply: Reply, layer: ControlLayer) -> None:
        """Send ``reply`` through the current layer, then use ``layer`` for everything after it."""
        async with self._write_lock:
            if self.writer.is_closing():
                return
            self._queue(self.layer.outgoing(reply.wire_lines()))
            self._flush()  # the old layer's last bytes leave before the new layer makes any
            self.layer = layer
            await self._drain()

    async def send(self, reply: Reply) -> None:
        await self.send_lines(reply.wire_lines())

    async def send_lines(self, lines: Sequence[str]) -> None:
        """Part of a reply; for replies too long to build in memory (MLSC of a large directory)."""
        async with self._write_lock:
            if self._queue(self.layer.outgoing(lines)):
                await self._drain()  # a long reply (MLSC): let the socket take it before more

    async def close(self) -> None:
        self._flush()
        if not self.writer.is_closing():
            self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (TimeoutError, ConnectionError, OSError):
            pass
