"""One-request connections (the admin socket, the metrics endpoint) served by the per-session parent's
selector loop without ever blocking it.

The parent accepts control connections, reaps children and handles signals in one thread. A request
read or a reply written with a blocking call, even with a timeout, lets one slow client (a scraper on a
bad link, or one sending a byte a second) hold all of that. Here each connection is non-blocking and
advanced only when the selector says it can be: reading until the request is complete, then writing the
answer; a connection that is not done within ``REQUEST_TIMEOUT`` seconds, or beyond ``MAX_OPEN`` at
once, is closed.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Callable

REQUEST_TIMEOUT = 2.0
MAX_OPEN = 16  # per endpoint


class OneShot:
    """One connection: read a request until ``complete(data)``, then write ``respond(data)`` and close."""

    def __init__(self, conn: socket.socket, selector: selectors.BaseSelector, *,
                 complete: Callable[[bytes], bool], respond: Callable[[bytes], bytes], max_request: int,
                 on_close: Callable[[OneShot], None], timeout: float = REQUEST_TIMEOUT) -> None:
        self.conn = conn
        self.selector = selector
        self.complete = complete
        self.respond = respond
        self.max_request = max_request
        self.on_close = on_close
        self.deadline = time.monotonic() + timeout
        self.request = b""
        self.answer = memoryview(b"")
        self.closed = False
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ, lambda _s: self.readable())

    def readable(self) -> None:
        try:
            chunk = self.conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        self.request += chunk
        if chunk and not self.complete(self.request) and len(self.request) < self.max_request:
            return
        self.answer = memoryview(self.respond(self.request[:self.max_request]))
        self.selector.modify(self.conn, selectors.EVENT_WRITE, lambda _s: self.writable())
        self.writable()

    def writable(self) -> None:
        try:
            while self.answer:
                sent = self.conn.send(self.answer)
                self.answer = self.answer[sent:]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.close()

    def expired(self, now: float) -> bool:
        return now >= self.deadline

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.conn)
        self.conn.close()
        self.on_close(self)


class OneShotServer:
    """The open OneShot connections of one listening socket."""

    def __init__(self, selector: selectors.BaseSelector, *, complete: Callable[[bytes], bool],
                 respond: Callable[[bytes], bytes], max_request: int,
                 admit: Callable[[socket.socket], bool] | None = None) -> None:
        self.selector = selector
        self.complete = complete
        self.respond = respond
        self.max_request = max_request
        self.admit = admit
        self.open: set[OneShot] = set()

    def accept(self, server: socket.socket) -> None:
        try:
            conn, _ = server.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        if len(self.open) >= MAX_OPEN or (self.admit is not None and not self.admit(conn)):
            conn.close()
            return
        self.open.add(OneShot(conn, self.selector, complete=self.complete, respond=self.respond,
                              max_request=self.max_request, on_close=self.open.discard))

    def sweep(self, now: float | None = None) -> None:
        """Close the connections whose time is up."""
        moment = time.monotonic() if now is None else now
        for shot in [s for s in self.open if s.expired(moment)]:
            shot.close()

    def close(self) -> None:
        for shot in list(self.open):
            shot.close()

    def close_inherited(self) -> None:
        """In a forked child: close the sockets, leaving the parent's selector alone."""
        for shot in self.open:
            shot.conn.close()
        self.open = set()
