"""Per-session data channel set-up (PASV/EPSV/SPAS, PORT/EPRT/SPOR) and MODE E connection caching.

Rules from the reference server: in MODE E the data *sender* connects and the receiver listens; after
a MODE E transfer the connections stay open and are reused by the next transfer that comes without a
new set-up command (answered with 125); any new set-up command tears the cached connections down.
A stream-mode transfer uses one connection and consumes the set-up.

Who may connect: a passive data connection must come from the control connection's peer (or a
network listed in ``port_allow``, for third-party peers and proxies), unless the data channel
security authenticates the peer itself (GSI DCAU A/S); any other connection is closed at once and
never attached, so a stranger can neither read a download nor add blocks to an upload. A listener
closes once the connections its transfer expects have arrived (stream mode: one; MODE E: the count
the EOF block announced).

The transfer commands do not call this module directly: ``paths.py`` drives it (one data path per
mode), pairing every routing or sending with its settling in a context manager.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from collections.abc import Callable, Sequence
from typing import Protocol

from s3dsi.observability.logging import get_logger
from s3dsi.protocol.addresses import same_host_or_allowed
from s3dsi.protocol.errors import DataChannelError, DataChannelRefused, DsiError
from s3dsi.server.data.connection import DataConnection
from s3dsi.server.data.receive import Receive
from s3dsi.transfer.tasks import TaskSet

log = get_logger("s3dsi.data")

ACCEPT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 30.0
MAX_PARALLELISM = 64
MAX_ACCEPTED = 2 * MAX_PARALLELISM  # data connections one set-up may hold open at once


class WrongDirection(DsiError):
    """MODE E with the wrong pairing (passive sender / active receiver), refused as GT does."""

    code = 500
    globus_type = "INTERNAL_ERROR"
    default_text = "Command failed"


class NoDataSetup(DsiError):
    code = 425
    globus_type = "DATA_CHANNEL_COMMUNICATION_FAILURE"
    default_text = "Can't open data connection: use PASV or PORT first"


class DataSecurity(Protocol):
    """The seam for protected data channels (DCAU/PROT under GSI, a later issue).

    Called for every new data connection before any transfer byte moves: ``initiator`` is True for
    connections we opened (we are the TLS client). It may replace the connection's transport (for
    example with ``loop.start_tls``); command handlers never see the difference.
    """

    async def secure(self, conn: DataConnection, *, initiator: bool) -> DataConnection: ...

    @property
    def authenticates_peers(self) -> bool:
        """True when ``secure`` proves who the peer is (then its address does not matter)."""
        ...

    @property
    def required(self) -> bool:
        """False when ``secure`` would return the connection untouched (no handshake)."""
        ...


class ClearData:
    authenticates_peers = False
    required = False

    async def secure(self, conn: DataConnection, *, initiator: bool) -> DataConnection:
        return conn


class _Listener:
    def __init__(self, server: asyncio.Server, host: str, port: int, expected: int | None) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.expected = expected  # connections its transfer needs; None: not known yet (MODE E)
        self.arrived = 0
        # accepted (and secured) connections not yet taken by a transfer; a failed security handshake
        # is queued as its error, so the transfer waiting for a connection reports it
        self.pending: asyncio.Queue[DataConnection | DsiError] = asyncio.Queue()

    def close(self) -> None:
        self.server.close()

    def note_arrival(self) -> None:
        self.arrived += 1
        if self.expected is not None and self.arrived >= self.expected:
            self.server.close()  # no further connection can be accepted, by anyone


def _abort_connected(task: asyncio.Future[DataConnection]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().abort()


class DataChannels:
    def __init__(self, *, data_host: str, port_range: tuple[int, int] | None,
                 socket_buffer: Callable[[], int | None] | None = None,
                 security: DataSecurity | None = None, control_peer: str = "127.0.0.1",
                 peer_networks: Sequence[str] = ()) -> None:
        self.security: DataSecurity = security or ClearData()
        self.control_peer = control_peer
        self.peer_networks = tuple(peer_networks)
        self.refused = 0  # connections from strangers, closed unattached
        self._admitting = TaskSet()
        self.data_host = data_host
        self.port_range = port_range
        self._socket_buffer = socket_buffer or (lambda: None)
        self._listener: _Listener | None = None
        self._active: list[tuple[str, int]] | None = None
        self._delayed = False
        self._delayed_expected: int | None = None
        self._cached: list[DataConnection] = []  # MODE E connections kept for reuse
        self._used = False  # the current set-up already served a transfer
        self._receive: Receive | None = None

    # -- set-up commands -----------------------------------------------------------------------
    async def passive(self, *, family: int = socket.AF_UNSPEC,
                      expected: int | None = None) -> tuple[str, int]:
        """Listen for the next transfer's connections; ``expected`` when known (stream mode: 1)."""
        self.reset()
        self._listener = await self._listen(family, expected)
        return self._listener.host, self._listener.port

    def delayed_passive(self, *, expected: int | None = None) -> None:
        self.reset()
        self._delayed = True
        self._delayed_expected = expected

    def active(self, addresses: Sequence[tuple[str, int]]) -> None:
        self.reset()
        self._active = list(addresses)

    @property
    def is_delayed(self) -> bool:
        return self._delayed and self._listener is None

    async def realize_delayed(self) -> tuple[str, int]:
        """Delayed passive: open the listener now (127 reply announces it)."""
        self._listener = await self._listen(socket.AF_UNSPEC, self._delayed_expected)
        self._delayed = False
        return self._listener.host, self._listener.port

    @property
    def is_passive(self) -> bool:
        return self._listener is not None or self._delayed

    def reset(self) -> None:
        """Tear down the set-up and every cached connection (new PASV/PORT, DCAU/PROT, MODE change)."""
        self._receive = None
        self._consume_stream_setup()
        self._used = False

    def close(self) -> None:
        self.reset()

    # -- listeners -----------------------------------------------------------------------------
    async def _listen(self, family: int, expected: int | None) -> _Listener:
        loop = asyncio.get_running_loop()
        holder: dict[str, _Listener] = {}

        def on_made(conn: DataConnection) -> None:
            conn.set_buffer_sizes(self._socket_buffer())
            self._accepted(holder["l"], conn)

        ports: list[int] = [0]
        if self.port_range is not None:
            low, high = self.port_range
            ports = list(range(low, high + 1))
            random.shuffle(ports)
            ports = ports[:200]
        last_error: OSError | None = None
        for port in ports:
            try:
                server = await loop.create_server(lambda: DataConnection(on_made), self.data_host, port,
                                                  backlog=64, reuse_address=True, family=family)
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise DataChannelRefused(f"cannot listen for data connections: {exc.strerror}") from exc
                last_error = exc
                continue
            sockname = server.sockets[0].getsockname()
            listener = _Listener(server, str(sockname[0]), int(sockname[1]), expected)
            holder["l"] = listener
            return listener
        raise DataChannelRefused(f"no free data port in port_range ({last_error})")

    def _peer_allowed(self, conn: DataConnection) -> bool:
        if self.security.authenticates_peers:
            return True
        return conn.peer is not None and same_host_or_allowed(conn.peer[0], self.control_peer,
                                                                self.peer_networks)

    def _accepted(self, listener: _Listener, conn: DataConnection) -> None:
        if listener is not self._listener or not self._peer_allowed(conn):
            self.refused += 1
            log.warning("data connection refused", peer=conn.peer[0] if conn.peer else "?",
                        control_peer=self.control_peer)
            conn.abort()
            return
        listener.note_arrival()
        if not self.security.required:
            self._route(listener, conn)
            return
        self._admitting.spawn(self._admit(listener, conn))

    async def _admit(self, listener: _Listener, conn: DataConnection) -> None:
        try:
            secured = await self.security.secure(conn, initiator=False)
        except (OSError, DsiError) as exc:
            conn.abort()
            err = exc if isinstance(exc, DsiError) else DataChannelError(f"data connection failed: {exc}")
            log.warning("data connection refused", peer=conn.peer[0] if conn.peer else "?", reason=err.text)
            if listener is self._listener:
                if self._receive is not None:
                    self._receive.fail(err)
                else:
                    listener.pending.put_nowait(err)
            return
        self._route(listener, secured)

    def _route(self, listener: _Listener, conn: DataConnection) -> None:
        if listener is not self._listener:
            conn.close()
            return
        held = len(self._cached) + listener.pending.qsize()
        if held >= MAX_ACCEPTED:
            conn.abort()  # each costs socket buffers: a client cannot open connections without bound
            return
        if self._receive is not None:
            self._cached.append(conn)
            self._receive.attach(conn)
            self._enough_connections()
        else:
            listener.pending.put_nowait(conn)

    # -- stream mode ---------------------------------------------------------------------------
    async def stream_connection(self) -> DataConnection:
        """The single connection of a stream-mode transfer (accepted or connected); consumes the set-up."""
        try:
            if self._listener is not None:
                listener = self._listener
                try:
                    item = await asyncio.wait_for(listener.pending.get(), ACCEPT_TIMEOUT)
                except TimeoutError:
                    raise DataChannelRefused("Can't open data connection: no connection from the client") \
                        from None
                if isinstance(item, DsiError):
                    raise item
                return item
            if self._active is not None:
                return await self._connect(self._active[0])
            raise NoDataSetup()
        finally:
            self._consume_stream_setup()

    def _consume_stream_setup(self) -> None:
        if self._listener is not None:
            self._listener.close()
            while not self._listener.pending.empty():  # connections the transfer did not take
                item = self._listener.pending.get_nowait()
                if isinstance(item, DataConnection):
                    item.close()
            self._listener = None
        self._active = None
        self._delayed = False
        for conn in self._cached:
            conn.close()
        self._cached = []

    async def _connect(self, address: tuple[str, int]) -> DataConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(DataConnection, address[0], address[1]), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise DataChannelRefused(f"Can't open data connection to {address[0]}:{address[1]}") from exc
        conn.set_buffer_sizes(self._socket_buffer())
        return conn

    async def secure_outgoing(self, conns: Sequence[DataConnection]) -> None:
        """Secure connections we opened, once the transfer was announced (an FTPS client starts its
        TLS only after 150; as GSI initiator we speak first anyway). Any failure closes them all."""
        if not self.security.required:
            return
        pending = [c for c in conns if not c.secured]
        results = await asyncio.gather(*(self.security.secure(c, initiator=True) for c in pending),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            for conn in conns:
                conn.abort()
            err = errors[0]
            raise err if isinstance(err, DsiError) else DataChannelError(f"data connection failed: {err}")

    # -- MODE E sending (we connect) -----------------------------------------------------------
    async def mode_e_senders(self, parallelism: int) -> tuple[list[DataConnection], bool]:
        if self._active is None:
            if self.is_passive:
                raise WrongDirection("Command failed. : MODE E transfers from this server need PORT or "
                                     "SPOR: the sender connects (PASV is for uploads)")
            raise NoDataSetup()
        alive = [c for c in self._cached if c.reusable and not c.is_closed]
        if self._used and alive:
            self._cached = alive
            return alive, True
        for conn in self._cached:
            conn.close()
        # at most MAX_PARALLELISM connections in all, whatever SPOR and Parallelism ask for
        n = max(1, min(parallelism, MAX_PARALLELISM // len(self._active)))
        targets = [addr for addr in self._active[:MAX_PARALLELISM] for _ in range(n)]
        connecting = [asyncio.ensure_future(self._connect(a)) for a in targets]
        try:
            await asyncio.wait(connecting)
        except BaseException:  # ABOR or control EOF: connections already made belong to nobody
            for task in connecting:
                task.cancel()
                task.add_done_callback(_abort_connected)
            raise
        conns = [t.result() for t in connecting if t.exception() is None]
        errors = [e for t in connecting if (e := t.exception()) is not None]
        if errors:
            for c in conns:
                c.close()
            err = errors[0]
            raise err if isinstance(err, DsiError) else DataChannelRefused(str(err))
        self._cached = conns
        self._used = True
        return conns, False

    # -- MODE E receiving (we listen) ----------------------------------------------------------
    def route_to(self, receive: Receive) -> bool:
        """Route cached and new connections to ``receive``; True if connections are being reused."""
        if self._listener is None:
            if self._active is not None:
                raise WrongDirection("Command failed. : MODE E uploads to this server need PASV or SPAS: "
                                     "the sender connects (PORT is for downloads)")
            raise NoDataSetup()
        listener = self._listener
        alive = [c for c in self._cached if c.reusable and not c.is_closed]
        for c in self._cached:
            if c not in alive:
                c.close()
        reused = self._used and bool(alive)
        self._cached = alive
        self._receive = receive
        for conn in alive:
            receive.attach(conn)
        while not listener.pending.empty():
            item = listener.pending.get_nowait()
            if isinstance(item, DsiError):
                receive.fail(item)
                continue
            self._cached.append(item)
            receive.attach(item)
        receive.on_count_known = self._enough_connections
        self._used = True
        return reused

    def _enough_connections(self) -> None:
        """MODE E: once the EOF has announced how many connections send, and that many are here, the
        listener stops accepting."""
        receive, listener = self._receive, self._listener
        if receive is None or listener is None or receive.eods.expected is None:
            return
        if len(receive.readers) >= receive.eods.expected:
            listener.close()

    def stop_routing(self, *, keep: bool) -> None:
        receive, self._receive = self._receive, None
        if receive is not None:
            receive.detach_all()
        if not keep:
            for c in self._cached:
                c.close()
            self._cached = []
        else:
            self._cached = [c for c in self._cached if c.reusable and not c.is_closed]

    def settle_senders(self, *, keep: bool) -> None:
        if not keep:
            for c in self._cached:
                c.close()
            self._cached = []
