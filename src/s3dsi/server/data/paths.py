"""One data path per transfer mode, behind one interface: ``receiving(sink)`` and ``sending()``.

A path owns what differs between stream mode and MODE E: which connection(s) a transfer uses and
who opens them, the preliminary replies and their order (``127`` for a delayed passive, ``150``, or
``125`` when MODE E connections are reused), how the end of the data is recognised, and whether the
connections are kept for the next transfer or closed. Both are async context managers: leaving the
``async with`` normally settles the connections (MODE E keeps them for reuse), leaving it by an
exception closes them, so a handler reads as: set up, wait for the data, commit.

Rules (the reference server's): in MODE E the data *sender* connects and the receiver listens; a
stream-mode transfer uses one connection, accepted (passive: ``150`` first, then the accept) or
connected (active: connect, then ``150``), and consumes the set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from s3dsi.protocol.parsing import format_delayed_pasv
from s3dsi.protocol.replies import TRANSFER_REUSING, TRANSFER_STARTING, Reply
from s3dsi.server.data.channels import DataChannels
from s3dsi.server.data.connection import DataConnection
from s3dsi.server.data.receive import Receive, UploadSink
from s3dsi.server.data.send import ChunkSource, Progress, send_mode_e, send_stream
from s3dsi.transfer.errors import DataTooFarOutOfOrder
from s3dsi.transfer.watch import DataWatch

Announce = Callable[[Reply], Awaitable[None]]
WATCH_INTERVAL = 1.0
STALL_CHECKS = 3  # checks every stream may sit paused with nothing in flight before we give up


class Sender:
    """What ``sending()`` yields: send a chunk source over the path's connection(s)."""

    def __init__(self, conns: Sequence[DataConnection], *, mode_e: bool) -> None:
        self.conns = conns
        self._mode_e = mode_e

    async def send(self, source: ChunkSource, progress: Progress, *, offset_shift: int = 0,
                   watch: DataWatch | None = None) -> None:
        if self._mode_e:
            sending = send_mode_e(self.conns, source, progress, offset_shift=offset_shift)
        else:
            sending = send_stream(self.conns[0], source, progress)
        task = asyncio.ensure_future(sending)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=WATCH_INTERVAL)
                if done:
                    task.result()
                    return
                if watch is not None:
                    watch.check()  # a client that stopped reading: DataTimeout
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


class DataPath:
    """The data path of the session's current mode; ``streams`` and ``peer`` describe the last use."""

    mode_e = False
    upload_markers = False  # 111/112 markers while receiving (MODE E only, as the reference)
    end_is_ambiguous = True  # a data EOF alone may be a dying client (stream mode)

    def __init__(self, channels: DataChannels, announce: Announce) -> None:
        self.channels = channels
        self.announce = announce
        self.streams = 1
        self.peer: str | None = None

    def receiving(self, sink: UploadSink) -> contextlib.AbstractAsyncContextManager[Receive]:
        raise NotImplementedError

    def sending(self, parallelism: int) -> contextlib.AbstractAsyncContextManager[Sender]:
        raise NotImplementedError

    async def _delayed_passive(self) -> None:
        """A delayed passive set-up (SPAS/PASV with delayed_pasv) opens its listener now: 127."""
        if self.channels.is_delayed:
            host, port = await self.channels.realize_delayed()
            await self.announce(format_delayed_pasv(host, port))

    def _note(self, conns: Sequence[DataConnection]) -> None:
        self.streams = max(1, len(conns))
        peer = conns[0].peer if conns else None
        self.peer = peer[0] if peer else None


async def wait_for_data(receive: Receive, stalled: Callable[[], bool],
                        watch: DataWatch | None = None) -> None:
    """Wait for the end of the data; fail if every stream is paused and nothing can move, or when the
    watch says the data stopped moving."""
    stalls = 0
    while True:
        done, _ = await asyncio.wait({receive.done}, timeout=WATCH_INTERVAL)
        if done:
            receive.done.result()
            return
        if watch is not None:
            watch.check()
        if receive.all_paused() and stalled():
            stalls += 1
            if stalls >= STALL_CHECKS:
                raise DataTooFarOutOfOrder()
        else:
            stalls = 0


class StreamPath(DataPath):
    async def _open(self) -> DataConnection:
        """Announce (127/150) and get the one data connection, in the order clients expect."""
        channels = self.channels
        await self._delayed_passive()
        if channels.is_passive:
            await self.announce(TRANSFER_STARTING)
            conn = await channels.stream_connection()
        else:
            conn = await channels.stream_connection()
            try:
                await self.announce(TRANSFER_STARTING)
                await channels.secure_outgoing([conn])
            except BaseException:
                conn.abort()  # the set-up is consumed: nothing else would ever close it
                raise
        self._note([conn])
        return conn

    @contextlib.asynccontextmanager
    async def receiving(self, sink: UploadSink) -> AsyncIterator[Receive]:
        conn = await self._open()
        receive = Receive(sink, mode_e=False)
        receive.attach(conn)
        try:
            yield receive
        finally:
            receive.detach_all()  # first: the close we make is no failure for a reader to report
            conn.close()

    @contextlib.asynccontextmanager
    async def sending(self, parallelism: int) -> AsyncIterator[Sender]:
        conn = await self._open()
        try:
            yield Sender([conn], mode_e=False)
        except BaseException:
            conn.abort()
            raise


class ModeEPath(DataPath):
    mode_e = True
    upload_markers = True
    end_is_ambiguous = False  # the EOF block counts the EODs: a dying sender cannot look finished

    @contextlib.asynccontextmanager
    async def receiving(self, sink: UploadSink) -> AsyncIterator[Receive]:
        receive = Receive(sink, mode_e=True)
        await self._delayed_passive()
        reused = self.channels.route_to(receive)
        kept = False
        try:
            await self.announce(TRANSFER_REUSING if reused else TRANSFER_STARTING)
            yield receive
            kept = True
        finally:
            self._note([r.conn for r in receive.readers if r.conn is not None])
            self.channels.stop_routing(keep=kept)

    @contextlib.asynccontextmanager
    async def sending(self, parallelism: int) -> AsyncIterator[Sender]:
        conns, reused = await self.channels.mode_e_senders(parallelism)
        self._note(conns)
        kept = False
        try:
            await self.announce(TRANSFER_REUSING if reused else TRANSFER_STARTING)
            await self.channels.secure_outgoing(conns)
            yield Sender(conns, mode_e=True)
            kept = True
        finally:
            self.channels.settle_senders(keep=kept)


def data_path(channels: DataChannels, mode: str, announce: Announce) -> DataPath:
    return ModeEPath(channels, announce) if mode == "E" else StreamPath(channels, announce)
