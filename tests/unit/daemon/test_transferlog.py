"""The reference server's "Transfer stats" line, and where TransferLog writes it."""

from __future__ import annotations

import calendar
import errno
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from s3dsi.observability.logging import TRANSFER_LOGGER
from s3dsi.observability.transferlog import (
    TransferLog,
    TransferRecord,
    format_transfer_stats,
    gt_time,
    transfer_log_host,
)

START = calendar.timegm((2025, 1, 2, 3, 4, 5)) + 0.000001
END = calendar.timegm((2025, 1, 2, 3, 4, 7)) + 0.5


def record(**changes: object) -> TransferRecord:
    base = {"kind": "STOR", "path": "/bucket/dir/file.bin", "user": "alice", "nbytes": 1048576,
            "started": START, "ended": END, "code": 226, "remote": "192.0.2.7", "streams": 4,
            "block_size": 1048576, "tcp_buffer": 0, "task_id": None}
    base.update(changes)
    return TransferRecord(**base)  # type: ignore[arg-type]


def test_the_line_has_every_field_in_the_reference_order() -> None:
    line = format_transfer_stats(record(), "gw.example.org")
    assert line == ("DATE=20250102030407.500000 HOST=gw.example.org PROG=globus-gridftp-server "
                    "NL.EVNT=FTP_INFO START=20250102030405.000001 USER=alice FILE=/bucket/dir/file.bin "
                    "BUFFER=0 BLOCK=1048576 NBYTES=1048576 VOLUME=/ STREAMS=4 STRIPES=1 DEST=[192.0.2.7] "
                    "TYPE=STOR CODE=226 TASKID=none")


def test_task_id_append_and_failure_codes() -> None:
    line = format_transfer_stats(record(kind="APPE", code=451, task_id="fts-job-42"), "h")
    assert "TYPE=ESTO CODE=451 TASKID=fts-job-42" in line


def test_control_characters_in_a_path_cannot_forge_a_line() -> None:
    line = format_transfer_stats(record(path="/b/evil\nDATE=1 CODE=226"), "h")
    assert "\n" not in line
    assert "FILE=/b/evil?DATE=1 CODE=226" in line


@pytest.mark.parametrize(("moment", "text"), [
    (0.0, "19700101000000.000000"),
    (calendar.timegm((2024, 2, 29, 23, 59, 59)) + 0.9999996, "20240301000000.000000"),
])
def test_gt_time(moment: float, text: str) -> None:
    assert gt_time(moment) == text


def test_durations_and_directions() -> None:
    assert record().duration == pytest.approx(END - START)
    assert record().direction == "in"
    assert record(kind="ERET").direction == "out"
    assert record(kind="MLSD").direction is None
    assert not record(code=426).succeeded


def test_transfer_log_writes_the_bare_line_and_a_logger_event(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "transfer.log"
    log = TransferLog(str(path), host="gw")
    with caplog.at_level(logging.INFO, logger=TRANSFER_LOGGER):
        log(record())
        log(record(kind="RETR", code=426))
    lines = path.read_text().splitlines()
    assert [line.split(" TYPE=")[1] for line in lines] == ["STOR CODE=226 TASKID=none",
                                                           "RETR CODE=426 TASKID=none"]
    assert lines[0].startswith("DATE=20250102030407.500000 HOST=gw ")
    assert (path.stat().st_mode & 0o777) == 0o600
    events = [r.getMessage() for r in caplog.records if r.name == TRANSFER_LOGGER]
    assert len(events) == 2
    assert "Transfer stats: DATE=" in events[0]


def test_reopen_follows_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "transfer.log"
    log = TransferLog(str(path), host="gw")
    log(record())
    path.rename(tmp_path / "transfer.log.1")
    log.reopen(str(path))
    log(record(code=500))
    assert "CODE=226" in (tmp_path / "transfer.log.1").read_text()
    assert "CODE=500" in path.read_text()
    log.close()
    log(record())  # no file any more: only the logger event
    assert len(path.read_text().splitlines()) == 1


@pytest.fixture
def host_named(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str | None], None]:
    """Pretend the system host name is NAME and the resolver's canonical name for it is CANONICAL
    (None: the resolver fails); getfqdn, which maps through /etc/hosts, says localhost."""

    def setup(name: str, canonical: str | None) -> None:
        def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
            assert host == name
            if canonical is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, canonical, ("127.0.1.1", 0))]

        monkeypatch.setattr(socket, "gethostname", lambda: name)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "getfqdn", lambda *a: "localhost")

    return setup


@pytest.mark.parametrize(("name", "canonical", "env", "host"), [
    ("vm", "localhost", {}, "vm"),  # /etc/hosts maps the name to a loopback name: keep the host name
    ("vm", None, {}, "vm"),
    ("gw", "gw.example.org", {}, "gw.example.org"),
    ("GW.Example.ORG", "localhost", {}, "gw.example.org"),  # has a dot: used as it is, lower case
    ("vm", "localhost.localdomain", {"GLOBUS_DOMAIN_NAME": "example.org"}, "vm.example.org"),
    ("vm", "localhost", {"GLOBUS_HOSTNAME": "GridFTP.Example.org"}, "gridftp.example.org"),
])
def test_the_host_is_named_as_the_reference_server_names_it(host_named: Callable[[str, str | None], None],
                                                            name: str, canonical: str | None,
                                                            env: dict[str, str], host: str) -> None:
    host_named(name, canonical)
    assert transfer_log_host(env) == host


def test_the_transfer_log_never_says_localhost_for_a_named_host(host_named: Callable[[str, str | None], None],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GLOBUS_HOSTNAME", "GLOBUS_DOMAIN_NAME"):
        monkeypatch.delenv(name, raising=False)
    host_named("vm", "localhost")
    assert TransferLog(None).host == "vm"


def test_a_reopen_of_the_same_path_keeps_the_open_file(tmp_path: Path) -> None:
    path = tmp_path / "transfer.log"
    log = TransferLog(str(path), host="gw")
    fd = log.fileno()

    def refuse(name: str) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", name)

    log.reopen(str(path), refuse)  # nothing to open: the path still names the open file
    assert log.fileno() == fd
    with pytest.raises(PermissionError):
        log.reopen(str(tmp_path / "other.log"), refuse)
    assert (log.fileno(), log.path) == (fd, str(path))  # a refused switch keeps the old file
    log(record())
    assert "CODE=226" in path.read_text()
    log.close()
