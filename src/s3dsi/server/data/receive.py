"""Receiving a file over data connections into an upload sink (stream mode and MODE E).

One ``Receive`` object exists per transfer and owns the completion rule: stream mode ends at the
connection's EOF; MODE E ends when ``EodCounter`` (the codec's completion rule) says every EOD the EOF
announced has arrived — the EOF may come first, on any connection, while others are still connecting.
Each connection gets a reader that asks the sink for a view into the right part buffer and lets the
kernel fill it; when the sink has no room, the connection is paused (the payload stays in the kernel)
until the sink reports space. MODE E framing is parsed by ``protocol.modee.BlockDecoder`` and nothing
else: the reader only supplies memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from s3dsi.protocol.errors import DataChannelError, DsiError
from s3dsi.protocol.modee import BlockDecoder, BlockEvent, Close, Eod, EodCounter, ModeEDecodeError
from s3dsi.server.data.connection import DataConnection
from s3dsi.transfer.tasks import TaskSet

_SCRATCH = 64 * 1024


class UploadSink(Protocol):
    def get_buffer(self, offset: int, max_len: int) -> memoryview | None: ...

    def data_received(self, offset: int, nbytes: int) -> None: ...

    async def wait_for_space(self, offset: int) -> None: ...

    def is_stalled(self) -> bool: ...


class Receive:
    """Completion and failure bookkeeping of one receiving transfer."""

    def __init__(self, sink: UploadSink, *, mode_e: bool) -> None:
        self.sink = sink
        self.mode_e = mode_e
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.eods = EodCounter()
        self.readers: list[_Reader] = []
        self.paused_for_space = 0
        self.tasks = TaskSet()
        self.on_count_known: Callable[[], None] | None = None  # the EOF told how many connections send

    def attach(self, conn: DataConnection) -> None:
        reader: _Reader = BlockReader(self) if self.mode_e else StreamReader(self)
        self.readers.append(reader)
        conn.attach(reader)

    # -- events from readers -------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def finished(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def block_events(self, events: tuple[BlockEvent, ...]) -> None:
        """EOF and EOD counts (the completion rule); a broken count fails the transfer."""
        known = self.eods.expected is not None
        try:
            for event in events:
                self.eods.on_event(event)
        except ModeEDecodeError as exc:
            self.fail(DataChannelError(str(exc)))
            return
        if not known and self.eods.expected is not None and self.on_count_known is not None:
            self.on_count_known()
        if self.eods.complete:
            self.finished()

    @property
    def active_readers(self) -> int:
        return sum(1 for r in self.readers if r.active)

    def all_paused(self) -> bool:
        active = self.active_readers
        return active > 0 and self.paused_for_space >= active

    def detach_all(self) -> None:
        self.tasks.cancel()
        for reader in self.readers:
            reader.detach()


class _Reader:
    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.conn: DataConnection | None = None
        self.active = True
        self._view: memoryview | None = None
        self._offset = 0
        self._scratch: memoryview | None = None

    def bind(self, conn: DataConnection) -> None:
        self.conn = conn

    def detach(self) -> None:
        self.active = False
        if self.conn is not None and not self.conn.is_closed:
            self.conn.detach()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.active:
            self.active = False
            self.receive.fail(DataChannelError("data connection closed before the end of the data"))

    def _fail(self, text: str) -> None:
        """The peer broke the protocol on this connection: it fails the transfer and is not reused."""
        self.active = False
        if self.conn is not None:
            self.conn.reusable = False
            self.conn.detach()
        self.receive.fail(DataChannelError(text))

    def scratch(self, length: int) -> memoryview:
        """Memory for bytes that are read and dropped."""
        if self._scratch is None:
            self._scratch = memoryview(bytearray(_SCRATCH))
        return self._scratch[:max(1, min(length, _SCRATCH))]

    # -- payload into the sink -----------------------------------------------------------------
    def _want(self, offset: int, length: int) -> bool:
        """Prepare the view for the next payload bytes; pause when the sink has no room."""
        self._offset = offset
        view = self.receive.sink.get_buffer(offset, length)
        if view is None:
            self._view = None
            self._pause(offset)
            return False
        self._view = view
        return True

    def _pause(self, offset: int) -> None:
        assert self.conn is not None
        self.conn.pause_reading()
        self.receive.paused_for_space += 1
        self.receive.tasks.spawn(self._await_space(offset))

    async def _await_space(self, offset: int) -> None:
        try:
            await self.receive.sink.wait_for_space(offset)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the sink failed: the transfer fails
            self.receive.fail(exc if isinstance(exc, DsiError) else DataChannelError(str(exc)))
            return
        finally:
            self.receive.paused_for_space -= 1
        if not self.active or self.conn is None:
            return
        self._want(self._offset, self._wanted())
        if self._view is not None:
            self.conn.resume_reading()

    def _wanted(self) -> int:
        raise NotImplementedError

    def get_buffer(self, sizehint: int) -> memoryview:
        raise NotImplementedError

    def buffer_updated(self, nbytes: int) -> None:
        raise NotImplementedError

    def eof_received(self) -> None:
        raise NotImplementedError


class StreamReader(_Reader):
    """Stream mode: bytes arrive in order; the connection's EOF is the end of the file."""

    def bind(self, conn: DataConnection) -> None:
        super().bind(conn)
        self._want(0, _SCRATCH * 16)

    def get_buffer(self, sizehint: int) -> memoryview:
        assert self._view is not None
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.receive.sink.data_received(self._offset, nbytes)
        self._want(self._offset + nbytes, 1 << 20)

    def _wanted(self) -> int:
        return 1 << 20

    def eof_received(self) -> None:
        self.active = False
        self.receive.finished()


class BlockReader(_Reader):
    """MODE E: the connection's bytes go where its ``BlockDecoder`` says — header bytes into the
    decoder's own buffer, file data straight into the sink's part buffers, marker text into scratch."""

    def __init__(self, receive: Receive) -> None:
        super().__init__(receive)
        self.decoder = BlockDecoder()

    def get_buffer(self, sizehint: int) -> memoryview:
        decoder = self.decoder
        if decoder.in_payload:
            if decoder.payload_is_data:
                assert self._view is not None, "a paused connection is not read"
                return self._view
            return self.scratch(decoder.payload_remaining)
        if decoder.closed or not self.active:
            return self.scratch(sizehint)  # read and dropped; buffer_updated reports the violation
        return decoder.header_space()

    def buffer_updated(self, nbytes: int) -> None:
        decoder = self.decoder
        if not self.active:
            return
        try:
            if decoder.in_payload:
                if not decoder.payload_is_data:
                    events = decoder.payload_received(nbytes)
                else:
                    offset = decoder.payload_offset
                    self.receive.sink.data_received(offset, nbytes)
                    events = decoder.payload_received(nbytes)
                    if decoder.in_payload:
                        self._want(offset + nbytes, decoder.payload_remaining)
                        return
            elif decoder.closed:
                raise ModeEDecodeError("data after a CLOSE header")
            else:
                events = decoder.header_received(nbytes)
                if decoder.in_payload and decoder.payload_is_data:
                    self._want(decoder.payload_offset, decoder.payload_remaining)
        except ModeEDecodeError as exc:
            self._fail(str(exc))
            return
        if events:
            self._events(events)

    def _events(self, events: tuple[BlockEvent, ...]) -> None:
        for event in events:
            if isinstance(event, Close) and self.conn is not None:
                self.conn.reusable = False
            elif isinstance(event, Eod):
                self.active = False  # this connection's part of the transfer is over
                if self.conn is not None:
                    self.conn.detach()  # what follows belongs to the next transfer
        self.receive.block_events(events)

    def _wanted(self) -> int:
        return self.decoder.payload_remaining

    def eof_received(self) -> None:
        if self.active:
            self.active = False
            self.receive.fail(DataChannelError("an end-of-file was reached before EOD on a data connection"))
