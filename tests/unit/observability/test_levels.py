"""The reference server's log_level and GLOBUS_S3_DEBUG syntax."""

from __future__ import annotations

import pytest

from s3dsi.observability import levels


@pytest.mark.parametrize(("text", "mask"), [
    ("ERROR", 0x01), ("error,warn", 0x03), ("ERROR,TRANSFER", 0x05), ("ALL", 0xFF), ("INFO", 0x08),
    ("1", 1), ("2", 3), ("4", 7), ("8", 15), ("255", 255), ("0", 0),
])
def test_gt_log_levels_as_the_reference_computes_them(text: str, mask: int) -> None:
    assert levels.parse_gt_log_level(text) == mask


@pytest.mark.parametrize("text", ["VERBOSE", "ERROR,NOPE", "256", "", "-1"])
def test_bad_log_levels(text: str) -> None:
    with pytest.raises(ValueError, match="ERROR"):
        levels.parse_gt_log_level(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("1023,/var/log/s3.log", (1023, "/var/log/s3.log")), ("1023", (1023, None)), ("0,", (0, None)),
    (" 7 , /tmp/x ", (7, "/tmp/x")),
])
def test_s3_debug(text: str, expected: tuple[int, str | None]) -> None:
    assert levels.parse_s3_debug(text) == expected


def test_s3_debug_needs_a_number() -> None:
    with pytest.raises(ValueError, match="LEVEL"):
        levels.parse_s3_debug("verbose,/tmp/x")
