"""Per-transfer records and globus-gridftp-server's ``Transfer stats`` lines.

Format and meaning as in the reference server's transfer log (one line per transfer, UTC times with
microseconds)::

    DATE=20250101120000.123456 HOST=gw.example.org PROG=globus-gridftp-server NL.EVNT=FTP_INFO
    START=20250101115959.000001 USER=alice FILE=/bucket/key BUFFER=0 BLOCK=1048576 NBYTES=1024 VOLUME=/
    STREAMS=4 STRIPES=1 DEST=[192.0.2.7] TYPE=STOR CODE=226 TASKID=none

DATE is the end, START the start of the data phase; BUFFER the TCP buffer asked for (0: system
default); BLOCK the block size used on the data channel; STREAMS the data connections; DEST the
remote data address; TYPE the command (RETR, ERET, STOR, ESTO, LIST, NLST, MLSD); CODE the final
reply; TASKID what the client sent with ``SITE TASKID``. Unlike the reference, which logs successes
only, failed and aborted transfers get a line too, with their reply code. PROG keeps the reference's
name so that existing log tooling keeps working.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from s3dsi.observability.logfiles import LogOpener, reuse_or_open
from s3dsi.observability.logging import TRANSFER_LOGGER, get_logger, redact_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GT_TYPES = {"APPE": "ESTO"}  # the reference logs any non-truncating store as ESTO
_LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6",
                              "ip6-localhost", "ip6-loopback"})
UPLOAD_KINDS = frozenset({"STOR", "ESTO", "APPE"})
DOWNLOAD_KINDS = frozenset({"RETR", "ERET"})


@dataclass(frozen=True)
class TransferRecord:
    kind: str  # the command: RETR, ERET, STOR, ESTO, APPE, LIST, NLST, MLSD
    path: str
    user: str
    nbytes: int
    started: float  # wall clock, seconds since the epoch
    ended: float
    code: int  # the final reply code sent (226 success; 426 aborted; 4xx/5xx failed)
    remote: str  # IP address of the data connection's peer
    streams: int = 1
    stripes: int = 1
    block_size: int = 0
    tcp_buffer: int = 0
    task_id: str | None = None
    session_id: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.ended - self.started)

    @property
    def succeeded(self) -> bool:
        return 200 <= self.code < 300

    @property
    def direction(self) -> str | None:
        """``in`` (to S3), ``out`` (from S3) for file transfers; None for listings."""
        if self.kind in UPLOAD_KINDS:
            return "in"
        if self.kind in DOWNLOAD_KINDS:
            return "out"
        return None


def gt_time(moment: float) -> str:
    """``YYYYMMDDhhmmss.uuuuuu`` in UTC, as the reference writes DATE and START."""
    seconds = int(moment)
    micros = round((moment - seconds) * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds)) + f".{micros:06d}"


def _clean(text: str) -> str:
    # a path may hold anything; a newline must never start a forged log line
    return _CONTROL.sub("?", text)


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")  # paths go back out byte for byte
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def transfer_log_host(environ: Mapping[str, str] | None = None) -> str:
    """HOST of the transfer log, found as the reference server finds its host name: GLOBUS_HOSTNAME when
    set; else the system host name, qualified through the resolver's canonical name when it has no dot
    (never a loopback name such as ``localhost`` that /etc/hosts may map it to), then with
    GLOBUS_DOMAIN_NAME appended if it still has none; lower case."""
    env = os.environ if environ is None else environ
    if env.get("GLOBUS_HOSTNAME"):
        return env["GLOBUS_HOSTNAME"].lower()
    name = socket.gethostname()
    if "." not in name:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME)
        except (OSError, UnicodeError):
            infos = []
        canonical = infos[0][3] if infos else ""
        if canonical and canonical.lower() not in _LOCALHOST_NAMES:
            name = canonical
    domain = env.get("GLOBUS_DOMAIN_NAME")
    if "." not in name and domain:
        name = f"{name}.{domain}"
    return name.lower()


def format_transfer_stats(record: TransferRecord, host: str) -> str:
    """The reference's key=value line for ``record`` (without a line end)."""
    return (f"DATE={gt_time(record.ended)} HOST={host} PROG=globus-gridftp-server NL.EVNT=FTP_INFO "
            f"START={gt_time(record.started)} USER={_clean(record.user)} FILE={_clean(record.path)} "
            f"BUFFER={record.tcp_buffer} BLOCK={record.block_size} NBYTES={record.nbytes} VOLUME=/ "
            f"STREAMS={record.streams} STRIPES={record.stripes} DEST=[{_clean(record.remote)}] "
            f"TYPE={_GT_TYPES.get(record.kind, record.kind)} CODE={record.code} "
            f"TASKID={_clean(record.task_id) if record.task_id else 'none'}")


class TransferLog:
    """Writes each record to ``log_transfer`` (the bare line, as the reference does) and as a
    ``Transfer stats: LINE`` event of the s3dsi.transfer.stats logger (main log at level TRANSFER).

    The file is written with single ``write`` calls on an O_APPEND descriptor, so the forked session
    processes of the per-session model can share it without interleaving lines.
    """

    def __init__(self, path: str | None, host: str | None = None, opener: LogOpener | None = None) -> None:
        self.host = host or transfer_log_host()
        self.path: str | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._log = get_logger(TRANSFER_LOGGER)
        self.reopen(path, opener)

    def reopen(self, path: str | None, opener: LogOpener | None = None) -> None:
        """Switch to ``path`` (SIGHUP): a path still naming the open file keeps it (rotation by
        copytruncate); another file is opened with ``opener``. Raises OSError and keeps the old file
        if that fails."""
        fd = None
        if path is not None:
            fd = reuse_or_open(path, self._fd if path == self.path else None, opener)
        with self._lock:
            old, self._fd, self.path = self._fd, fd, path
        if old is not None and old != fd:
            os.close(old)

    def close(self) -> None:
        self.reopen(None)

    def fileno(self) -> int | None:
        return self._fd

    def __call__(self, record: TransferRecord) -> None:
        if self._fd is None and not self._log.isEnabledFor(logging.INFO):
            return  # nobody reads it: do not format a line per transfer for nothing
        line = redact_text(format_transfer_stats(record, self.host))
        with self._lock:
            if self._fd is not None:
                try:
                    os.write(self._fd, _encode(line + "\n"))
                except OSError as err:
                    self._log.error("cannot write the transfer log", path=self.path, error=err.strerror)
        self._log.info(f"Transfer stats: {line}")
