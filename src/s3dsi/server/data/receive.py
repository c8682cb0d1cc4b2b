"""Receiving a file over data connections into an upload sink (stream mode and MODE E).

One ``Receive`` object exists per transfer and owns the completion rule: stream mode ends at the
connection's EOF; MODE E ends only when the number of EODs received equals the count announced in
the EOF block, which may arrive first, on any connection, while others are still connecting.
Each connection gets a reader that asks the sink for a view into the right part buffer and lets the
kernel fill it; when the sink has no room, the connection is paused (the payload stays in the kernel)
until the sink reports space.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Coroutine
from typing import Any, Protocol

from s3dsi.protocol.errors import DataChannelError, DsiError
from s3dsi.server.data.connection import DataConnection

HEADER = struct.Struct(">BQQ")
DESC_EOF = 0x40
DESC_EOD = 0x08
DESC_CLOSE = 0x04
DESC_RESTART = 0x10
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
        self.eod_expected: int | None = None
        self.eods = 0
        self.readers: list[_Reader] = []
        self.paused_for_space = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, conn: DataConnection) -> None:
        reader: _Reader = BlockReader(self) if self.mode_e else StreamReader(self)
        self.readers.append(reader)
        conn.attach(reader)

    # -- events from readers -------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def stream_finished(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def eod(self, eod_count: int | None) -> None:
        if eod_count is not None:
            if self.eod_expected is not None and self.eod_expected != eod_count:
                self.fail(DataChannelError("conflicting EOF counts from the sender"))
                return
            self.eod_expected = eod_count
        self.eods += 1
        self._check_complete()

    def _check_complete(self) -> None:
        if self.eod_expected is not None and self.eods >= self.eod_expected and not self.done.done():
            self.done.set_result(None)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def active_readers(self) -> int:
        return sum(1 for r in self.readers if r.active)

    def all_paused(self) -> bool:
        active = self.active_readers
        return active > 0 and self.paused_for_space >= active

    def detach_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for reader in self.readers:
            reader.detach()


class _Reader:
    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.conn: DataConnection | None = None
        self.active = True
        self._view: memoryview | None = None
        self._offset = 0
        self._paused = False

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
        self._paused = True
        self.receive.paused_for_space += 1
        self.receive.spawn(self._await_space(offset))

    async def _await_space(self, offset: int) -> None:
        try:
            await self.receive.sink.wait_for_space(offset)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the sink failed: the transfer fails
            self.receive.fail(exc if isinstance(exc, DsiError) else DataChannelError(str(exc)))
            return
        finally:
            self._paused = False
            self.receive.paused_for_space -= 1
        if not self.active or self.conn is None:
            return
        self._resume_payload()
        if self._view is not None:
            self.conn.resume_reading()

    def _resume_payload(self) -> None:
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

    def _resume_payload(self) -> None:
        self._want(self._offset, 1 << 20)

    def eof_received(self) -> None:
        self.active = False
        self.receive.stream_finished()


class BlockReader(_Reader):
    """MODE E: 17-byte headers, each followed by ``count`` payload bytes at ``offset``.

    A block's EOD/CLOSE/EOF flags take effect after its payload (a sender may mark its last data
    block itself); the payload of a restart-marker block (0x10) is marker text, so it is read and
    dropped rather than written into the file.
    """

    def __init__(self, receive: Receive) -> None:
        super().__init__(receive)
        self._header = bytearray(HEADER.size)
        self._hview = memoryview(self._header)
        self._hpos = 0
        self._remaining = 0  # payload bytes left in the current block
        self._desc = 0  # the current block's descriptor
        self._block_offset = 0  # the current block's offset field (the EOD count on EOF)
        self._skip: memoryview | None = None  # scratch for payloads that are not file data

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._remaining == 0:
            return self._hview[self._hpos:]
        if self._desc & DESC_RESTART:
            if self._skip is None:
                self._skip = memoryview(bytearray(_SCRATCH))
            return self._skip[:min(self._remaining, _SCRATCH)]
        assert self._view is not None
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._remaining == 0:
            self._hpos += nbytes
            if self._hpos == HEADER.size:
                self._hpos = 0
                self._on_header()
            return
        if not self._desc & DESC_RESTART:
            self.receive.sink.data_received(self._offset, nbytes)
        self._remaining -= nbytes
        if not self._remaining:
            self._end_of_block()
        elif not self._desc & DESC_RESTART:
            self._want(self._offset + nbytes, self._remaining)

    def _on_header(self) -> None:
        desc, count, offset = HEADER.unpack(self._header)
        self._desc, self._block_offset = desc, offset
        if count and desc & DESC_EOF:  # its offset field is the EOD count: it cannot place data
            self.receive.fail(DataChannelError("EOF block with a non-zero byte count"))
            return
        if count:
            self._remaining = count
            if not desc & DESC_RESTART:
                self._want(offset, count)
            return
        self._end_of_block()

    def _end_of_block(self) -> None:
        desc, offset = self._desc, self._block_offset
        if desc & DESC_CLOSE and self.conn is not None:
            self.conn.reusable = False
        if desc & DESC_EOD:
            self.active = False
            if self.conn is not None:
                self.conn.detach()
            self.receive.eod(offset if desc & DESC_EOF else None)
        elif desc & DESC_EOF:
            self.receive.fail(DataChannelError("EOF block without EOD is not supported"))
        # a zero-length data block: nothing to do, read the next header

    def _resume_payload(self) -> None:
        self._want(self._offset, self._remaining)

    def eof_received(self) -> None:
        if self.active:
            self.active = False
            self.receive.fail(DataChannelError("an end-of-file was reached before EOD on a data connection"))
