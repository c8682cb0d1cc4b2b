"""The benchmark's records and summary: one ``Run`` per timed transfer, medians and ratios per case."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from benchfiles import GiB, MiB


@dataclass
class Run:
    case: str
    direction: str
    nbytes: int
    wall: float
    daemon_cpu: float = 0.0
    client_cpu: float = 0.0
    store_cpu: float = 0.0
    other_cpu: float = 0.0  # everything else on the machine meanwhile (other people's work: noise)
    peak_rss: int = 0
    round: int = 0

    @property
    def mib_s(self) -> float:
        return self.nbytes / MiB / self.wall


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    """Medians per case. The ratio is the median over rounds of the case's speed divided by the
    baseline's of the same direction in the same round (robust to load that drifts between rounds)."""
    baseline: dict[tuple[int, str], float] = {}  # the best direct client of each round and direction
    for r in runs:
        if r.case.startswith("direct"):
            baseline[(r.round, r.direction)] = max(r.mib_s, baseline.get((r.round, r.direction), 0.0))
    overall = {d: statistics.median(v for (_, dd), v in baseline.items() if dd == d)
               for d in {d for _, d in baseline}}
    rows: list[dict[str, Any]] = []
    for case, direction in dict.fromkeys((r.case, r.direction) for r in runs):
        group = [r for r in runs if r.case == case and r.direction == direction]
        speeds = sorted(r.mib_s for r in group)
        ratios = [r.mib_s / baseline.get((r.round, direction), overall.get(direction, 0.0) or float("nan"))
                  for r in group] if direction in overall else []

        def per_gib(attr: str, group: list[Run] = group) -> float:
            return statistics.median(float(getattr(r, attr)) / (r.nbytes / GiB) for r in group)

        rows.append({
            "case": case, "direction": direction, "n": len(group), "size_gib": group[0].nbytes / GiB,
            "mib_s": statistics.median(speeds), "min": speeds[0], "max": speeds[-1],
            "ratio": statistics.median(ratios) if ratios else None,
            "daemon_cpu_per_gib": per_gib("daemon_cpu"), "client_cpu_per_gib": per_gib("client_cpu"),
            "store_cpu_per_gib": per_gib("store_cpu"),
            "others_cpus": statistics.median(r.other_cpu for r in group),
            "peak_rss_mib": max(r.peak_rss for r in group) / MiB,
        })
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print(f"{'case':<28} {'dir':<5} {'GiB':>4} {'MiB/s':>6} {'min-max':>11} {'ratio':>5} "
          f"{'daemon':>6} {'client':>6} {'store':>6} {'peak RSS':>8} {'others':>6}")
    print(f"{'':<28} {'':<5} {'':>4} {'median':>6} {'':>11} {'':>5} {'CPU s/GiB (median)':>20} {'MiB':>8} "
          f"{'CPUs':>6}")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        rss = f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] else "-"
        print(f"{r['case']:<28} {r['direction']:<5} {r['size_gib']:4.1f} {r['mib_s']:6.0f} "
              f"{r['min']:5.0f}-{r['max']:<5.0f} {ratio:>5} {r['daemon_cpu_per_gib']:6.2f} "
              f"{r['client_cpu_per_gib']:6.2f} {r['store_cpu_per_gib']:6.2f} {rss:>8} "
              f"{r['others_cpus']:6.2f}")
