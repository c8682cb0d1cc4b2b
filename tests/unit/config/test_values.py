"""Value syntaxes of the configuration files."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from s3dsi.config import values as v
from s3dsi.observability import levels


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), ("2811", 2811), ("-1", -1), ("64K", 65536), ("2m", 2 * 1024 ** 2), ("1G", 1024 ** 3),
    ("10B", 10), (" 7 ", 7),
])
def test_gt_int_follows_the_reference_syntax(text: str, expected: int) -> None:
    assert v.parse_gt_int(text) == expected


@pytest.mark.parametrize("text", ["", "two", "1.5", "10X", "0x10", "1KB", "--1"])
def test_gt_int_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="integer"):
        v.parse_gt_int(text)


def test_gt_bool_is_zero_or_one_only() -> None:
    assert v.parse_gt_bool("1") is True
    assert v.parse_gt_bool("0") is False
    for text in ("yes", "true", "01", " 1", ""):
        with pytest.raises(ValueError, match="0 or 1"):
            v.parse_gt_bool(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("yes", True), ("On", True), ("TRUE", True), ("1", True), ("no", False), ("off", False), ("0", False),
])
def test_conf_bool(text: str, expected: bool) -> None:
    assert v.parse_bool(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("8M", 8 * 1024 ** 2), ("8MiB", 8 * 1024 ** 2), ("8mb", 8 * 1024 ** 2), ("1G", 1024 ** 3),
    ("5242880", 5242880), ("512 KiB", 512 * 1024), ("2T", 2 * 1024 ** 4), ("0", 0), ("100B", 100),
])
def test_sizes_accept_binary_suffixes(text: str, expected: int) -> None:
    assert v.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "8X", "-5M", "1.5G", "iB", "8 M B"])
def test_sizes_reject_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        v.parse_size(text)


@pytest.mark.parametrize(("text", "expected"), [("30", 30), ("30s", 30), ("10m", 600), ("24h", 86400),
                                                ("2d", 172800)])
def test_durations(text: str, expected: int) -> None:
    assert v.parse_duration(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("50000,51000", (50000, 51000)), ("50000 51000", (50000, 51000)), (" 1 , 65535 ", (1, 65535)),
    ("7,7", (7, 7)),
])
def test_port_range_forms(text: str, expected: tuple[int, int]) -> None:
    assert v.parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["50000", "51000,50000", "0,10", "1,70000", "a,b", "1,2,3", ""])
def test_port_range_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="port range"):
        v.parse_port_range(text)


def test_normalised_log_level_is_upper_case() -> None:
    assert v.normalise_log_level(" error, warn ") == "ERROR,WARN"
    assert v.normalise_log_level("255") == "255"


@pytest.mark.parametrize(("text", "url"), [
    ("s3.amazonaws.com", "https://s3.amazonaws.com"),
    ("s3.eu-west-1.amazonaws.com/", "https://s3.eu-west-1.amazonaws.com"),
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ("HTTPS://Minio.Example.org:443/", "https://minio.example.org:443"),
    ("http://[::1]:9000", "http://[::1]:9000"),
])
def test_endpoints_become_full_urls(text: str, url: str) -> None:
    assert v.parse_endpoint_url(text) == url


@pytest.mark.parametrize("text", ["", "ftp://host", "https://", "https://user:pw@host", "https://h?x=1",
                                  "https://host:99999", "https://ho st"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        v.parse_endpoint_url(text)


@pytest.mark.parametrize(("url", "region"), [
    ("https://s3.amazonaws.com", "us-east-1"),
    ("https://s3.eu-west-1.amazonaws.com", "eu-west-1"),
    ("https://s3-us-west-2.amazonaws.com", "us-west-2"),
    ("https://s3.dualstack.ap-southeast-2.amazonaws.com", "ap-southeast-2"),
    ("https://s3-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
    ("https://s3.cn-north-1.amazonaws.com.cn", "cn-north-1"),
    ("https://s3-external-1.amazonaws.com", "us-east-1"),
    ("http://127.0.0.1:9000", None),
    ("https://storage.googleapis.com", None),
    ("https://bucket.s3.eu-west-1.amazonaws.com", None),
])
def test_region_from_endpoint(url: str, region: str | None) -> None:
    assert v.region_from_endpoint(url) == region


def test_checksums_list() -> None:
    assert v.parse_checksums("md5, crc32c,MD5") == ("MD5", "CRC32C")
    assert v.parse_checksums("none") == ()
    with pytest.raises(ValueError, match="ADLER32"):
        v.parse_checksums("md4")


def test_networks() -> None:
    assert v.parse_networks("192.0.2.0/24, 10.1.2.3 2001:db8::/32") == ("192.0.2.0/24", "10.1.2.3/32",
                                                                        "2001:db8::/32")
    with pytest.raises(ValueError, match="networks"):
        v.parse_networks("example.org")


def test_listen_addresses() -> None:
    assert v.parse_listen("127.0.0.1:9102") == "127.0.0.1:9102"
    assert v.parse_listen("[::1]:9102") == "[::1]:9102"
    for bad in ("9102", "127.0.0.1:0", "127.0.0.1:70000", "host:port"):
        with pytest.raises(ValueError, match="host:port"):
            v.parse_listen(bad)


def test_shorten_cuts_long_values() -> None:
    text = v.shorten("x" * 10_000)
    assert len(text) < 100
    assert "10000 characters" in text


def test_format_size() -> None:
    assert v.format_size(8 * 1024 ** 2) == "8M"
    assert v.format_size(5 * 1024 ** 3) == "5G"
    assert v.format_size(1000) == "1000"



@pytest.mark.parametrize(("parse", "text"), [
    (v.parse_port_range, "²,3"), (v.parse_port_range, "50000,٥١٠٠٠"), (levels.parse_gt_log_level, "²"),
    (levels.parse_gt_log_level, "٣"), (levels.parse_s3_debug, "²,/tmp/x"), (v.parse_gt_int, "٣"),
    (v.parse_size, "٣M"), (v.parse_duration, "٣m"), (v.parse_positive_int, "1_0"),
    (v.parse_positive_int, "٣"), (v.parse_positive_int, "+3"),
])
def test_numbers_are_ascii_digits_only(parse: Callable[[str], object], text: str) -> None:
    # as the reference's C parser; str.isdigit() and int() accept "²", "٣" and "1_0", and "²" then made
    # int() fail with Python's own wording instead of the option's
    with pytest.raises(ValueError) as caught:
        parse(text)
    assert "invalid literal" not in str(caught.value)
