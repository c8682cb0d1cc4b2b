"""Preliminary progress replies: 112 perf markers, 111 range (restart) markers, 113 CKSM status.

Timestamps are Unix seconds truncated to tenths, after ONE space (GT 13.24 printed two; the current
GT source prints one, and clients parse the number after the colon).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from s3dsi.protocol.ranges import RangeList
from s3dsi.protocol.replies import Reply


def format_timestamp(timestamp: float) -> str:
    """``1795354930.1``: seconds with tenths, truncated (never ahead of the real time)."""
    # round() first so that 1795354930.1 (stored as ...0.0999999) still prints .1
    tenths = math.floor(round(timestamp * 10, 3))
    return f"{tenths // 10}.{tenths % 10}"


def perf_marker(timestamp: float, nbytes: int, stripe_index: int = 0, stripe_count: int = 1) -> Reply:
    """``112-Perf Marker`` block; ``nbytes`` is cumulative for this transfer on this stripe."""
    return Reply.multi(112, "Perf Marker", (
        f" Timestamp: {format_timestamp(timestamp)}",
        f" Stripe Index: {stripe_index}",
        f" Stripe Bytes Transferred: {nbytes}",
        f" Total Stripe Count: {stripe_count}",
    ), "End.")


def range_marker(ranges: RangeList | Iterable[tuple[int, int]]) -> Reply | None:
    """``111 Range Marker 0-100,200-300`` (end exclusive); None when there is nothing to report."""
    merged = ranges if isinstance(ranges, RangeList) else RangeList(ranges)
    if not merged:
        return None
    return Reply.line(111, f"Range Marker {merged.format()}")


def cksm_marker(timestamp: float, nbytes: int) -> Reply:
    """``113-Status Marker`` block sent during a long CKSM when ``OPTS CKSM markers=N;`` asked for it."""
    return Reply.multi(113, "Status Marker", (
        f" Timestamp: {format_timestamp(timestamp)}",
        f" Bytes Processed: {nbytes}",
    ), "End.")
