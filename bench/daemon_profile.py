"""Where the daemon's CPU goes during one transfer: per-thread CPU, a native profile, the Python view.

* per-thread CPU seconds from /proc/PID/task (exact), grouped by Python thread name (from py-spy dump);
* ``perf record -e cpu-clock`` (on-CPU samples only, native and kernel code included), summarised by
  library and symbol; libcrypto is stripped here, so its samples are shown as one line;
* ``py-spy record --gil`` (samples of whichever thread holds the GIL: the Python-level cost),
  summarised by the innermost Python function.
Raw data is left in files next to ``out_prefix``; only the text summary is meant to be kept.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import procstats

TOP = 14


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    time.sleep(0.5)  # let the profiler attach before the transfer starts
    return proc


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def profile_transfer(pid: int, transfer: Callable[[], None], out_prefix: Path) -> str:
    """Run ``transfer()`` while profiling the daemon ``pid``; returns a text report."""
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    perf = shutil.which("perf")
    spy = _py_spy()
    perf_data, spy_data = out_prefix.with_suffix(".perf.data"), out_prefix.with_suffix(".gil.txt")
    perf_proc = spy_proc = None
    if perf:
        perf_proc = _start([perf, "record", "-F", "499", "-e", "cpu-clock", "-p", str(pid),
                            "-o", str(perf_data)], out_prefix.with_suffix(".perf.log"))
    if spy:
        spy_proc = _start([spy, "record", "--gil", "-r", "200", "-f", "raw", "-o", str(spy_data),
                           "--pid", str(pid)], out_prefix.with_suffix(".spy.log"))
    before, cpu0, t0 = procstats.thread_cpu(pid), procstats.cpu_seconds(pid), time.perf_counter()
    try:
        transfer()
    finally:
        wall, cpu = time.perf_counter() - t0, procstats.cpu_seconds(pid) - cpu0
        after = procstats.thread_cpu(pid)
        _stop(perf_proc)
        _stop(spy_proc)
    groups = procstats.cpu_by_thread_group(before, after, procstats.thread_names(pid))
    lines = [f"daemon CPU {cpu:.2f} s in {wall:.2f} s (profilers attached); by thread:"]
    lines += [f"  {seconds:6.2f} s  {name}" for name, seconds in groups.items() if seconds >= 0.01]
    if perf is not None and perf_proc is not None and perf_data.exists():
        lines += ["native profile (perf, on-CPU samples, % of the daemon's CPU):"]
        lines += [f"  {line}" for line in perf_summary(perf, perf_data)]
    if spy_proc is not None and spy_data.exists():
        lines += ["Python code holding the GIL (py-spy --gil, % of GIL-holding samples; self):"]
        lines += [f"  {line}" for line in gil_summary(spy_data)]
    return "\n".join(lines)


def perf_summary(perf: str, data: Path) -> list[str]:
    argv = [perf, "report", "-i", str(data), "--no-children", "--sort", "dso,sym", "--stdio", "-g", "none",
            "--percent-limit", "0.3"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False,
                         env={**os.environ, "PAGER": "cat"}).stdout
    merged: dict[str, float] = collections.defaultdict(float)
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, _, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        if sym.startswith("0x"):
            sym = "(stripped)"
        merged[f"{dso} {sym}"] += pct
    top = sorted(merged.items(), key=lambda kv: -kv[1])[:TOP]
    return [f"{pct:5.1f}%  {what}" for what, pct in top]


def gil_summary(data: Path) -> list[str]:
    self_counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in data.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        self_counts[re.sub(r":\d+\)$", ")", frames[-1])] += int(count)
    if not total:
        return ["(no samples)"]
    return [f"{100 * n / total:5.1f}%  {what}" for what, n in self_counts.most_common(TOP)]
