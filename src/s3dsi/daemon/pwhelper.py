"""The root helper a service-user daemon keeps from its root days: it re-reads the password file and
opens log files for a reload.

``process_user`` mode drops the daemon to the service account for good, yet SIGHUP must re-read a
password file that may be root's alone, and may have to open log files in a directory only root can
write (/var/log/gridftp). Before dropping, the daemon forks this helper: a root process with no network
socket and these two jobs. On each request (a byte on a socketpair, then for a log file its path) it
loads the configuration itself and serves only what that configuration names: the ``pw_file`` (read
with the usual ownership checks, bytes sent back) or one of its log files (``log_single``,
``log_transfer``, the GLOBUS_S3_DEBUG file), opened for appending and passed back as a descriptor
(SCM_RIGHTS). A log file is opened only in a directory the service account cannot change and never
through a symbolic link or onto a hard link, so the daemon cannot point the helper at another file.
A compromised daemon thus gains nothing it did not already hold at start: the hashes it had loaded
and append access to the configured logs. The helper exits when the daemon closes its end (including
when the daemon dies).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import signal
import socket
import stat
import struct
import sys
import threading
from dataclasses import dataclass

from s3dsi.config.errors import ConfigError
from s3dsi.config.settings import Settings
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.identity.securefile import FilePolicy, read_checked
from s3dsi.observability.levels import parse_s3_debug
from s3dsi.observability.logfiles import LOG_FILE_MODE, LOG_OPEN_FLAGS

_HEADER = struct.Struct(">I")
REQUEST = b"R"
LOG_REQUEST = b"L"
MAX_PATH = 4096
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
    data, _ = read_checked(path, FilePolicy.private_to(service_uid, forbidden_mode=0o022), HelperError)
    return PasswordFileData(path, data)


def configured_log_files(settings: Settings) -> frozenset[str]:
    """The absolute paths of the log files ``settings`` names."""
    paths = [settings.log_single, settings.log_transfer]
    if settings.s3_debug:
        level, path = parse_s3_debug(settings.s3_debug)
        if level:
            paths.append(path)
    return frozenset(os.path.abspath(p) for p in paths if p)


def _writable_by(info: os.stat_result, uid: int, gids: frozenset[int]) -> bool:
    """Whether the account (uid, groups) may add, remove or rename entries of a directory."""
    if info.st_uid == uid:
        return True
    if info.st_mode & stat.S_IWGRP and info.st_gid in gids:
        return True
    return bool(info.st_mode & stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX


def _service_groups(service_uid: int) -> frozenset[int]:
    try:
        entry = pwd.getpwuid(service_uid)
    except KeyError:
        return frozenset()
    return frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))


def open_log_for(source: ConfigSource, service_uid: int, path: str) -> int:
    """What the helper does for a log-file request: a descriptor open for appending on ``path``, which
    the current configuration must name and the service account must not be able to redirect."""
    try:
        settings = source.load(environ=dict(os.environ))
    except ConfigError as err:
        raise HelperError(f"configuration: {err}") from None
    wanted = os.path.abspath(path)
    if wanted not in configured_log_files(settings):
        raise HelperError(f"{path}: not a log file of the current configuration")
    directory = os.path.realpath(os.path.dirname(wanted))
    groups = _service_groups(service_uid)
    current = "/"
    for part in ["", *directory.strip("/").split("/")]:
        current = os.path.join(current, part)
        try:
            info = os.stat(current)
        except OSError as err:
            raise HelperError(f"{current}: {err.strerror}") from None
        if _writable_by(info, service_uid, groups):
            raise HelperError(f"{path}: not opened as root: the service account can change {current}")
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise HelperError(f"{directory}: {err.strerror}") from None
    try:
        # O_NONBLOCK: a FIFO put there must not hang the helper (ENXIO instead); cleared below
        fd = os.open(os.path.basename(wanted), LOG_OPEN_FLAGS | os.O_NOFOLLOW | os.O_NONBLOCK, LOG_FILE_MODE,
                     dir_fd=dir_fd)
    except OSError as err:
        reason = "a symbolic link" if err.errno == errno.ELOOP else err.strerror
        raise HelperError(f"{path}: cannot open: {reason}") from None
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise HelperError(f"{path}: not a plain file with a single name")
    os.set_blocking(fd, True)
    return fd


class PasswordHelper:
    """The daemon's end of the helper."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self._sock = sock
        self._lock = threading.Lock()  # one request at a time (reloads run in worker threads)

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
            with self._lock:
                self._sock.sendall(REQUEST)
                answer = json.loads(_recv_frame(self._sock))
                if "error" in answer:
                    raise HelperError(str(answer["error"]))
                path = answer.get("path")
                data = _recv_frame(self._sock) if path is not None else b""
        except (OSError, EOFError, ValueError) as err:
            raise HelperError(f"the password-file helper did not answer ({type(err).__name__})") from None
        return PasswordFileData(path, data)

    def open_log(self, path: str) -> int:
        """A descriptor open for appending on the log file ``path`` of the current configuration, opened
        by the helper as root (blocking; HelperError on failure)."""
        encoded = os.fsencode(path)
        if len(encoded) > MAX_PATH:
            raise HelperError(f"{path}: path too long")
        try:
            with self._lock:
                self._sock.sendall(LOG_REQUEST + _HEADER.pack(len(encoded)) + encoded)
                answer = json.loads(_recv_frame(self._sock))
                if "error" in answer:
                    raise HelperError(str(answer["error"]))
                _, fds, flags, _ = socket.recv_fds(self._sock, 1, 1)
        except (OSError, EOFError, ValueError) as err:
            raise HelperError(f"the root helper did not answer ({type(err).__name__})") from None
        if len(fds) != 1 or flags & socket.MSG_CTRUNC:
            for fd in fds:
                os.close(fd)
            raise HelperError(f"{path}: the root helper sent no descriptor")
        return fds[0]

    def log_opener(self, path: str) -> int:
        """LogOpener of a dropped daemon: open ``path`` itself if it may, else through the helper."""
        try:
            return os.open(path, LOG_OPEN_FLAGS, LOG_FILE_MODE)
        except PermissionError:
            pass
        try:
            return self.open_log(path)
        except HelperError as err:
            raise PermissionError(errno.EACCES, f"permission denied; root helper: {err}", path) from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, 0)

    def close_inherited(self) -> None:
        """In a process forked from the daemon (a worker): drop its copy of the channel, which the
        daemon alone uses, so that the helper still ends when the daemon does."""
        with contextlib.suppress(OSError):
            self._sock.close()


def _serve(sock: socket.socket, source: ConfigSource, service_uid: int) -> None:  # pragma: no cover
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on a terminal: the daemon decides
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        request = sock.recv(1)
        if request == REQUEST:
            _serve_password_file(sock, source, service_uid)
        elif request == LOG_REQUEST:
            _serve_log_file(sock, source, service_uid)
        else:
            return  # EOF (the daemon is gone) or a request we do not know


def _serve_password_file(sock: socket.socket, source: ConfigSource,
                         service_uid: int) -> None:  # pragma: no cover
    try:
        result = read_password_file(source, service_uid)
    except HelperError as err:
        _send_frame(sock, json.dumps({"error": str(err)}).encode())
        return
    _send_frame(sock, json.dumps({"path": result.path}).encode())
    if result.path is not None:
        _send_frame(sock, result.data)


def _serve_log_file(sock: socket.socket, source: ConfigSource, service_uid: int) -> None:  # pragma: no cover
    (length,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if length > MAX_PATH:
        raise EOFError  # not our daemon's request: stop serving
    path = os.fsdecode(_recv_exact(sock, length))
    try:
        fd = open_log_for(source, service_uid, path)
    except HelperError as err:
        _send_frame(sock, json.dumps({"error": str(err)}).encode())
        return
    try:
        _send_frame(sock, json.dumps({"path": path}).encode())
        socket.send_fds(sock, [b"F"], [fd])
    finally:
        os.close(fd)
