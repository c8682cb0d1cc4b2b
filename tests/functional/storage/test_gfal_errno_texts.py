"""gfal2 derives errno from the *text* of an error reply (``scan_errstring`` in its GridFTP plugin:
"No such file"/"not found" -> ENOENT, "exists" -> EEXIST, ...). ``gfal-mkdir -p`` walks up only on
ENOENT, so the texts of these errors matter on every back end."""

from __future__ import annotations

import pytest

from s3dsi.protocol.errors import PathExists, PathNotFound
from s3dsi.storage import s3errors
from tests.support.storage import StoreUnderTest


def test_mkdir_with_missing_parent_reads_as_enoent(store: StoreUnderTest) -> None:
    with pytest.raises(PathNotFound) as info:
        store.backend.mkdir(store.path("no", "such", "leaf"))
    assert "No such file or directory" in " ".join(info.value.reply_lines())


def test_mkdir_of_existing_directory_reads_as_eexist(store: StoreUnderTest) -> None:
    store.backend.mkdir(store.path("d"))
    with pytest.raises(PathExists) as info:
        store.backend.mkdir(store.path("d"))
    assert "exists" in info.value.text


def test_missing_bucket_reads_as_enoent(store: StoreUnderTest) -> None:
    with pytest.raises(PathNotFound) as info:
        store.backend.stat("/no-such-bucket-for-errno-text/some/file")
    assert "No such file or directory" in info.value.text


def test_s3_not_found_codes_read_as_enoent() -> None:
    for code in ("NoSuchKey", "NoSuchBucket"):
        err = s3errors.from_code(code, path="/b/k", operation="stat")
        assert isinstance(err, PathNotFound)
        assert "No such file or directory" in err.text
