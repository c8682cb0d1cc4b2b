"""Metrics for the optional Prometheus endpoint (``metrics_listen``): transfers, bytes in and out,
transfer durations, S3 requests, retries and errors by code; gauges (sessions, part-buffer memory) are
read at scrape time.

Counters live in a small registry of our own, so that the forked session processes of the
per-session model can send snapshots to their parent, which adds them up; prometheus-client (extra
``metrics``) only renders the text format. S3 calls are counted from botocore's events
(``after-call``, ``after-call-error``) registered on the botocore session every client comes from.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from s3dsi.observability.transferlog import TransferRecord

LabelKey = tuple[tuple[str, str], ...]
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, math.inf)


@dataclass(frozen=True)
class MetricSpec:
    kind: str  # counter | histogram | gauge
    help: str
    labels: tuple[str, ...] = ()


SPECS: dict[str, MetricSpec] = {
    "s3dsi_transfers_total": MetricSpec("counter", "Transfers finished, by command and final reply code",
                                        ("kind", "code")),
    "s3dsi_transfer_bytes_total": MetricSpec("counter", "Bytes moved by transfers: in = written to the "
                                             "object store, out = read from it", ("direction",)),
    "s3dsi_transfer_duration_seconds": MetricSpec("histogram", "Duration of the data phase of file "
                                                  "transfers", ("kind",)),
    "s3dsi_sessions_opened_total": MetricSpec("counter", "Control connections accepted"),
    "s3dsi_s3_requests_total": MetricSpec("counter", "S3 API calls by operation and HTTP status",
                                          ("operation", "status")),
    "s3dsi_s3_retries_total": MetricSpec("counter", "S3 request attempts that were retries, by operation",
                                         ("operation",)),
    "s3dsi_s3_errors_total": MetricSpec("counter", "S3 API calls that failed, by operation and error code",
                                        ("operation", "code")),
    "s3dsi_sessions": MetricSpec("gauge", "Control sessions open now"),
    "s3dsi_transfers_running": MetricSpec("gauge", "Transfers moving data now"),
    "s3dsi_buffer_bytes_in_use": MetricSpec("gauge", "Part-buffer memory lent to transfers now"),
    "s3dsi_buffer_budget_bytes": MetricSpec("gauge", "Part-buffer memory budget (memory_budget)"),
}
# With ``workers`` > 1 only: one series per session-serving process (label ``worker``: its index).
WORKER_SPECS: dict[str, MetricSpec] = {
    "s3dsi_worker_sessions": MetricSpec("gauge", "Control sessions a worker process serves now", ("worker",)),
    "s3dsi_worker_transfers_running": MetricSpec("gauge", "Transfers moving data in a worker process now",
                                                 ("worker",)),
    "s3dsi_worker_buffer_bytes_in_use": MetricSpec("gauge", "Part-buffer memory a worker process has lent "
                                                   "out now (of its share of memory_budget)", ("worker",)),
    "s3dsi_worker_cpu_seconds_total": MetricSpec("counter", "CPU time (user and system) a worker process "
                                                 "has used since it started", ("worker",)),
}


class _Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(DURATION_BUCKETS)  # not cumulative
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        for index, bound in enumerate(DURATION_BUCKETS):
            if value <= bound:
                self.buckets[index] += 1
                break
        self.count += 1
        self.total += value


def _key(labels: Mapping[str, str] | None) -> LabelKey:
    return tuple(sorted((labels or {}).items()))


class Metrics:
    """Thread-safe counters and histograms (botocore events fire in worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, LabelKey], float] = {}
        self._histograms: dict[tuple[str, LabelKey], _Histogram] = {}

    def inc(self, name: str, labels: Mapping[str, str] | None = None, amount: float = 1.0) -> None:
        key = (name, _key(labels))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0.0) + amount

    def observe(self, name: str, labels: Mapping[str, str] | None, value: float) -> None:
        key = (name, _key(labels))
        with self._lock:
            self._histograms.setdefault(key, _Histogram()).observe(value)

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get((name, _key(labels)), 0.0)

    # -- what the daemon reports ---------------------------------------------------------------
    def record_transfer(self, record: TransferRecord) -> None:
        self.inc("s3dsi_transfers_total", {"kind": record.kind, "code": str(record.code)})
        direction = record.direction
        if direction is not None:
            self.inc("s3dsi_transfer_bytes_total", {"direction": direction}, float(record.nbytes))
            self.observe("s3dsi_transfer_duration_seconds", {"kind": record.kind}, record.duration)

    def session_opened(self) -> None:
        self.inc("s3dsi_sessions_opened_total")

    def instrument(self, botocore_session: Any) -> None:
        """Count the S3 calls of every client later created from ``botocore_session``."""
        botocore_session.register("after-call.s3", self._after_call, unique_id="s3dsi-metrics-after-call")
        botocore_session.register("after-call-error.s3", self._after_call_error,
                                  unique_id="s3dsi-metrics-after-call-error")

    def _after_call(self, http_response: Any = None, parsed: Any = None, model: Any = None,
                    **_: Any) -> None:
        operation = str(getattr(model, "name", "unknown"))
        status = int(getattr(http_response, "status_code", 0) or 0)
        self.inc("s3dsi_s3_requests_total", {"operation": operation, "status": str(status)})
        meta = parsed.get("ResponseMetadata", {}) if isinstance(parsed, dict) else {}
        retries = int(meta.get("RetryAttempts", 0) or 0)
        if retries:
            self.inc("s3dsi_s3_retries_total", {"operation": operation}, float(retries))
        if status >= 300:
            error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
            code = str(error.get("Code") or status)
            self.inc("s3dsi_s3_errors_total", {"operation": operation, "code": code})

    def _after_call_error(self, exception: BaseException | None = None, event_name: str = "",
                          **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1] or "unknown"
        self.inc("s3dsi_s3_requests_total", {"operation": operation, "status": "error"})
        self.inc("s3dsi_s3_errors_total", {"operation": operation, "code": type(exception).__name__})

    # -- snapshots, for the per-session processes' parent ---------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": [[name, dict(labels), value] for (name, labels), value in self._counters.items()],
                "histograms": [[name, dict(labels), list(h.buckets), h.count, h.total]
                               for (name, labels), h in self._histograms.items()],
            }

    def add(self, snapshot: Mapping[str, Any]) -> None:
        """Add another process's snapshot to these totals (malformed entries are skipped)."""
        for entry in snapshot.get("counters", []):
            try:
                name, labels, value = entry
                self.inc(str(name), {str(k): str(v) for k, v in dict(labels).items()}, float(value))
            except (TypeError, ValueError):
                continue
        for entry in snapshot.get("histograms", []):
            try:
                name, labels, buckets, count, total = entry
                key = (str(name), _key({str(k): str(v) for k, v in dict(labels).items()}))
                counts = [int(b) for b in buckets]
            except (TypeError, ValueError):
                continue
            if len(counts) != len(DURATION_BUCKETS):
                continue
            with self._lock:
                hist = self._histograms.setdefault(key, _Histogram())
                hist.buckets = [a + b for a, b in zip(hist.buckets, counts, strict=True)]
                hist.count += int(count)
                hist.total += float(total)

    @classmethod
    def combined(cls, parts: Iterable[Mapping[str, Any]]) -> Metrics:
        total = cls()
        for part in parts:
            total.add(part)
        return total

    def _families(self) -> Iterator[tuple[str, str, Any]]:
        with self._lock:
            counters = list(self._counters.items())
            histograms = [(k, list(h.buckets), h.count, h.total) for k, h in self._histograms.items()]
        for (name, labels), value in counters:
            yield "counter", name, (labels, value)
        for (name, labels), buckets, count, total in histograms:
            yield "histogram", name, (labels, buckets, count, total)


def prometheus_available() -> bool:
    try:
        import prometheus_client  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


Labelled = Mapping[str, Iterable[tuple[Mapping[str, str], float]]]


def render_prometheus(metrics: Metrics, gauges: Mapping[str, float],
                      labelled: Labelled | None = None) -> bytes:
    """The text exposition of ``metrics`` plus ``gauges`` (name -> value, names from SPECS) and
    ``labelled`` series read at scrape time (name -> (labels, value) pairs, names from WORKER_SPECS)."""
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415
    from prometheus_client.core import (  # noqa: PLC0415
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    families: dict[str, Any] = {}

    def family(name: str) -> Any:
        if name not in families:
            spec = SPECS.get(name) or WORKER_SPECS.get(name) or MetricSpec("counter", name)
            if spec.kind == "histogram":
                families[name] = HistogramMetricFamily(name, spec.help, labels=list(spec.labels))
            elif spec.kind == "gauge":
                families[name] = GaugeMetricFamily(name, spec.help, labels=list(spec.labels))
            else:
                families[name] = CounterMetricFamily(name, spec.help, labels=list(spec.labels))
        return families[name]

    for name in SPECS:
        family(name)  # every metric is listed, zero or not
    for kind, name, data in metrics._families():
        spec = SPECS.get(name, MetricSpec(kind, name))
        if kind == "counter":
            labels, value = data
            family(name).add_metric([dict(labels).get(label, "") for label in spec.labels], value)
        else:
            labels, buckets, _count, total = data
            cumulative, running = [], 0
            for bound, count in zip(DURATION_BUCKETS, buckets, strict=True):
                running += count
                cumulative.append(("+Inf" if math.isinf(bound) else repr(bound), running))
            family(name).add_metric([dict(labels).get(label, "") for label in spec.labels], cumulative, total)
    for name, value in gauges.items():
        family(name).add_metric([], value)
    for name, series in (labelled or {}).items():
        spec = WORKER_SPECS[name]
        for labels, value in series:
            family(name).add_metric([labels.get(label, "") for label in spec.labels], value)

    class _Collector:
        def collect(self) -> Iterator[Any]:
            yield from families.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    exposition: bytes = generate_latest(registry)
    return exposition


def http_response(request_head: bytes, render: Callable[[], bytes]) -> bytes:
    """The whole HTTP/1.0 answer to one request on the metrics endpoint (GET /metrics or GET /)."""
    first = request_head.split(b"\r\n", 1)[0].split()
    if len(first) < 2 or first[0] not in (b"GET", b"HEAD"):
        return _http(405, b"text/plain", b"only GET\n")
    if first[1].split(b"?", 1)[0] not in (b"/metrics", b"/"):
        return _http(404, b"text/plain", b"try /metrics\n")
    try:
        from prometheus_client import CONTENT_TYPE_LATEST  # noqa: PLC0415
    except ImportError:
        return _http(503, b"text/plain", b"prometheus-client is not installed\n")
    body = render()
    return _http(200, CONTENT_TYPE_LATEST.encode(), b"" if first[0] == b"HEAD" else body)


def _http(status: int, content_type: bytes, body: bytes) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 405: b"Method Not Allowed", 503: b"Service Unavailable"}[status]
    return (b"HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, reason, content_type, len(body))) + body
