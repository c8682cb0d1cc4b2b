"""A TCP load balancer for the control port, as a site puts in front of several transfer hosts: each new
connection goes to the first backend that accepts it, so when a host dies its clients' reconnections land
on the next one. Data connections do not pass through it (passive replies name each host's own
``data_interface``, as with a real TCP balancer in front of GridFTP hosts).

Threads in the test process; every connection is pumped both ways until either side closes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence

BUFFER = 64 * 1024


class Balancer:
    def __init__(self, backends: Sequence[tuple[str, int]], host: str = "127.0.0.3") -> None:
        self.backends = list(backends)
        self.listener = socket.create_server((host, 0), backlog=64)
        self.address: tuple[str, int] = (host, int(self.listener.getsockname()[1]))
        self.routed: list[tuple[str, int]] = []  # the backend of each connection, in order
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="balancer", daemon=True)

    def start(self) -> Balancer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._route, args=(client,), daemon=True).start()

    def _route(self, client: socket.socket) -> None:
        for backend in self.backends:
            try:
                # from the client's own loopback address, so that the host's data-connection peer check
                # sees the same address on the control and the data connections
                upstream = socket.create_connection(backend, timeout=5, source_address=("127.0.0.1", 0))
            except OSError:
                continue
            upstream.settimeout(None)
            with self._lock:
                self.routed.append(backend)
                self._sockets += [client, upstream]
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            _pump(upstream, client)
            return
        client.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(BUFFER)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
