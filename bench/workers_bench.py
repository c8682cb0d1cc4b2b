"""Concurrent transfers with ``workers 1`` and ``workers 2`` in the same run, and the GIL-bound ceiling of
one daemon process (issue 13; a measurement, not a test).

    .venv/bin/python bench/workers_bench.py [--size 256M] [--sessions 4] [--parallel 4] [--repeat 3]

* starts ``juicefs gateway`` on a fresh volume in /dev/shm (bench/juicefs_gateway.py) and two daemons
  against it, configured like a site with the Settings defaults for parts and memory: one with
  ``workers 1``, one with ``workers 2`` (each worker then has half of ``memory_budget``);
* every round, for each daemon in turn: ``--sessions`` concurrent ``globus-url-copy -p N`` uploads of a
  ``--size`` file (one object each), then the same downloads; uploads are checked (size), downloads
  compared byte for byte, outside the timed part;
* prints per daemon and direction the aggregate MiB/s (all bytes over the wall time of the slowest
  client; median over rounds), the daemon's CPU seconds per GiB (the whole process tree) and the CPU each
  worker process used, and the machine's load from other work meanwhile;
* the GIL: one ``-p N`` upload and one download through the ``workers 1`` daemon with ``py-spy record
  --gil`` attached (it keeps only samples in which a thread holds the GIL). GIL-held seconds per GiB
  bound what one process can move whatever the cores: ``1 / (GIL s/GiB)`` GiB/s. The report projects
  that ceiling and how many workers (and cores) a 100 Gbit/s host needs.

On the 2-core development machine the clients, the store and the daemon share two cores, so the
concurrent numbers mostly show how the CPU is divided; the per-GiB costs and the GIL fraction carry over
to bigger hosts (docs/performance.md).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import procstats  # noqa: E402
from benchfiles import GiB, MiB, make_file, parse_size, same_bytes  # noqa: E402
from daemon_profile import _py_spy  # noqa: E402
from juicefs_gateway import find_juicefs, start_gateway  # noqa: E402
from transfer_bench import Variant, wait_for_quiet  # noqa: E402

LINK_100G = 100e9 / 8 / GiB  # 100 Gbit/s in GiB/s
SPY_RATE = 250  # py-spy samples per second


@dataclass
class Concurrent:
    variant: str
    direction: str
    nbytes: int
    wall: float
    daemon_cpu: float
    worker_cpu: list[float]
    others: float

    @property
    def mib_s(self) -> float:
        return self.nbytes / MiB / self.wall


@dataclass
class GilRun:
    direction: str
    nbytes: int
    wall: float
    cpu: float
    gil_seconds: float
    samples: int


@dataclass
class Results:
    runs: list[Concurrent] = field(default_factory=list)
    gil: list[GilRun] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)


def workers_of(pid: int) -> list[int]:
    """The session-serving processes of a daemon: its children (workers), or itself when it has none
    (the root helper of the service-user model does not run here)."""
    return procstats.children(pid) or [pid]


class Stalled(Exception):
    """The clients did not finish within the time limit (they were killed)."""


def run_clients(argvs: list[list[str]], env: dict[str, str], limit: float = 300.0) -> float:
    """Start every client at once; the wall time until the last one ended. Stalled (after killing
    them, by PID) when they take longer than ``limit`` seconds."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
             for argv in argvs]
    failures = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=max(1.0, limit - (time.perf_counter() - t0)))
            if proc.returncode != 0:
                failures.append(err.decode(errors="replace")[-1500:])
    except subprocess.TimeoutExpired:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        raise Stalled from None
    wall = time.perf_counter() - t0
    if failures:
        raise SystemExit("a client failed:\n" + "\n---\n".join(failures))
    return wall


def concurrent(variant: Variant, direction: str, args: argparse.Namespace, src: Path, work: Path,
               bucket: str, env: dict[str, str]) -> Concurrent | None:
    assert variant.url is not None
    keys = [f"{variant.label.replace(' ', '')}-{n}" for n in range(args.sessions)]
    outs = [work / f"down-{n}.bin" for n in range(args.sessions)]
    argvs = []
    for key, out in zip(keys, outs, strict=True):
        remote, local = variant.url(f"/{bucket}/{key}"), f"file://{src if direction == 'up' else out}"
        argvs.append(["globus-url-copy", "-p", str(args.parallel),
                      *((local, remote) if direction == "up" else (remote, local))])
    pids = workers_of(variant.pid)
    cpu0 = procstats.tree_cpu_seconds(variant.pid)
    each0 = [procstats.cpu_seconds(p) for p in pids]
    busy0 = procstats.machine_busy_seconds()
    try:
        wall = run_clients(argvs, env, limit=args.limit)
    except Stalled:
        print(f"  {variant.label:<10} {direction:<4} STALLED: not done after {args.limit:.0f} s (killed)",
              flush=True)
        return None
    daemon_cpu = procstats.tree_cpu_seconds(variant.pid) - cpu0
    each = [procstats.cpu_seconds(p) - c for p, c in zip(pids, each0, strict=True)]
    nbytes = src.stat().st_size * args.sessions
    result = Concurrent(variant.label, direction, nbytes, wall, daemon_cpu, each, 0.0)
    busy = procstats.machine_busy_seconds() - busy0
    result.others = max(0.0, busy - daemon_cpu) / wall  # clients, store and other people's work
    if direction == "down":
        for out in outs:
            if not same_bytes(src, out):
                raise SystemExit(f"{out} differs from {src}")
            out.unlink()
    print(f"  {variant.label:<10} {direction:<4} {result.mib_s:7.0f} MiB/s  daemon {daemon_cpu:6.2f} s "
          f"({daemon_cpu / (nbytes / GiB):4.2f} s/GiB)  per worker "
          f"{', '.join(f'{c:.2f}' for c in each)} s", flush=True)
    return result


def gil_run(variant: Variant, direction: str, args: argparse.Namespace, src: Path, work: Path,
            bucket: str, env: dict[str, str]) -> GilRun | None:
    """One -p N transfer with py-spy --gil on the daemon process."""
    spy = _py_spy()
    if spy is None:
        print("  py-spy not found: `.venv/bin/pip install py-spy`", flush=True)
        return None
    assert variant.url is not None
    pid = workers_of(variant.pid)[0]
    raw = work / f"gil-{direction}.txt"
    spy_proc = subprocess.Popen([spy, "record", "--gil", "-r", str(SPY_RATE), "-f", "raw", "-o", str(raw),
                                 "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the transfer starts
    out = work / "gil-down.bin"
    remote, local = variant.url(f"/{bucket}/gil"), f"file://{src if direction == 'up' else out}"
    argv = ["globus-url-copy", "-p", str(args.parallel),
            *((local, remote) if direction == "up" else (remote, local))]
    cpu0 = procstats.cpu_seconds(pid)
    wall = run_clients([argv], env, limit=args.limit)
    cpu = procstats.cpu_seconds(pid) - cpu0
    spy_proc.send_signal(2)  # SIGINT: py-spy writes its file
    spy_proc.wait(60)
    samples = 0
    for line in raw.read_text().splitlines() if raw.exists() else []:
        _, _, count = line.rpartition(" ")
        if count.isdigit():
            samples += int(count)
    if direction == "down":
        out.unlink(missing_ok=True)
    run = GilRun(direction, src.stat().st_size, wall, cpu, samples / SPY_RATE, samples)
    print(f"  GIL {direction:<4} {run.nbytes / MiB / wall:7.0f} MiB/s  CPU {cpu:5.2f} s  GIL held "
          f"{run.gil_seconds:5.2f} s ({100 * run.gil_seconds / wall:4.1f} % of the wall time, "
          f"{samples} samples)", flush=True)
    return run


def report(results: Results, args: argparse.Namespace) -> None:
    print(f"\n{args.sessions} concurrent sessions x globus-url-copy -p {args.parallel}, "
          f"{parse_size(args.size) / MiB:.0f} MiB each, medians of {args.repeat} round(s):")
    print(f"{'daemon':<10} {'dir':<4} {'MiB/s':>7} {'min-max':>11} {'CPU s/GiB':>9}  "
          f"{'CPU per worker (s/GiB)':<24} {'others (CPUs)':>13}")
    for label, direction in dict.fromkeys((r.variant, r.direction) for r in results.runs):
        group = [r for r in results.runs if r.variant == label and r.direction == direction]
        speeds = sorted(r.mib_s for r in group)
        per_gib = statistics.median(r.daemon_cpu / (r.nbytes / GiB) for r in group)
        workers = len(group[0].worker_cpu)
        each = [statistics.median(r.worker_cpu[i] / (r.nbytes / GiB) for r in group) for i in range(workers)]
        shares = ", ".join(f"{c:.2f}" for c in each)
        print(f"{label:<10} {direction:<4} {statistics.median(speeds):7.0f} "
              f"{speeds[0]:5.0f}-{speeds[-1]:<5.0f} {per_gib:9.2f}  {shares:<24} "
              f"{statistics.median(r.others for r in group):13.2f}")
    if results.stalled:
        print(f"stalled (clients killed after --limit, not in the medians): {', '.join(results.stalled)}")
    for run in results.gil:
        gib = run.nbytes / GiB
        gil_per_gib, cpu_per_gib = run.gil_seconds / gib, run.cpu / gib
        ceiling = 1 / gil_per_gib if gil_per_gib else math.inf
        need = LINK_100G * gil_per_gib
        share = 100 * gil_per_gib / cpu_per_gib if cpu_per_gib else 0.0
        print(f"\nGIL, one process, {run.direction}: {gil_per_gib:.2f} GIL-held s/GiB of {cpu_per_gib:.2f} "
              f"CPU s/GiB ({share:.0f} % of its CPU time holds the GIL)")
        print(f"  one process cannot move more than ~{ceiling:.1f} GiB/s ({ceiling * GiB * 8 / 1e9:.0f} "
              f"Gbit/s) whatever its cores; 100 Gbit/s ({LINK_100G:.1f} GiB/s) needs >= {math.ceil(need)} "
              f"workers by the GIL and >= {LINK_100G * cpu_per_gib:.0f} cores for the daemon's CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", default="256M", help="bytes per session's file (default 256M)")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=4, help="globus-url-copy -p (default 4)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gil-size", default="1G", help="file size of the GIL measurement (0: skip it)")
    parser.add_argument("--limit", type=float, default=180.0,
                        help="seconds the clients of one case may take before they count as stalled")
    parser.add_argument("--wait-idle", type=float, default=60.0,
                        help="seconds to wait for the machine to calm down before each round")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    results = Results()
    with tempfile.TemporaryDirectory(prefix="s3dsi-workers-", dir="/dev/shm") as scratch:
        work = Path(scratch)
        gateway = start_gateway(work / "jfs", find_juicefs())
        variants = [Variant("workers 1", gridftp_options={"workers": "1"}),
                    Variant("workers 2", gridftp_options={"workers": "2"})]
        try:
            for n, variant in enumerate(variants):
                variant.start(gateway, work / f"s3dsi-{n}")
            src = work / "source.bin"
            make_file(src, parse_size(args.size))
            for variant in variants:  # warm up: clients created, buffers touched
                concurrent(variant, "up", argparse.Namespace(**{**vars(args), "sessions": 1}), src, work,
                           gateway.bucket, env)
            for rnd in range(args.repeat):
                wait_for_quiet(args.wait_idle)
                print(f"round {rnd + 1}/{args.repeat}", flush=True)
                for variant in variants:
                    for direction in ("up", "down"):
                        run = concurrent(variant, direction, args, src, work, gateway.bucket, env)
                        if run is None:
                            results.stalled.append(f"{variant.label} {direction} round {rnd + 1}")
                        else:
                            results.runs.append(run)
            gil_size = parse_size(args.gil_size)
            if gil_size:
                big = work / "gil.bin"
                make_file(big, gil_size, seed_file=src)
                wait_for_quiet(args.wait_idle)
                for direction in ("up", "down"):
                    run = gil_run(variants[0], direction, args, big, work, gateway.bucket, env)
                    if run is not None:
                        results.gil.append(run)
        finally:
            for variant in variants:
                if variant.daemon is not None:
                    variant.daemon.stop()
            gateway.stop()
    report(results, args)


if __name__ == "__main__":
    main()
