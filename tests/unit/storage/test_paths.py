"""Daemon paths split into bucket and key; S3 naming limits; Unique values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3dsi.protocol.errors import InvalidPath
from s3dsi.storage.paths import (
    check_bucket_name,
    check_key,
    parse_path,
    quote_etag,
    strip_etag,
    unique_for,
)


def test_parse_root_bucket_and_key() -> None:
    root = parse_path("/")
    assert root.is_root
    assert not root.is_bucket
    assert root.name == "/"
    assert root.dir_prefix == ""
    bucket = parse_path("/b")
    assert bucket.is_bucket
    assert bucket.bucket == "b"
    assert bucket.key == ""
    assert bucket.dir_prefix == ""
    deep = parse_path("/b/x/y/z.txt")
    assert (deep.bucket, deep.key, deep.name) == ("b", "x/y/z.txt", "z.txt")
    assert deep.dir_prefix == "x/y/z.txt/"
    assert deep.marker_key == "x/y/z.txt/"
    assert deep.parent_prefix == "x/y/"
    assert parse_path("/b/top").parent_prefix == ""
    assert deep.child("w") == "/b/x/y/z.txt/w"
    assert root.child("b") == "/b"


@pytest.mark.parametrize("bad", ["", "b/k", "/b/", "/b//k", "/b/./k", "/b/../k", "//"])
def test_parse_rejects_unnormalised_paths(bad: str) -> None:
    with pytest.raises(InvalidPath):
        parse_path(bad)


def test_key_length_limit_counts_utf8_bytes_and_the_marker_slash() -> None:
    check_key(parse_path("/b/" + "k" * 1023))
    with pytest.raises(InvalidPath, match="KeyTooLongError"):
        check_key(parse_path("/b/" + "k" * 1024))
    with pytest.raises(InvalidPath):
        check_key(parse_path("/b/" + "é" * 512))  # 1024 bytes


@pytest.mark.parametrize("name", ["abc", "my-bucket.data", "a" * 63, "0bucket9"])
def test_valid_bucket_names(name: str) -> None:
    check_bucket_name(name)


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Bucket", "b_c", "-bucket", "bucket-", "a..b", "a.-b",
                                  "10.0.0.1", "xn--bucket", "bucket-s3alias", "bucket--ol-s3"])
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(InvalidPath, match="InvalidBucketName"):
        check_bucket_name(name)


@given(st.lists(st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s), min_size=2, max_size=50,
                unique=True))
def test_unique_differs_between_paths(names: list[str]) -> None:
    values = {unique_for(f"/bucket/{n}") for n in names}
    assert len(values) == len(names)
    assert all(unique_for(f"/bucket/{n}") == unique_for(f"/bucket/{n}") for n in names)


def test_etag_quotes() -> None:
    assert strip_etag('"abc-2"') == "abc-2"
    assert strip_etag("abc") == "abc"
    assert quote_etag("abc") == '"abc"'
    assert quote_etag('"abc"') == '"abc"'
