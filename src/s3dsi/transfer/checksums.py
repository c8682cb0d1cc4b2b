"""Checksums of CKSM and of uploads: digests by name, ADLER32/CRC32C combination, running digests.

ADLER32 and CRC32C of an object are computed per part (in any order, in parallel) and combined in
offset order at the end; MD5 and the SHAs need the bytes in offset order, so parts are fed to them
as the contiguous prefix grows.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Protocol, cast

import crc32c as _crc32c

from s3dsi.transfer.errors import UnknownChecksumAlgorithm

ALGORITHMS: tuple[str, ...] = ("MD5", "ADLER32", "SHA1", "SHA256", "SHA512", "CRC32C")  # FEAT order
ORDERED_ALGORITHMS = frozenset({"MD5", "SHA1", "SHA256", "SHA512"})
_HASHLIB_NAMES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}

_ADLER_BASE = 65521
_CRC32C_POLY = 0x82F63B78  # Castagnoli polynomial, bit-reflected

Buffer = bytes | bytearray | memoryview


def _adler32_function() -> Callable[[Buffer, int], int]:
    """zlib-ng's ADLER32 when installed (SIMD: 0.04 CPU s/GiB against zlib's 0.30, see
    docs/performance.md), else zlib's; both give the same values."""
    try:
        module = importlib.import_module("zlib_ng.zlib_ng")
    except ImportError:
        return zlib.adler32
    return cast("Callable[[Buffer, int], int]", module.adler32)


adler32 = _adler32_function()


class Digest(Protocol):
    def update(self, data: Buffer, /) -> None: ...

    def hexdigest(self) -> str: ...


def normalize_algorithm(name: str) -> str:
    """The canonical (upper-case) name; UnknownChecksumAlgorithm otherwise."""
    canonical = name.upper()
    if canonical not in ALGORITHMS:
        raise UnknownChecksumAlgorithm()
    return canonical


class Adler32:
    __slots__ = ("value",)

    def __init__(self, value: int = 1) -> None:
        self.value = value

    def update(self, data: Buffer, /) -> None:
        self.value = adler32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


class Crc32c:
    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def update(self, data: Buffer, /) -> None:
        self.value = _crc32c.crc32c(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


def new_digest(algorithm: str) -> Digest:
    alg = normalize_algorithm(algorithm)
    if alg == "ADLER32":
        return Adler32()
    if alg == "CRC32C":
        return Crc32c()
    return hashlib.new(_HASHLIB_NAMES[alg])


def crc32c_of(data: Buffer) -> int:
    return int(_crc32c.crc32c(data))


# -- combination -----------------------------------------------------------------------------------
def adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """ADLER32 of A+B from adler(A), adler(B) and len(B).

    With A = 1 + Σbytes and B = Σ of the running A values (mod 65521): A(xy) = A(x) + A(y) − 1, and
    every byte of y adds A(x) − 1 more to the running sum than it did when y was hashed alone, so
    B(xy) = B(x) + B(y) + len(y)·(A(x) − 1).
    """
    a1, b1 = adler1 & 0xFFFF, adler1 >> 16
    a2, b2 = adler2 & 0xFFFF, adler2 >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + len2 * (a1 - 1)) % _ADLER_BASE
    return (b << 16) | a


def _gf2_multiply(a: int, b: int) -> int:
    """a·b modulo the CRC32C polynomial, both in the reflected representation (bit 31 is x⁰)."""
    product = 0
    mask = 1 << 31
    while a:
        if a & mask:
            product ^= b
            a ^= mask
        mask >>= 1
        b = (b >> 1) ^ _CRC32C_POLY if b & 1 else b >> 1
    return product


def _x_pow_2k_table() -> tuple[int, ...]:
    table = []
    p = 1 << 30  # x¹
    for _ in range(64):
        table.append(p)
        p = _gf2_multiply(p, p)
    return tuple(table)


_X_POW_2K = _x_pow_2k_table()


@lru_cache(maxsize=64)
def _shift_operator(len2: int) -> int:
    """x^(8·len2) mod P: appending len2 bytes multiplies the earlier CRC by this."""
    result = 1 << 31  # x⁰
    bits, k = len2, 3  # 8·len2 = len2 · 2³
    while bits:
        if bits & 1:
            result = _gf2_multiply(_X_POW_2K[k % 64], result)
        bits >>= 1
        k += 1
    return result


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC32C of A+B from crc(A), crc(B) and len(B).

    The register after A, shifted through len(B) zero bytes, XOR crc(B); the pre- and
    post-conditioning (~0) terms cancel because both CRCs carry them.
    """
    return _gf2_multiply(_shift_operator(len2), crc1) ^ crc2


# -- running checksums of an upload ----------------------------------------------------------------
class RunningChecksums:
    """Whole-object digests from parts completed in any order.

    ``digest_part`` is pure and thread-safe; ``feed_ordered`` must be called with parts in offset
    order, one call at a time; ``record_part`` stores a part's CRC32C/ADLER32 for the final combine.
    """

    def __init__(self, algorithms: Sequence[str]) -> None:
        algs = [normalize_algorithm(a) for a in algorithms]
        self.algorithms: tuple[str, ...] = tuple(a for a in ALGORITHMS if a in algs)
        self.wants_adler32 = "ADLER32" in self.algorithms
        self._ordered: dict[str, Digest] = {
            a: hashlib.new(_HASHLIB_NAMES[a]) for a in self.algorithms if a in ORDERED_ALGORITHMS}
        self._parts: dict[int, tuple[int, int, int | None]] = {}
        self._ordered_bytes = 0
        self._lock = threading.Lock()

    @property
    def needs_ordered(self) -> bool:
        return bool(self._ordered)

    def drop_ordered(self) -> None:
        """Give up the in-order digests (a resumed upload never sees the earlier bytes)."""
        self._ordered.clear()

    def digest_part(self, data: Buffer) -> tuple[int, int | None]:
        """(CRC32C, ADLER32 or None) of one part. CRC32C is always computed: uploads send it."""
        crc = crc32c_of(data)
        adler = adler32(data, 1) if self.wants_adler32 else None
        return crc, adler

    def record_part(self, number: int, size: int, crc: int, adler: int | None) -> None:
        with self._lock:
            self._parts[number] = (size, crc, adler)

    def feed_ordered(self, data: Buffer) -> None:
        for digest in self._ordered.values():
            digest.update(data)
        self._ordered_bytes += len(data)

    def crc32c(self, size: int) -> int:
        """The CRC32C of the object of ``size`` bytes made of the recorded parts 1..n (always known:
        every part carries one)."""
        with self._lock:
            parts = sorted(self._parts.items())
        if [n for n, _ in parts] != list(range(1, len(parts) + 1)) or sum(p[0] for _, p in parts) != size:
            raise ValueError("recorded parts do not cover the object contiguously")
        crc = 0
        for _, (length, part_crc, _adler) in parts:
            crc = crc32c_combine(crc, part_crc, length)
        return crc

    def hexdigests(self, size: int) -> dict[str, str]:
        """The digests of the object of ``size`` bytes made of the recorded parts 1..n."""
        with self._lock:
            parts = sorted(self._parts.items())
        if [n for n, _ in parts] != list(range(1, len(parts) + 1)) or sum(p[0] for _, p in parts) != size:
            raise ValueError("recorded parts do not cover the object contiguously")
        crc, adler, adler_known = 0, 1, True
        for _, (length, part_crc, part_adler) in parts:
            crc = crc32c_combine(crc, part_crc, length)
            if part_adler is None:
                adler_known = False
            else:
                adler = adler32_combine(adler, part_adler, length)
        result: dict[str, str] = {}
        for alg in self.algorithms:
            if alg == "CRC32C":
                result[alg] = f"{crc:08x}"
            elif alg == "ADLER32" and adler_known:
                result[alg] = f"{adler:08x}"
            elif alg in self._ordered and self._ordered_bytes == size:
                result[alg] = self._ordered[alg].hexdigest()
        return result
