"""Several session-serving processes for one daemon (``workers N``): the workers' parent.

One Python process runs its sessions' protocol, checksums, buffer bookkeeping and boto3 calls under one
GIL (held 15-25 % of an upload's time, docs/performance.md), so a many-core host serving many users needs
more than one. In the single-process models (the service user's, above all) ``serve`` then becomes this
parent and forks ``N`` workers (daemon/worker.py), after the privilege drop, so that every worker runs as
the service account from its first instruction.

**One acceptor.** The parent alone accepts on the control listeners (bound by root before the drop). It
applies the address lists and the connection limits (``server/admission.py``) with exact global counts,
numbers the connection, and passes it to the worker serving the fewest sessions (SCM_RIGHTS over the
worker's channel, daemon/workerwire.py); the worker tells it when the session ended. Rejected: one
``SO_REUSEPORT`` listener per worker (the kernel spreads connections by a hash of the addresses, blind to
load, and every worker would count connection limits on its own) and all workers accepting on one shared
listener (whichever wakes first takes the connection, so a busy worker keeps taking them).

**Shares.** Each worker gets ``memory_budget / N`` for its part buffers (so all of them together never
lend more than ``memory_budget``) and a disjoint part of ``port_range`` for its passive data ports. The
parent has no event loop, no thread and no S3 client (forking a threaded process is unsafe): a selector
loop over the listeners, the workers' channels, the admin socket, the metrics endpoint and a self-pipe
for signals, shared with the per-session parent (daemon/parent.py). ``s3dsi status`` and the metrics add
up the workers' reports and show each worker's sessions, memory and CPU time.

**Signals.** SIGHUP: the parent loads the configuration and the password file (through the root helper
in the service-user model) and adopts the logging settings, then sends each worker what it needs to do
the same (daemon/worker.py). SIGTERM: the parent stops accepting and passes SIGTERM on; each worker
drains for ``shutdown_grace``; workers still alive ``shutdown_grace + 10`` seconds later are killed. A
worker that dies otherwise is replaced (after a pause that grows while replacements keep dying), and the
connections it served are released from the counts.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from s3dsi import __version__
from s3dsi.config.settings import Settings
from s3dsi.daemon import admin, workerwire
from s3dsi.daemon.accounts import Account
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.model import ProcessModel
from s3dsi.daemon.parent import UNAVAILABLE, ForkingParent
from s3dsi.daemon.pwhelper import PasswordHelper, configured_log_files
from s3dsi.daemon.runtime import Listeners, adopt_reloaded, status_line
from s3dsi.daemon.sdnotify import monotonic_usec, sd_notify
from s3dsi.daemon.services import S3Factories, authenticator_from_data, load_authenticator
from s3dsi.daemon.sockets import shown_address
from s3dsi.daemon.worker import WorkerProcess, WorkerSetup
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.logging import get_logger
from s3dsi.observability.metrics import Metrics, render_prometheus
from s3dsi.observability.transferlog import TransferLog
from s3dsi.server.security import SecurityServices

log = get_logger("s3dsi.daemon")
RESPAWN_DELAY = 1.0  # before a dead worker is replaced; doubled while replacements die young
RESPAWN_DELAY_MAX = 30.0
YOUNG = 10.0  # a worker that dies this soon after its start makes the next delay longer
RECONCILE_AFTER = 10.0  # seconds after which a passed connection must show in its worker's reports


AUTO_PARTS = 4  # part buffers of part_size_min each that "auto" leaves every worker at least


def worker_count(settings: Settings, cores: int | None = None) -> int:
    """``workers``, or (auto) one per core, as many as the memory budget allows with ``AUTO_PARTS``
    parts of ``part_size_min`` each (a configured ``workers`` needs only two: the loader checks)."""
    if settings.workers > 0:
        return settings.workers
    available = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(available, settings.memory_budget // (AUTO_PARTS * settings.part_size_min)))


@dataclass
class Worker:
    index: int
    pid: int
    channel: socket.socket
    started: float = field(default_factory=time.monotonic)
    connections: dict[int, str] = field(default_factory=dict)  # number -> peer address, until closed
    passed: dict[int, float] = field(default_factory=dict)  # number -> when it was passed (monotonic)
    report: dict[str, Any] | None = None

    def snapshot(self) -> admin.WorkerSnapshot:
        report = self.report or {}
        return admin.WorkerSnapshot(index=self.index, pid=self.pid, sessions=len(self.connections),
                                    transfers=int(report.get("transfers", 0)),
                                    buffer_in_use=int(report.get("buffer_in_use", 0)),
                                    buffer_budget=int(report.get("buffer_budget", 0)),
                                    cpu_seconds=float(report.get("cpu_seconds", 0.0)),
                                    started=float(report.get("started", 0.0)))


class WorkerPool(ForkingParent):
    child_noun = "worker"

    def __init__(self, source: ConfigSource, settings: Settings, *, count: int, model: ProcessModel,
                 runs_as: Account, listeners: Listeners, authenticator: Authenticator,
                 transfer_log: TransferLog, security: SecurityServices, helper: PasswordHelper | None,
                 metrics: bool, stdout: TextIO | None = None) -> None:
        super().__init__(source, settings, authenticator, listeners, transfer_log, metrics=metrics,
                         stdout=stdout)
        self.count = count
        self.model = model
        self.runs_as = runs_as
        self.security = security
        self.helper = helper
        self.workers: dict[int, Worker] = {}  # by pid
        self._respawn: dict[int, float] = {}  # index -> monotonic time it is due
        self._delay: dict[int, float] = {}  # index -> the next respawn delay

    def _children(self) -> dict[int, Worker]:
        return self.workers

    def _running_fields(self) -> dict[str, Any]:
        return {"model": self.model.value, "account": self.runs_as.name, "workers": self.count}

    def _before_serving(self) -> None:
        for index in range(self.count):
            self._spawn(index)

    def _every_turn(self) -> None:
        self._respawn_due()

    def _on_stopping(self) -> dict[str, Any]:
        self._respawn.clear()
        sessions = sum(len(w.connections) for w in self.workers.values())
        return {"workers": len(self.workers), "sessions": sessions}

    # -- workers ---------------------------------------------------------------------------------------
    def _spawn(self, index: int) -> None:
        ours, theirs = workerwire.channel()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as err:
            ours.close()
            theirs.close()
            log.error("cannot fork a worker", worker=index, error=err.strerror)
            self._schedule_respawn(index)
            return
        if pid == 0:  # pragma: no cover - the worker; its coverage is the functional tests'
            ours.close()
            os._exit(self._worker(index, theirs))
        theirs.close()
        ours.setblocking(False)
        worker = Worker(index, pid, ours)
        self.workers[pid] = worker
        self._selector.register(ours, selectors.EVENT_READ, lambda _s, w=worker: self._from_worker(w))
        log.info("worker started", worker=index, pid=pid)

    def _worker(self, index: int, channel: socket.socket) -> int:  # pragma: no cover - in the worker
        """In the forked worker: shed the parent's state, then serve what the parent passes."""
        try:
            self._shed_in_child()  # the parent alone accepts, and reloads come from it
            for other in self.workers.values():
                other.channel.close()
            if self.helper is not None:
                self.helper.close_inherited()  # the parent's alone: one conversation at a time
            from s3dsi.daemon.eventloop import run_loop  # noqa: PLC0415

            setup = WorkerSetup(index=index, count=self.count, source=self.source, settings=self.settings,
                                model=self.model.value, account=self.runs_as.name,
                                authenticator=self.authenticator, transfer_log=self.transfer_log,
                                metrics=self.metrics_on, security=self.security,
                                login_slots=self.login_slots, throttle=self.throttle,
                                s3_factories=S3Factories(session=self._botocore))
            return run_loop(WorkerProcess(setup, channel).run())
        except BaseException:
            with contextlib.suppress(Exception):
                log.exception("worker failed", worker=index)
            return 70

    def _from_worker(self, worker: Worker) -> None:
        while True:
            try:
                got = workerwire.receive(worker.channel)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                got = None
            if got is None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(worker.channel)
                return
            message, fds = got
            for fd in fds:
                os.close(fd)  # workers pass none up
            self._absorb(worker, message)

    def _absorb(self, worker: Worker, message: dict[str, Any]) -> None:
        if "report" in message and isinstance(message["report"], dict):
            worker.report = message["report"]
            self._reconcile(worker, worker.report.get("open"))
        elif "closed" in message:
            self._release(worker, int(message["closed"]))
        elif message.get("login") == "failed":
            address, user = str(message.get("address", "")), str(message.get("user", ""))
            self.throttle.failed(address, user)
            for other in self.workers.values():
                if other is not worker:
                    workerwire.send(other.channel, {"throttle": {"address": address, "user": user}})

    def _release(self, worker: Worker, number: int) -> None:
        peer = worker.connections.pop(number, None)
        worker.passed.pop(number, None)
        if peer is not None:
            self.admission.release(peer)

    def _reconcile(self, worker: Worker, open_numbers: Any) -> None:
        """A connection passed a while ago that the worker no longer serves was closed, even if that
        message was lost: release it (a recent one may not have been picked up yet)."""
        if not isinstance(open_numbers, list):
            return
        serving = {n for n in open_numbers if isinstance(n, int)}
        settled = time.monotonic() - RECONCILE_AFTER
        for number in [n for n, when in worker.passed.items() if when < settled and n not in serving]:
            self._release(worker, number)

    def _reap(self) -> None:
        for pid, code in self._exited():
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue  # the root helper, say
            self._from_worker(worker)  # its last words, if they are still in the channel
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(worker.channel)
            worker.channel.close()
            for peer in worker.connections.values():
                self.admission.release(peer)
            if worker.report and worker.report.get("metrics"):
                self.finished_metrics.add(worker.report["metrics"])
            if self._stopping_since is None:
                log.error("worker ended; replacing it", worker=worker.index, pid=pid, exit=code,
                          sessions_lost=len(worker.connections))
                young = time.monotonic() - worker.started < YOUNG
                self._schedule_respawn(worker.index, longer=young)
            else:
                log.info("worker stopped", worker=worker.index, pid=pid, exit=code)

    def _schedule_respawn(self, index: int, longer: bool = False) -> None:
        delay = self._delay.get(index, RESPAWN_DELAY)
        self._respawn[index] = time.monotonic() + delay
        self._delay[index] = min(RESPAWN_DELAY_MAX, delay * 2) if longer else RESPAWN_DELAY

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for index, due in list(self._respawn.items()):
            if due <= now:
                del self._respawn[index]
                self._spawn(index)

    # -- connections -----------------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        admitted = self._admit(listener)
        if admitted is None:
            return
        conn, host, number = admitted
        for worker in sorted(self.workers.values(), key=lambda w: (len(w.connections), w.index)):
            if workerwire.send(worker.channel, {"conn": number, "peer": host}, [conn.fileno()]):
                worker.connections[number] = host
                worker.passed[number] = time.monotonic()
                conn.close()
                self.finished_metrics.session_opened()
                return
        self.admission.release(host)
        log.error("no worker could take a connection", remote=host)
        self._refuse(conn, UNAVAILABLE)

    # -- SIGHUP ----------------------------------------------------------------------------------------
    def reload(self) -> bool:
        sd_notify("RELOADING=1", monotonic_usec())
        try:
            loaded = self.source.load()
            password = self.helper.read() if self.helper is not None else None
            if password is not None:
                authenticator = authenticator_from_data(loaded, password.path, password.data)
            else:
                authenticator = load_authenticator(loaded)
        except Exception as err:
            log.error("reload failed; the running configuration stays", error=str(err))
            sd_notify("READY=1", self._status_line())
            return False
        opener = self.helper.log_opener if self.helper is not None else None
        self.settings = adopt_reloaded(self.settings, loaded, self.transfer_log, opener)
        self.authenticator = authenticator  # for workers started from now on
        self.admission.configure(self.settings)
        for worker in list(self.workers.values()):
            self._push_reload(worker, password)
        sd_notify("READY=1", self._status_line())
        return True

    def _push_reload(self, worker: Worker, password: Any) -> None:
        """What ``worker`` needs to take up the reload: the password file (when only the root helper could
        read it) and the log files (when only the helper may open them)."""
        request: dict[str, Any] = {}
        fds: list[int] = []
        try:
            if password is not None:
                request["password"] = password.path
                if password.path is not None:
                    fds.append(workerwire.memfd_with(password.data))
            if self.helper is not None:
                paths = []
                for path in sorted(configured_log_files(self.settings)):
                    try:
                        fds.append(self.helper.log_opener(path))
                    except OSError:
                        continue  # the worker tries itself, and says what went wrong
                    paths.append(path)
                request["logs"] = paths
            if not workerwire.send(worker.channel, {"reload": request}, fds):
                log.warning("a worker could not be told to reload", worker=worker.index)
        finally:
            for fd in fds:
                os.close(fd)

    # -- status, admin socket, metrics -----------------------------------------------------------------
    def _sessions(self) -> list[admin.SessionSnapshot]:
        found = []
        for worker in self.workers.values():
            for data in (worker.report or {}).get("sessions", []):
                with contextlib.suppress(TypeError, ValueError):
                    found.append(admin.SessionSnapshot.from_json(data))
        return found

    def _status_line(self) -> str:
        sessions = sum(len(w.connections) for w in self.workers.values())
        running = sum(int((w.report or {}).get("transfers", 0)) for w in self.workers.values())
        return status_line(sessions, running)

    def status(self) -> admin.DaemonStatus:
        return admin.DaemonStatus(pid=os.getpid(), version=__version__, model=self.model.value,
                                  started=self.started, account=self.runs_as.name,
                                  addresses=tuple(shown_address(s) for s in self.listeners.control)
                                  if self._stopping_since is None else (),
                                  sessions=tuple(self._sessions()),
                                  workers=tuple(w.snapshot() for w in
                                                sorted(self.workers.values(), key=lambda w: w.index)))

    def render_metrics(self) -> bytes:
        workers = sorted(self.workers.values(), key=lambda w: w.index)
        snapshots = [w.snapshot() for w in workers]
        total = Metrics.combined([self.finished_metrics.snapshot(),
                                  *((w.report or {}).get("metrics") or {} for w in workers)])
        gauges = {"s3dsi_sessions": float(sum(s.sessions for s in snapshots)),
                  "s3dsi_transfers_running": float(sum(s.transfers for s in snapshots)),
                  "s3dsi_buffer_bytes_in_use": float(sum(s.buffer_in_use for s in snapshots)),
                  "s3dsi_buffer_budget_bytes": float(self.settings.memory_budget)}
        def series(value: Callable[[admin.WorkerSnapshot], float]) -> list[tuple[dict[str, str], float]]:
            return [({"worker": str(s.index)}, float(value(s))) for s in snapshots]

        per_worker = {"s3dsi_worker_sessions": series(lambda s: s.sessions),
                      "s3dsi_worker_transfers_running": series(lambda s: s.transfers),
                      "s3dsi_worker_buffer_bytes_in_use": series(lambda s: s.buffer_in_use),
                      "s3dsi_worker_cpu_seconds_total": series(lambda s: s.cpu_seconds)}
        return render_prometheus(total, gauges, per_worker)

