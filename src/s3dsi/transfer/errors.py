"""Failures specific to the transfer engines, as ``DsiError`` subclasses with their replies."""

from __future__ import annotations

import errno as _errno

from s3dsi.protocol.errors import DsiError


class FileTooLarge(DsiError):
    """The object cannot be stored in ≤ 10,000 parts of at most the allowed part size."""

    code = 552
    globus_type = "INTERNAL_ERROR"
    errno = _errno.EFBIG
    default_text = "File too large for the configured part_size_max / memory budget"


class DataTooFarOutOfOrder(DsiError):
    """Every data connection waits for a part beyond the receive window and nothing else can move."""

    code = 451
    globus_type = "INTERNAL_ERROR"
    errno = _errno.ENOBUFS
    default_text = ("Data arrived too far out of order: the receive window is full and its lowest part "
                    "cannot be completed with the data in flight; use fewer streams or raise "
                    "memory_budget")


class IncompleteUpload(DsiError):
    """The data received does not cover [0, size) contiguously (a hole); nothing was stored."""

    code = 451
    globus_type = "INTERNAL_ERROR"
    errno = _errno.EIO
    default_text = "Data received is not contiguous; nothing was stored"


class UnknownChecksumAlgorithm(DsiError):
    code = 500
    globus_type = "INTERNAL_ERROR"
    errno = _errno.EINVAL
    default_text = "Unknown checksum algorithm requested."


class ChecksumMismatch(DsiError):
    """The data received does not have the checksum the client announced with SCKS; nothing stored."""

    code = 451
    globus_type = "INTERNAL_ERROR"
    errno = _errno.EIO
    default_text = "Checksum mismatch: the data received does not match the SCKS value; nothing was stored"


class DataTimeout(DsiError):
    """No byte moved on the data connections for too long (the client went silent or stopped reading)."""

    code = 426
    globus_type = "DATA_CHANNEL_COMMUNICATION_FAILURE"
    errno = _errno.ETIMEDOUT
    default_text = "Data connection timed out"
