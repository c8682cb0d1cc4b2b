"""A small raw-socket GridFTP client for tests: exact control replies, hand-built MODE E blocks."""

from __future__ import annotations

import re
import socket
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HEADER = struct.Struct(">BQQ")
EOF_EOD = 0x48
EOD = 0x08
CLOSE = 0x04


@dataclass
class Reply:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return self.text


class Client:
    def __init__(self, host: str, port: int, timeout: float = 30.0, source: str | None = None) -> None:
        """``source``: the local address to connect from (127.0.0.2 plays another host)."""
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.file = self.sock.makefile("rb")
        self.host = host
        self.greeting = self.read_reply()

    def close(self) -> None:
        try:
            self.file.close()  # else the socket stays open as long as its reader is alive
            self.sock.close()
        except OSError:
            pass

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + b"\r\n")

    def read_reply(self) -> Reply:
        first = self.file.readline()
        if not first:
            raise EOFError("control connection closed")
        text = first.decode("utf-8", "replace").rstrip("\r\n")
        lines = [text]
        if len(text) >= 4 and text[3] == "-":
            code = text[:3]
            while True:
                nxt = self.file.readline()
                if not nxt:
                    raise EOFError("control connection closed inside a multi-line reply")
                t = nxt.decode("utf-8", "replace").rstrip("\r\n")
                lines.append(t)
                if t.startswith(code + " "):
                    break
        return Reply(int(text[:3]), lines)

    def cmd(self, line: str) -> Reply:
        self.send(line)
        return self.read_reply()

    def read_final(self) -> tuple[list[Reply], Reply]:
        """Preliminary replies (1xx) until the final one."""
        prelim: list[Reply] = []
        while True:
            r = self.read_reply()
            if r.code < 200:
                prelim.append(r)
                continue
            return prelim, r

    def login(self, user: str, password: str) -> Reply:
        r = self.cmd(f"USER {user}")
        assert r.code == 331, r
        r = self.cmd(f"PASS {password}")
        assert r.code == 230, r
        return r

    def pasv(self) -> tuple[str, int]:
        r = self.cmd("PASV")
        assert r.code == 227, r
        m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r.lines[0])
        assert m, r
        nums = [int(x) for x in m.groups()]
        return ".".join(map(str, nums[:4])), nums[4] * 256 + nums[5]

    def port_listener(self) -> tuple[socket.socket, str]:
        """A listening socket on loopback and the PORT command naming it."""
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        port = lsock.getsockname()[1]
        return lsock, f"PORT 127,0,0,1,{port // 256},{port % 256}"


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the other end closed or reset ``sock`` (within ``timeout``), without sending data."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def recv_all(sock: socket.socket) -> bytes:
    out = bytearray()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return bytes(out)
        out += chunk


def block(offset: int, payload: bytes, desc: int = 0) -> bytes:
    return HEADER.pack(desc, len(payload), offset) + payload


def eof_block(eod_count: int) -> bytes:
    return HEADER.pack(EOF_EOD, 0, eod_count)


def eod_block(close: bool = False) -> bytes:
    return HEADER.pack(EOD | (CLOSE if close else 0), 0, 0)


@dataclass
class ReceivedStream:
    blocks: list[tuple[int, int, bytes]]  # (descriptor, offset, payload)
    eof_count: int | None
    eods: int


def read_mode_e_stream(sock: socket.socket) -> ReceivedStream:
    """Read blocks from one MODE E connection until its EOD."""
    blocks: list[tuple[int, int, bytes]] = []
    eof_count: int | None = None
    eods = 0
    while True:
        desc, count, offset = HEADER.unpack(recv_exact(sock, HEADER.size))
        if count:
            blocks.append((desc, offset, recv_exact(sock, count)))
            continue
        if desc & 0x40:
            eof_count = offset
        if desc & EOD:
            eods += 1
            return ReceivedStream(blocks, eof_count, eods)


def assemble(streams: Iterable[ReceivedStream], shift: int = 0) -> bytes:
    data = bytearray()
    for s in streams:
        for _desc, offset, payload in s.blocks:
            end = offset - shift + len(payload)
            if len(data) < end:
                data.extend(b"\0" * (end - len(data)))
            data[offset - shift:end] = payload
    return bytes(data)


def accept_mode_e(lsock: socket.socket, expected_min: int = 1, timeout: float = 30.0) -> list[ReceivedStream]:
    """Accept MODE E connections until the EOD count announced in EOF has been reached."""
    lsock.settimeout(timeout)
    results: list[ReceivedStream] = []
    lock = threading.Lock()
    threads: list[threading.Thread] = []
    socks: list[socket.socket] = []

    def reader(s: socket.socket) -> None:
        r = read_mode_e_stream(s)
        with lock:
            results.append(r)

    eof_count: int | None = None
    while True:
        with lock:
            for r in results:
                if r.eof_count is not None:
                    eof_count = r.eof_count
            done = eof_count is not None and len(results) >= eof_count
        if done:
            break
        if len(socks) >= max(expected_min, eof_count or 0):
            for t in threads:
                t.join(0.05)
            continue
        s, _ = lsock.accept()
        s.settimeout(timeout)
        socks.append(s)
        t = threading.Thread(target=reader, args=(s,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout)
    for s in socks:
        s.close()
    return results


def connect_many(address: tuple[str, int], n: int) -> list[socket.socket]:
    return [socket.create_connection(address, timeout=30) for _ in range(n)]


def send_blocks(conns: Sequence[socket.socket], plan: Sequence[tuple[int, int, bytes]]) -> None:
    """plan: (connection index, offset, payload) in the order to send."""
    for idx, offset, payload in plan:
        conns[idx].sendall(block(offset, payload))


class ModeEReceiver:
    """The client side of MODE E downloads: keeps accepted connections across transfers (reuse)."""

    def __init__(self, lsock: socket.socket) -> None:
        self.lsock = lsock
        self.socks: list[socket.socket] = []

    def receive(self, timeout: float = 30.0) -> list[ReceivedStream]:
        results: list[ReceivedStream] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        threads: list[threading.Thread] = []

        def reader(s: socket.socket) -> None:
            try:
                r = read_mode_e_stream(s)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                results.append(r)

        def start(s: socket.socket) -> None:
            s.settimeout(timeout)
            t = threading.Thread(target=reader, args=(s,), daemon=True)
            t.start()
            threads.append(t)

        for s in self.socks:
            start(s)
        self.lsock.settimeout(0.05)
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                with lock:
                    if errors:
                        raise errors[0]
                    counts = [r.eof_count for r in results if r.eof_count is not None]
                    if counts and len(results) >= counts[0]:
                        return list(results)
                try:
                    s, _ = self.lsock.accept()
                except (TimeoutError, BlockingIOError):
                    continue
                self.socks.append(s)
                start(s)
            raise TimeoutError("MODE E transfer did not complete")
        finally:
            timer.cancel()

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.lsock.close()
