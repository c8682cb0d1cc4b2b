"""The reference server's log levels (``log_level``) and the ``GLOBUS_S3_DEBUG`` syntax, read the way
globus-gridftp-server reads them; each parser raises ValueError saying what was expected.

Here rather than in ``config`` so that logging depends on nothing else in the daemon: the configuration
loader validates these settings with the same functions the logging set-up later applies.
"""

from __future__ import annotations

import re

GT_LOG_BITS = {"ERROR": 0x01, "WARN": 0x02, "TRANSFER": 0x04, "INFO": 0x08, "DUMP": 0x10, "ALL": 0xFF}
# ASCII digits only, as the reference's C parser reads them (str.isdigit() also takes "²" or "٣").
_DIGITS = re.compile(r"[0-9]+")
_LEVEL_EXPECTED = "a comma list of ERROR, WARN, INFO, TRANSFER, DUMP, ALL, or a number 0-255"


def parse_gt_log_level(text: str) -> int:
    """The reference server's log_level: a comma list of level names, or a number (1-255).

    A number N enables itself and every lower level, as the reference computes it; the result is the
    bit mask of GT categories (ERROR 1, WARN 2, TRANSFER 4, INFO 8, DUMP 16).
    """
    value = text.strip()
    if _DIGITS.fullmatch(value):
        mask = int(value)
        if mask > 255:
            raise ValueError(_LEVEL_EXPECTED)
        if mask > 1:
            mask |= (mask >> 1) | ((mask >> 1) - 1)
        return mask & 0xFF
    mask = 0
    for name in value.split(","):
        bit = GT_LOG_BITS.get(name.strip().upper())
        if bit is None:
            raise ValueError(_LEVEL_EXPECTED)
        mask |= bit
    return mask


def parse_s3_debug(text: str) -> tuple[int, str | None]:
    """``GLOBUS_S3_DEBUG``: ``LEVEL[,PATH]`` (a number bit mask and an optional log path)."""
    level_text, _, path = text.partition(",")
    level_text = level_text.strip()
    if not _DIGITS.fullmatch(level_text):
        raise ValueError('"LEVEL[,PATH]" with LEVEL a number, e.g. "1023,/var/log/s3.log"')
    path = path.strip()
    return int(level_text), (path or None)
