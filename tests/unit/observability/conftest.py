"""Logging is process-global: every test here gets the state back as it found it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

_NAMES = ("", "botocore", "boto3", "s3transfer", "urllib3", "s3dsi.storage", "s3dsi.transfer.stats")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate,
                    list(logging.getLogger(name).handlers)) for name in _NAMES}
    config = structlog.get_config()
    yield
    structlog.configure(**config)
    for name, (level, propagate, handlers) in saved.items():
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(level)
        logger.propagate = propagate
