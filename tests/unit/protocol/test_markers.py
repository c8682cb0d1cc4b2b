from __future__ import annotations

from s3dsi.protocol.markers import cksm_marker, format_timestamp, perf_marker, range_marker
from s3dsi.protocol.ranges import RangeList

from .transcript import server_log_reply


def test_perf_marker_matches_gt_except_one_space() -> None:
    gt = server_log_reply("upload_modeE_p4_slow_markers", "112-Perf Marker")
    ours = perf_marker(1795354925.1, 0)
    assert [line.replace("Timestamp:  ", "Timestamp: ") for line in gt] == list(ours.lines)
    assert ours.encode() == (b"112-Perf Marker\r\n Timestamp: 1795354925.1\r\n Stripe Index: 0\r\n"
                             b" Stripe Bytes Transferred: 0\r\n Total Stripe Count: 1\r\n112 End.\r\n")
    assert ours.is_preliminary


def test_perf_marker_stripes() -> None:
    lines = perf_marker(1.0, 23330816, stripe_index=1, stripe_count=2).lines
    assert lines[2:5] == (" Stripe Index: 1", " Stripe Bytes Transferred: 23330816", " Total Stripe Count: 2")


def test_timestamp_tenths_truncated() -> None:
    assert format_timestamp(1795354930.1) == "1795354930.1"
    assert format_timestamp(1795354937.79) == "1795354937.7"
    assert format_timestamp(1795355631.3) == "1795355631.3"
    assert format_timestamp(0) == "0.0"


def test_range_marker_matches_gt() -> None:
    text = "111 Range Marker 0-21495808,22020096-22806528,23068672-23592960,24117248-24641536"
    ranges = [(0, 21495808), (22020096, 22806528), (23068672, 23592960), (24117248, 24641536)]
    reply = range_marker(ranges)
    assert reply is not None
    assert reply.lines == (text,)
    assert range_marker(RangeList(ranges)) == reply
    assert range_marker(reversed(ranges)) == reply


def test_empty_range_marker_is_suppressed() -> None:
    assert range_marker([]) is None
    assert range_marker([(5, 5)]) is None
    assert range_marker(RangeList()) is None


def test_cksm_marker() -> None:
    assert cksm_marker(1795354930.14, 1048576).lines == (
        "113-Status Marker", " Timestamp: 1795354930.1", " Bytes Processed: 1048576", "113 End.")
