"""The clear-text login password file (reference option ``pw_file``): ``user:HASH`` lines.

As in the reference server the file is /etc/passwd-shaped, so fields after the hash are allowed and
ignored. Hashes are crypt-style strings: ``$argon2id$`` (what ``s3dsi passwd`` writes), ``$6$`` and
``$5$`` SHA-crypt. Verification compares in constant time, and costs the same work whoever asks: every
check runs one argon2id verification and one SHA-crypt verification, the user's own hash for one of them
and a dummy of default cost for the other (both dummies for an unknown user), so neither an unknown name
nor a SHA-crypt user answers faster than an argon2id user.
"""

from __future__ import annotations

import base64
import os
import stat
import threading
import types
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from s3dsi.config.textfile import TextFileError, split_lines
from s3dsi.identity import shacrypt
from s3dsi.identity.securefile import FilePolicy, InsecureFileError, read_checked, write_secure_file

ARGON2_PREFIX = "$argon2id$"
MAX_PASSWORD_CHARS = 1024  # longer ones are refused before any hashing work
MAX_SHA_ROUNDS = 1_000_000  # more would let a bad file stall each login for seconds
MAX_ARGON2_MEMORY_KIB = 1024 * 1024
MAX_ARGON2_TIME = 64

_hasher = PasswordHasher()
_dummy_lock = threading.Lock()
_dummy_hash: str | None = None
_dummy_sha: str | None = None


class PasswordFileError(Exception):
    """The password file is missing, unreadable, insecure or malformed (never quoting a hash)."""


def hash_password(password: str, *, time_cost: int | None = None, memory_cost: int | None = None) -> str:
    """A new argon2id hash (argon2-cffi's default RFC 9106 parameters unless given)."""
    if time_cost is None and memory_cost is None:
        return _hasher.hash(password)
    hasher = PasswordHasher(time_cost=time_cost or _hasher.time_cost,
                            memory_cost=memory_cost or _hasher.memory_cost)
    return hasher.hash(password)


def hash_problem(stored: str) -> str | None:
    """Why ``stored`` can never verify a password (unsupported scheme, absurd cost), or None if usable."""
    if stored.startswith(ARGON2_PREFIX):
        try:
            params = extract_parameters(stored)
        except (InvalidHashError, ValueError):
            return "malformed argon2id hash"
        if params.memory_cost > MAX_ARGON2_MEMORY_KIB or params.time_cost > MAX_ARGON2_TIME:
            return "argon2id cost parameters are too high"
        return None
    if stored.startswith(("$5$", "$6$")):
        try:
            parsed = shacrypt.parse_hash(stored)
        except ValueError:
            return "malformed SHA-crypt hash"
        if not parsed.digest:
            return "SHA-crypt hash without a digest"
        if parsed.rounds > MAX_SHA_ROUNDS:
            return f"SHA-crypt rounds above {MAX_SHA_ROUNDS}"
        return None
    return "unsupported hash scheme (use $argon2id$, $6$ or $5$) or a locked account"


def verify_hash(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; False for anything unusable."""
    if stored.startswith(ARGON2_PREFIX):
        try:
            return _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    if stored.startswith(("$5$", "$6$")):
        return shacrypt.verify(password, stored)
    return False


def _dummy() -> str:
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(os.urandom(16).hex())
        return _dummy_hash


def _dummy_sha_crypt() -> str:
    global _dummy_sha
    with _dummy_lock:
        if _dummy_sha is None:
            salt = base64.b64encode(os.urandom(12), altchars=b"./").decode()
            _dummy_sha = shacrypt.sha_crypt(os.urandom(16).hex(), f"$6${salt}")
        return _dummy_sha


def prepare_dummies() -> None:
    """Compute the dummy hashes now (a parent process does it once, instead of every session process)."""
    _dummy()
    _dummy_sha_crypt()


def verify_equalised(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no such user), spending one argon2id and one
    SHA-crypt verification in every case so that the time taken tells nothing about the user."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    if stored is None or hash_problem(stored) is not None:
        verify_hash(_dummy(), password)
        shacrypt.verify(password, _dummy_sha_crypt())
        return False
    if stored.startswith(ARGON2_PREFIX):
        matched = verify_hash(stored, password)
        shacrypt.verify(password, _dummy_sha_crypt())
    else:
        matched = verify_hash(stored, password)
        verify_hash(_dummy(), password)
    return matched


def _valid_user(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == ":" or unicodedata.category(c).startswith("C")
                                  for c in name) and not name.startswith("#")


def _policy(owner_uid: int | None) -> FilePolicy:
    return FilePolicy.private_to(owner_uid, forbidden_mode=0o022)


def _read_checked(path: str, owner_uid: int | None) -> tuple[bytes, os.stat_result]:
    return read_checked(path, _policy(owner_uid), PasswordFileError)


@dataclass(frozen=True, repr=False)
class PasswordFile:
    hashes: Mapping[str, str]
    path: str | None = None
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"PasswordFile(path={self.path!r}, users={len(self.hashes)})"

    @classmethod
    def parse(cls, data: bytes, source: str = "<password file>") -> PasswordFile:
        try:
            lines = split_lines(data)
        except TextFileError as exc:
            raise PasswordFileError(exc.located(source)) from None
        hashes: dict[str, str] = {}
        first: dict[str, int] = {}
        warnings: list[str] = []
        for number, text in lines:
            body = text.strip()
            if not body or body.startswith("#"):
                continue
            user, found, rest = body.partition(":")
            stored = rest.split(":", 1)[0].strip()
            user = user.strip()
            if not found or not stored:
                raise PasswordFileError(f"{source}:{number}: expected 'user:HASH'")
            if not _valid_user(user):
                raise PasswordFileError(f"{source}:{number}: user name contains white space, ':' or "
                                        "control characters")
            if user in hashes:
                raise PasswordFileError(f"{source}:{number}: duplicate entry for a user already listed on "
                                        f"line {first[user]}")
            problem = hash_problem(stored)
            if problem is not None:
                warnings.append(f"{source}:{number}: {problem}; this user cannot log in")
            hashes[user], first[user] = stored, number
        return cls(types.MappingProxyType(hashes), source, tuple(warnings))

    @classmethod
    def load(cls, path: str, *, owner_uid: int | None = None) -> PasswordFile:
        """Read ``path``: a regular file (not a link) owned by ``owner_uid`` (default: the effective
        user) or root, not writable by group or others, in a directory nobody else can write."""
        data, info = _read_checked(path, owner_uid)
        parsed = cls.parse(data, path)
        if stat.S_IMODE(info.st_mode) & 0o044:
            warning = f"{path}: readable by group or others; run: chmod 600 {path}"
            return cls(parsed.hashes, path, (warning, *parsed.warnings))
        return parsed

    def users(self) -> list[str]:
        return sorted(self.hashes)

    def __contains__(self, user: object) -> bool:
        return user in self.hashes

    def verify(self, user: str, password: str) -> bool:
        """Whether ``user`` exists with ``password``; the same work whether or not it exists."""
        return verify_equalised(self.hashes.get(user), password)


def set_password_text(text: str, user: str, stored: str) -> str:
    """``text`` (a valid password file) with ``user``'s hash replaced, or a ``user:HASH`` line appended;
    other lines, comments and fields after the hash are kept."""
    out: list[str] = []
    replaced = False
    for _, line in split_lines(text.encode("utf-8")):
        body = line.strip()
        name, found, rest = body.partition(":")
        if found and not body.startswith("#") and name.strip() == user and not replaced:
            tail = rest.split(":", 1)
            out.append(f"{user}:{stored}" + (f":{tail[1]}" if len(tail) == 2 else ""))
            replaced = True
        else:
            out.append(line)
    if not replaced:
        out.append(f"{user}:{stored}")
    return "".join(f"{line}\n" for line in out)


def check_user_name(user: str) -> None:
    if not _valid_user(user):
        raise PasswordFileError("user name must be non-empty, without white space, ':' or control characters")


def update_password_file(path: str, user: str, password: str, *, owner_uid: int | None = None) -> None:
    """Set ``user``'s password in ``path`` (created if missing), written atomically with mode 0600."""
    check_user_name(user)
    text = ""
    if os.path.lexists(path):
        data, _ = _read_checked(path, owner_uid)
        PasswordFile.parse(data, path)
        text = data.decode("utf-8-sig")
    new_text = set_password_text(text, user, hash_password(password))
    PasswordFile.parse(new_text.encode("utf-8"), path)
    try:
        write_secure_file(path, new_text.encode("utf-8"), _policy(owner_uid))
    except InsecureFileError as exc:
        raise PasswordFileError(str(exc)) from None
    except OSError as exc:
        raise PasswordFileError(f"{path}: cannot write: {exc.strerror}") from None
