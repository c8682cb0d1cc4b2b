from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3dsi.transfer.workers import PartWorkers


@pytest.fixture(scope="session")
def workers() -> Iterator[PartWorkers]:
    pool = PartWorkers(4, cpu_threads=2)
    yield pool
    pool.shutdown()
