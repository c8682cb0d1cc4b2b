"""One TCP data connection as an asyncio BufferedProtocol.

Receiving is zero-copy: an attached ``ConnectionReader`` hands out views into part buffers and the
kernel fills them (recv_into). Sending uses write-buffer limits of zero, so that ``drain()`` returns only
once every byte has left the transport's buffer: callers may then hand the memory back to the pool
(uvloop keeps references to written buffers instead of copying them).

Bytes (and an EOF) that arrive while no reader is attached are held and handed to the next reader:
uvloop starts reading right after ``connection_made`` whatever that callback asked for, so a client
that sends as soon as it has connected (delayed passive, pipelined STOR) can beat ``attach``.

With PROT S/P (``use_records``) the socket's bytes are TLS records: they go into the record layer's
memory BIO and are decrypted straight into the reader's views; sends are encrypted first. A peer's
close_notify (answered with ours) or its end of stream is the reader's end of file.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from s3dsi.protocol.errors import DataChannelError

_SCRATCH_SIZE = 64 * 1024


class ConnectionReader(Protocol):
    """Consumes the bytes of one data connection for one transfer."""

    def bind(self, conn: DataConnection) -> None: ...

    def get_buffer(self, sizehint: int) -> memoryview: ...

    def buffer_updated(self, nbytes: int) -> None: ...

    def eof_received(self) -> None: ...

    def connection_lost(self, exc: BaseException | None) -> None: ...


class Records(Protocol):
    """TLS records on an established connection (``server.data.tls.RecordLayer``)."""

    def feed(self, data: memoryview) -> None: ...

    def read_into(self, view: memoryview) -> int: ...

    def end_of_input(self) -> None: ...

    def encrypt(self, parts: Sequence[bytes | memoryview]) -> bytes: ...

    def close_notify(self) -> bytes: ...


class DataConnection(asyncio.BufferedProtocol):
    def __init__(self, on_made: Callable[[DataConnection], None] | None = None) -> None:
        self._on_made = on_made
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self._reader: ConnectionReader | None = None
        self._reading_paused = False  # what we want; the transport follows in _apply_reading
        self._early = bytearray()  # bytes that came with no reader attached
        self._early_eof = False
        self._scratch: bytearray | None = None
        self._feeding = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.eof = False  # peer half-closed
        self.reusable = True  # false once a CLOSE descriptor or an error was seen
        self._records: Records | None = None  # PROT S/P
        self._records_ended = False
        self._decrypting = False
        self.secured = False  # a security handshake authenticated this connection

    # -- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.set_write_buffer_limits(high=0, low=0)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (str(peer[0]), int(peer[1]))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if self._reader is None:
            self.pause_reading()  # holds on asyncio; uvloop resumes after this returns (see get_buffer)
        if self._on_made is not None:
            self._on_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._reader is None or self._early or self._records is not None:
            if self._scratch is None:
                self._scratch = bytearray(_SCRATCH_SIZE)
            return memoryview(self._scratch)
        return self._reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if self._records is not None:
            assert self._scratch is not None
            self._records.feed(memoryview(self._scratch)[:nbytes])
            self._decrypt()
            self._apply_reading()
            return
        if self._reader is None or self._early:
            assert self._scratch is not None
            self._early += self._scratch[:nbytes]
            self._apply_reading()  # hold the rest in the kernel until a reader takes these
            return
        self._reader.buffer_updated(nbytes)

    def eof_received(self) -> bool:
        self.eof = True
        self.reusable = False
        if self._records is not None:
            self._records.end_of_input()
            self._decrypt()
            return True
        if self._reader is not None and not self._early:
            self._reader.eof_received()
        else:
            self._early_eof = True
        return True  # keep our side open until we close it

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if not self.lost.done():
            self.lost.set_result(exc)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.connection_lost(exc)
        self._wake_drainers(exc or ConnectionResetError("data connection closed"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers(None)

    # -- reading control -----------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self.lost.done()

    def attach(self, reader: ConnectionReader) -> None:
        self._reader = reader
        self._reading_paused = False
        reader.bind(self)  # may pause again (no room in the sink)
        self._feed_early()
        self._decrypt()
        if self.is_closed and self._reader is reader and not self._early and not self._early_eof:
            self._reader = None
            reader.connection_lost(self.lost.result())  # lost before anyone listened
            return
        self._apply_reading()

    def detach(self) -> None:
        self._reader = None
        self.pause_reading()

    def pause_reading(self) -> None:
        self._reading_paused = True
        self._apply_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        self._feed_early()
        self._decrypt()
        self._apply_reading()

    def _apply_reading(self) -> None:
        transport = self.transport
        if transport is None or self.is_closed or transport.is_closing():
            return
        want = not self._reading_paused and self._reader is not None and not self._early
        if want and not transport.is_reading():
            transport.resume_reading()
        elif not want and transport.is_reading():
            transport.pause_reading()

    def _feed_early(self) -> None:
        """Hand held bytes (then a held EOF) to the reader, as far as it takes them now."""
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._early and self._reader is not None and not self._reading_paused:
                reader = self._reader
                view = reader.get_buffer(len(self._early))
                n = min(len(view), len(self._early))
                if n == 0:
                    break
                view[:n] = self._early[:n]
                del self._early[:n]
                reader.buffer_updated(n)
            if self._early_eof and not self._early and self._reader is not None and not self._reading_paused:
                self._early_eof = False
                self._reader.eof_received()
        finally:
            self._feeding = False

    # -- security ------------------------------------------------------------------------------
    def write_raw(self, data: bytes) -> None:
        """Handshake bytes, straight to the socket."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def secure(self, records: Records | None, plaintext: bytes) -> None:
        """The handshake is over: ``plaintext`` came with its last records; ``records`` for PROT S/P."""
        self.secured = True
        self._records = records
        if plaintext:
            self._early[:0] = plaintext

    def _decrypt(self) -> None:
        """PROT S/P: decrypt into the reader's views as far as it takes data now."""
        records = self._records
        if records is None or self._decrypting or self._early:
            return
        self._decrypting = True
        try:
            while self._reader is not None and not self._reading_paused and not self._records_ended:
                reader = self._reader
                n = records.read_into(reader.get_buffer(_SCRATCH_SIZE))
                if n > 0:
                    reader.buffer_updated(n)
                    continue
                if n < 0:
                    self._records_ended = True
                    self.write_raw(records.close_notify())  # answer the peer's, as TLS asks
                    self.eof = True
                    self.reusable = False
                    reader.eof_received()
                break
        except DataChannelError:
            self.abort()
        finally:
            self._decrypting = False

    def set_buffer_sizes(self, size: int | None) -> None:
        """SBUF / SITE RETRBUFSIZE: socket buffers for this connection."""
        if not size or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError:
                pass

    # -- writing -------------------------------------------------------------------------------
    async def send(self, parts: Sequence[bytes | memoryview]) -> None:
        """Write and wait until the transport buffer is empty (see module docstring).

        DataChannelError when the peer has gone. An interrupted send (ABOR, a sibling MODE E stream
        failed) aborts the connection: the caller gives the memory back to the pool at once, and uvloop
        would otherwise go on sending from it after another transfer has refilled it.
        """
        transport = self.transport
        if transport is None or self.is_closed or transport.is_closing():
            raise DataChannelError("data connection closed")
        if self._records is not None:
            transport.write(self._records.encrypt(parts))
        elif len(parts) == 1:
            transport.write(parts[0])
        else:
            transport.writelines(parts)
        if self._write_paused:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            except OSError as exc:
                raise DataChannelError(f"data connection lost: {exc.strerror or 'closed by the peer'}") \
                    from exc
            except BaseException:
                self.abort()
                raise

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                if exc is None:
                    w.set_result(None)
                else:
                    w.set_exception(exc)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    async def finish_stream(self) -> None:
        """Stream mode end of data: half-close, then close once the peer has seen EOF."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._records is not None:
            transport.write(self._records.close_notify())
        if transport.can_write_eof():
            transport.write_eof()
        transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), timeout=30)
        except TimeoutError:
            transport.abort()
