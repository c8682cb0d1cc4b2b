"""SHA-crypt (``$5$`` SHA-256, ``$6$`` SHA-512) password hashes, written from Ulrich Drepper's
published specification ("Unix crypt using SHA-256 and SHA-512"), because the stdlib ``crypt`` module
is deprecated and removed in Python 3.13. Only verification is needed; new hashes use argon2id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_ROUNDS = 5000
MIN_ROUNDS = 1000
MAX_ROUNDS = 999_999_999
MAX_SALT = 16

# Byte order of the final encoding: groups of three digest bytes, each written as four characters.
_SHA512_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
    (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
)
_SHA256_ORDER = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5), (6, 16, 26),
    (27, 7, 17), (18, 28, 8), (9, 19, 29),
)


@dataclass(frozen=True)
class ShaCryptHash:
    """A parsed ``$5$``/``$6$`` string: scheme id, rounds (clamped as the spec says), salt, digest."""

    scheme: str
    rounds: int
    rounds_given: bool
    salt: str
    digest: str

    @property
    def prefix(self) -> str:
        rounds = f"rounds={self.rounds}$" if self.rounds_given else ""
        return f"${self.scheme}${rounds}{self.salt}"


def parse_hash(text: str) -> ShaCryptHash:
    """Raises ValueError for anything that is not a well-formed SHA-crypt string (or setting)."""
    if text[:3] not in {"$5$", "$6$"}:
        raise ValueError("not a SHA-crypt hash")
    scheme, rest = text[1], text[3:]
    rounds, rounds_given = DEFAULT_ROUNDS, False
    if rest.startswith("rounds="):
        number, found, rest = rest[len("rounds="):].partition("$")
        if not found or not number.isdigit() or len(number) > 10:
            raise ValueError("bad rounds= field")
        rounds, rounds_given = min(max(int(number), MIN_ROUNDS), MAX_ROUNDS), True
    salt, _, digest = rest.partition("$")
    salt = salt[:MAX_SALT]
    if any(c in salt for c in ":\n") or any(c not in _ALPHABET for c in digest):
        raise ValueError("bad characters in a SHA-crypt hash")
    if digest and len(digest) != (86 if scheme == "6" else 43):
        raise ValueError("SHA-crypt digest of the wrong length")
    return ShaCryptHash(scheme, rounds, rounds_given, salt, digest)


def _repeat(block: bytes, length: int) -> bytes:
    """``block`` repeated and cut to ``length`` bytes."""
    return (block * (length // len(block) + 1))[:length]


def _encode(digest: bytes, order: tuple[tuple[int, int, int], ...], tail: tuple[int, ...]) -> str:
    chars: list[str] = []

    def emit(b2: int, b1: int, b0: int, count: int) -> None:
        word = (b2 << 16) | (b1 << 8) | b0
        for _ in range(count):
            chars.append(_ALPHABET[word & 0x3F])
            word >>= 6

    for a, b, c in order:
        emit(digest[a], digest[b], digest[c], 4)
    if len(tail) == 1:
        emit(0, 0, digest[tail[0]], 2)
    else:
        emit(0, digest[tail[0]], digest[tail[1]], 3)
    return "".join(chars)


def _digest(password: bytes, salt: bytes, rounds: int, new: Callable[..., Any]) -> bytes:
    alt = new(password + salt + password).digest()

    ctx = new()
    ctx.update(password + salt + _repeat(alt, len(password)))
    length = len(password)
    while length:
        ctx.update(alt if length & 1 else password)
        length >>= 1
    intermediate = ctx.digest()

    p_bytes = _repeat(new(password * len(password)).digest(), len(password))
    s_bytes = _repeat(new(salt * (16 + intermediate[0])).digest(), len(salt))

    current = intermediate
    for index in range(rounds):
        ctx = new()
        ctx.update(p_bytes if index & 1 else current)
        if index % 3:
            ctx.update(s_bytes)
        if index % 7:
            ctx.update(p_bytes)
        ctx.update(current if index & 1 else p_bytes)
        current = ctx.digest()
    return bytes(current)


def sha_crypt(password: str, setting: str) -> str:
    """The full hash string of ``password`` under the scheme, rounds and salt of ``setting``."""
    parsed = parse_hash(setting)
    new = hashlib.sha512 if parsed.scheme == "6" else hashlib.sha256
    digest = _digest(password.encode("utf-8"), parsed.salt.encode("utf-8"), parsed.rounds, new)
    if parsed.scheme == "6":
        encoded = _encode(digest, _SHA512_ORDER, (63,))
    else:
        encoded = _encode(digest, _SHA256_ORDER, (31, 30))
    return f"{parsed.prefix}${encoded}"


def verify(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored SHA-crypt string (constant-time comparison)."""
    try:
        parsed = parse_hash(stored)
    except ValueError:
        return False
    if not parsed.digest:
        return False
    computed = sha_crypt(password, stored)
    return hmac.compare_digest(computed.encode("utf-8"), f"{parsed.prefix}${parsed.digest}".encode())
