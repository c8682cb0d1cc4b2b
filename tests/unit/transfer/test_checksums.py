from __future__ import annotations

import hashlib
import random
import zlib

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3dsi.transfer import checksums
from s3dsi.transfer.checksums import (
    ALGORITHMS,
    RunningChecksums,
    adler32_combine,
    crc32c_combine,
    new_digest,
    normalize_algorithm,
)
from s3dsi.transfer.errors import UnknownChecksumAlgorithm

REFERENCE = {
    "MD5": lambda d: hashlib.md5(d).hexdigest(),
    "SHA1": lambda d: hashlib.sha1(d).hexdigest(),
    "SHA256": lambda d: hashlib.sha256(d).hexdigest(),
    "SHA512": lambda d: hashlib.sha512(d).hexdigest(),
    "ADLER32": lambda d: f"{zlib.adler32(d):08x}",
    "CRC32C": lambda d: f"{crc32c.crc32c(d):08x}",
}


def test_feat_order() -> None:
    assert ALGORITHMS == ("MD5", "ADLER32", "SHA1", "SHA256", "SHA512", "CRC32C")


@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_adler32_combine(a: bytes, b: bytes) -> None:
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_crc32c_combine(a: bytes, b: bytes) -> None:
    assert crc32c_combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) == crc32c.crc32c(a + b)


@settings(max_examples=20)
@given(len_b=st.integers(0, 2**40), seed=st.integers(0, 100))
def test_combine_with_huge_lengths_matches_zero_extension(len_b: int, seed: int) -> None:
    """For huge B (not materialisable) check the shift operator against a small-case identity:
    combine(combine(x, y, n), z, m) == combine(x, combine(y, z, m), n + m)."""
    rng = random.Random(seed)
    x, y, z = (rng.getrandbits(32) for _ in range(3))
    n, m = len_b, rng.randrange(1, 10**6)
    assert crc32c_combine(crc32c_combine(x, y, n), z, m) == crc32c_combine(x, crc32c_combine(y, z, m), n + m)


def test_known_values() -> None:
    assert f"{crc32c.crc32c(b'123456789'):08x}" == "e3069283"
    d = new_digest("adler32")
    d.update(b"")
    assert d.hexdigest() == "00000001"
    d = new_digest("Crc32c")
    d.update(b"123456789")
    assert d.hexdigest() == "e3069283"
    d = new_digest("md5")
    assert d.hexdigest() == "d41d8cd98f00b204e9800998ecf8427e"


@given(data=st.binary(max_size=5000), alg=st.sampled_from(ALGORITHMS), split=st.integers(0, 5000))
def test_all_algorithms_match_references_incrementally(data: bytes, alg: str, split: int) -> None:
    d = new_digest(alg.lower())
    d.update(data[:split])
    d.update(memoryview(data)[split:])
    assert d.hexdigest() == REFERENCE[alg](data)


def test_unknown_algorithm() -> None:
    with pytest.raises(UnknownChecksumAlgorithm) as err:
        normalize_algorithm("CRC32")
    assert err.value.code == 500
    assert err.value.text == "Unknown checksum algorithm requested."


@given(data=st.binary(max_size=20_000), part=st.integers(1, 4000), seed=st.integers(0, 1000))
def test_running_checksums_from_parts_in_any_order(data: bytes, part: int, seed: int) -> None:
    sums = RunningChecksums(["md5", "ADLER32", "CRC32C", "SHA256"])
    pieces = [(i // part + 1, data[i:i + part]) for i in range(0, len(data), part)]
    order = pieces[:]
    random.Random(seed).shuffle(order)
    for number, piece in order:
        crc, adler = sums.digest_part(piece)
        sums.record_part(number, len(piece), crc, adler)
    for _, piece in pieces:
        sums.feed_ordered(piece)
    got = sums.hexdigests(len(data))
    assert got == {alg: REFERENCE[alg](data) for alg in ("MD5", "ADLER32", "SHA256", "CRC32C")}


def test_running_checksums_detect_missing_part() -> None:
    sums = RunningChecksums(["CRC32C"])
    sums.record_part(2, 10, 0, None)
    with pytest.raises(ValueError):
        sums.hexdigests(10)


@given(st.binary(max_size=5000), st.binary(max_size=5000))
def test_adler32_matches_zlib_whichever_implementation(a: bytes, b: bytes) -> None:
    running = checksums.adler32(memoryview(b), checksums.adler32(a, 1))
    assert running == zlib.adler32(a + b)
