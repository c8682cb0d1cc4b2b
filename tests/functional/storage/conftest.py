"""``store``: the same behaviour tests on MemoryBackend and on S3Backend against the moto server."""

from __future__ import annotations

import pytest

from tests.support.moto_server import MotoS3
from tests.support.storage import StoreUnderTest, memory_store, s3_store


@pytest.fixture(params=["memory", "s3"])
def store(request: pytest.FixtureRequest) -> StoreUnderTest:
    if request.param == "memory":
        return memory_store()
    moto: MotoS3 = request.getfixturevalue("moto_s3")
    return s3_store(moto, request.getfixturevalue("s3_bucket"))
