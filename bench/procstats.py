"""What the benchmarks read about a running process from /proc: CPU seconds, RSS and its peak, per thread.

The peak (VmHWM) is reset between runs by writing ``5`` to /proc/PID/clear_refs (Linux ≥ 4.0, same
user), so one daemon serves every case and each case still reports its own peak. A daemon that forks
a process per session is measured as a tree: CPU of the live processes plus what reaped children left
in their parents' cutime/cstime, and the peak as the largest VmHWM any process of the tree reached.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024


def _stat_fields(path: str) -> list[str]:
    text = Path(path).read_text()
    return text[text.rindex(")") + 2:].split()  # the command name may hold spaces


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` so far."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            out.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, i = [pid], 0
    while i < len(pids):
        pids.extend(children(pids[i]))
        i += 1
    return pids


def tree_cpu_seconds(pid: int) -> float:
    """CPU of the process tree so far, reaped children included (the difference of two readings is exact)."""
    total = 0
    for p in tree(pid):
        try:
            fields = _stat_fields(f"/proc/{p}/stat")
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy (not idle, not waiting for I/O) since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def machine_load(interval: float = 1.0) -> float:
    """Fraction of the machine's CPUs busy over ``interval`` seconds."""
    before = machine_busy_seconds()
    time.sleep(interval)
    return (machine_busy_seconds() - before) / interval / (os.cpu_count() or 1)


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmHWM") * 1024


def reset_peak_rss(pid: int) -> bool:
    """VmHWM := current RSS; False when the kernel refuses (then peaks are since the process start)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread id."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by thread id, from ``py-spy dump`` (Python 3.11 does not name OS threads)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {}
    out = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, check=False).stdout
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'Thread (\d+) \([^)]*\): "([^"]+)"', out)}


def cpu_by_thread_group(before: dict[int, float], after: dict[int, float],
                        names: dict[int, str]) -> dict[str, float]:
    """CPU seconds between two ``thread_cpu`` readings, per thread-name group (``s3dsi-part_3``)."""
    groups: dict[str, float] = {}
    for tid, seconds in after.items():
        group = re.sub(r"_\d+$", "", names.get(tid, "other (native)"))
        groups[group] = groups.get(group, 0.0) + seconds - before.get(tid, 0.0)
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


class RssSampler:
    """Every ``interval`` seconds, the largest VmHWM of the process tree of ``pid``: ``peak``."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        pids = tree(self.pid)
        while not self._stop.is_set():
            if self.samples % 10 == 0:
                pids = tree(self.pid)
            for p in pids:
                try:
                    self.peak = max(self.peak, peak_rss_bytes(p))
                except (OSError, KeyError):
                    continue
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
