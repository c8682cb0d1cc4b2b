"""How many workers, what each gets, the workers' parent-worker messages, and how status and metrics
show them."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from s3dsi.cli.status import render
from s3dsi.config.errors import ConfigError
from s3dsi.config.loader import load_settings
from s3dsi.config.settings import MiB, Settings
from s3dsi.daemon import workerwire
from s3dsi.daemon.admin import DaemonStatus, SessionSnapshot, WorkerSnapshot
from s3dsi.daemon.worker import port_slice, worker_settings
from s3dsi.daemon.workers import worker_count
from s3dsi.observability.metrics import Metrics, render_prometheus


def test_auto_is_one_per_core_within_the_memory_budget() -> None:
    settings = Settings(memory_budget=640 * MiB, part_size_min=16 * MiB)  # 4 parts each: room for 10
    assert worker_count(settings, cores=2) == 2
    assert worker_count(settings, cores=64) == 10
    assert worker_count(Settings(memory_budget=160 * MiB, part_size_min=16 * MiB), cores=64) == 2  # defaults
    assert worker_count(Settings(memory_budget=48 * MiB, part_size_min=16 * MiB), cores=64) == 1
    assert worker_count(Settings(workers=3), cores=64) == 3  # as configured


def test_each_worker_gets_its_share_of_memory_and_ports() -> None:
    settings = Settings(memory_budget=100 * MiB, port_range=(50000, 50009))
    shares = [worker_settings(settings, i, 3) for i in range(3)]
    assert [s.memory_budget for s in shares] == [100 * MiB // 3] * 3
    assert sum(s.memory_budget for s in shares) <= settings.memory_budget
    assert [s.port_range for s in shares] == [(50000, 50002), (50003, 50005), (50006, 50009)]
    assert worker_settings(settings, 0, 1) is settings
    assert port_slice(None, 1, 4) is None
    slices = [port_slice((1000, 1099), i, 7) for i in range(7)]
    covered = [port for r in slices if r is not None for port in range(r[0], r[1] + 1)]
    assert covered == list(range(1000, 1100))  # disjoint, and nothing left out


def test_the_configuration_refuses_workers_it_cannot_feed(tmp_path: Path) -> None:
    conf = tmp_path / "gridftp.d"
    conf.mkdir()
    s3 = tmp_path / "s3.conf"
    s3.write_text("memory_budget = 64M\npart_size_min = 16M\n")

    def load(line: str) -> Settings:
        (conf / "gridftp").write_text(line)
        return load_settings(config_file="/dev/null", config_dir=str(conf), s3_conf=str(s3), environ={})

    assert load("workers auto\n").workers == 0
    assert load("workers 2\n").workers == 2
    with pytest.raises(ConfigError, match="3 workers share memory_budget"):
        load("workers 3\n")
    with pytest.raises(ConfigError, match="one passive data port each"):
        load('workers 2\nport_range "50000,50000"\n')
    with pytest.raises(ConfigError, match="auto or a non-negative integer"):
        load("workers -1\n")


def test_messages_carry_descriptors_and_keep_their_boundaries() -> None:
    parent, worker = workerwire.channel()
    with parent, worker:
        left, right = socket.socketpair()
        with left, right:
            assert workerwire.send(parent, {"conn": 7, "peer": "192.0.2.1"}, [left.fileno()])
            assert workerwire.send(parent, {"throttle": {"address": "a", "user": "u"}})
            got = workerwire.receive(worker)
            assert got is not None
            message, fds = got
            assert message == {"conn": 7, "peer": "192.0.2.1"} and len(fds) == 1
            with socket.socket(fileno=fds[0]) as passed:
                passed.sendall(b"hello")
                assert right.recv(5) == b"hello"
            assert workerwire.receive(worker) == ({"throttle": {"address": "a", "user": "u"}}, [])
        parent.close()
        assert workerwire.receive(worker) is None  # the parent is gone: end of stream
    fd = workerwire.memfd_with(b"alice:$argon2id$...\n")
    assert workerwire.read_fd(fd) == b"alice:$argon2id$...\n"
    with pytest.raises(OSError):
        os.fstat(fd)  # read_fd closed it


def test_status_shows_each_worker_and_metrics_label_them() -> None:
    workers = (WorkerSnapshot(0, 101, sessions=2, transfers=1, buffer_in_use=8 * MiB,
                              buffer_budget=32 * MiB, cpu_seconds=12.5),
               WorkerSnapshot(1, 102, sessions=1, buffer_budget=32 * MiB, cpu_seconds=3.0))
    status = DaemonStatus(pid=100, version="0.1.0", model="service-user", started=0.0, account="globus-s3",
                          sessions=(SessionSnapshot("000001", "192.0.2.1", 0.0, "alice", 101),),
                          workers=workers)
    assert DaemonStatus.from_json(status.to_json()) == status
    text = render(status, now=60.0)
    assert "running as globus-s3, 2 workers, up 1m00s" in text
    rows = [line.split() for line in text.splitlines()]
    assert ["0", "101", "2", "1", "8.0", "MiB", "of", "32.0", "MiB", "12.5", "s"] in rows
    labelled = {"s3dsi_worker_sessions": [({"worker": "0"}, 2.0), ({"worker": "1"}, 1.0)],
                "s3dsi_worker_cpu_seconds_total": [({"worker": "0"}, 12.5)]}
    exposition = render_prometheus(Metrics(), {"s3dsi_sessions": 3.0}, labelled).decode()
    assert 's3dsi_worker_sessions{worker="1"} 1.0' in exposition
    assert 's3dsi_worker_cpu_seconds_total{worker="0"} 12.5' in exposition


def test_the_parent_releases_connections_whose_end_it_was_not_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's "closed" message that got lost must not hold a connection slot for ever: a connection
    passed long ago that the worker's reports no longer list is released; a fresh one is not."""
    from s3dsi.daemon import workers as workers_module  # noqa: PLC0415
    from s3dsi.daemon.accounts import Account  # noqa: PLC0415
    from s3dsi.daemon.configsource import ConfigSource  # noqa: PLC0415
    from s3dsi.daemon.model import ProcessModel  # noqa: PLC0415
    from s3dsi.daemon.runtime import Listeners  # noqa: PLC0415
    from s3dsi.observability.transferlog import TransferLog  # noqa: PLC0415
    from s3dsi.server.security import SecurityServices  # noqa: PLC0415

    settings = Settings(connections_max_per_address=2)
    pool = workers_module.WorkerPool(ConfigSource(), settings, count=2, model=ProcessModel.INVOKER,
                                     runs_as=Account.current(), listeners=Listeners([]),
                                     authenticator=None,  # type: ignore[arg-type]
                                     transfer_log=TransferLog(None), security=SecurityServices(), helper=None,
                                     metrics=False)
    parent, child = workerwire.channel()
    with parent, child:
        worker = workers_module.Worker(0, 4242, parent)
        pool.workers[worker.pid] = worker
        for number in (1, 2):
            assert pool.admission.admit("192.0.2.7") is None
            worker.connections[number] = "192.0.2.7"
            worker.passed[number] = 0.0 if number == 1 else 1e12  # 1: long ago; 2: just now
        assert pool.admission.admit("192.0.2.7") is not None  # two held: the limit
        pool._absorb(worker, {"report": {"open": []}})
        assert list(worker.connections) == [2], "the old one released, the new one kept"
        assert pool.admission.admit("192.0.2.7") is None
        pool._absorb(worker, {"closed": 2})
        assert worker.connections == {}
