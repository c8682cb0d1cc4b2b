"""The password-file reader a service-user daemon keeps from its root days.

``process_user`` mode drops the daemon to the service account for good, yet SIGHUP must re-read a
password file that may be root's alone. Before dropping, the daemon forks this helper: a root
process with no network socket and one job. On each request (a single byte on a socketpair) it
loads the configuration itself, reads the ``pw_file`` that configuration names with the usual
ownership checks, and sends the bytes back. The daemon cannot choose the path, so a compromised
daemon gains nothing it did not already hold: the hashes it had loaded at start. The helper exits
when the daemon closes its end (including when the daemon dies).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
from dataclasses import dataclass

from s3dsi.config.textfile import TextFileError
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.identity.securefile import FilePolicy, InsecureFileError, read_secure_file
from s3dsi.protocol.errors import ConfigError

_HEADER = struct.Struct(">I")
REQUEST = b"R"
TIMEOUT = 30.0


class HelperError(Exception):
    """The helper could not read the password file (the message says why, never quoting the file)."""


@dataclass(frozen=True)
class PasswordFileData:
    path: str | None  # None: the configuration sets no pw_file
    data: bytes = b""


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    buf = bytearray()
    while len(buf) < count:
        chunk = sock.recv(count - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    return _recv_exact(sock, length)


def read_password_file(source: ConfigSource, service_uid: int) -> PasswordFileData:
    """What the helper does per request (also usable directly by a root process)."""
    try:
        settings = source.load(environ=dict(os.environ))
    except ConfigError as err:
        raise HelperError(f"configuration: {err}") from None
    path = settings.password_file
    if path is None:
        return PasswordFileData(None)
    try:
        data, _ = read_secure_file(path, FilePolicy.private_to(service_uid, forbidden_mode=0o022))
    except FileNotFoundError:
        raise HelperError(f"{path}: no such file") from None
    except InsecureFileError as err:
        raise HelperError(str(err)) from None
    except TextFileError as err:
        raise HelperError(err.located(path)) from None
    except OSError as err:
        raise HelperError(f"{path}: cannot read: {err.strerror}") from None
    return PasswordFileData(path, data)


class PasswordHelper:
    """The daemon's end of the helper."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self._sock = sock

    @classmethod
    def spawn(cls, source: ConfigSource, service_uid: int) -> PasswordHelper:
        """Fork the helper; call while still root and before any thread or event loop exists."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked helper
            ours.close()
            code = 0
            try:
                _serve(theirs, source, service_uid)
            except BaseException:
                code = 1
            os._exit(code)
        theirs.close()
        ours.settimeout(TIMEOUT)
        return cls(pid, ours)

    def read(self) -> PasswordFileData:
        """Ask for the password file of the current configuration (blocking; HelperError on failure)."""
        try:
            self._sock.sendall(REQUEST)
            answer = json.loads(_recv_frame(self._sock))
            if "error" in answer:
                raise HelperError(str(answer["error"]))
            path = answer.get("path")
            data = _recv_frame(self._sock) if path is not None else b""
        except (OSError, EOFError, ValueError) as err:
            raise HelperError(f"the password-file helper did not answer ({type(err).__name__})") from None
        return PasswordFileData(path, data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, 0)


def _serve(sock: socket.socket, source: ConfigSource, service_uid: int) -> None:  # pragma: no cover
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on a terminal: the daemon decides
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        request = sock.recv(1)
        if request != REQUEST:
            return  # EOF: the daemon is gone
        try:
            result = read_password_file(source, service_uid)
        except HelperError as err:
            _send_frame(sock, json.dumps({"error": str(err)}).encode())
            continue
        _send_frame(sock, json.dumps({"path": result.path}).encode())
        if result.path is not None:
            _send_frame(sock, result.data)
