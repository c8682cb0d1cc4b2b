"""The password hashes of the per-session model: loaded in a throwaway process, held in a memory mapping
that each session process unmaps once its login is decided.

A forked session process starts with a copy of its parent's memory. If the parent had read the password
file itself, every user's hash would be in that memory (as live objects, or as freed but not cleared
heap), and so in every session process, also after it became one user. Instead the parent forks a loader
that reads and checks the file with the usual rules (``PasswordFile.load``) and writes the hashes into an
anonymous mapping; the parent itself only reads the user names and offsets from it. A session process
builds a hash string only to verify it, and ``close`` unmaps the whole mapping from its address space.

Mapping layout: ``MAGIC``, an entry count, then per entry a 2-byte user length, the UTF-8 user name, a
2-byte hash length and the ASCII hash.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct

from s3dsi.identity.passwords import PasswordFile, PasswordFileError, prepare_dummies, verify_equalised

MAGIC = b"S3DSIPW1"
_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<H")
MAX_MAPPING = 16 * 1024 * 1024  # larger than any password file read_text_file accepts (4 MiB)


class MappedPasswords:
    """Verification over hashes in a private anonymous mapping (PasswordFile's ``verify`` contract)."""

    def __init__(self, mapping: mmap.mmap, index: dict[str, tuple[int, int]], path: str | None,
                 warnings: tuple[str, ...]) -> None:
        self._mapping: mmap.mmap | None = mapping
        self._index = index
        self._kept: dict[str, str] = {}
        self.path = path
        self.warnings = warnings

    def __repr__(self) -> str:
        return f"MappedPasswords(path={self.path!r}, users={len(self._index)})"

    def __contains__(self, user: object) -> bool:
        return user in self._index

    def users(self) -> list[str]:
        return sorted(self._index)

    @property
    def closed(self) -> bool:
        return self._mapping is None

    def _stored(self, user: str) -> str | None:
        place = self._index.get(user)
        if place is None or self._mapping is None:
            return self._kept.get(user)
        start, length = place
        return self._mapping[start:start + length].decode("ascii", "replace")

    def verify(self, user: str, password: str) -> bool:
        return verify_equalised(self._stored(user), password)

    def retain_only(self, user: str | None) -> None:
        """Unmap every hash; keep ``user``'s own (a session process that became that user may still
        need it, for a login retried after a credential map problem)."""
        kept = self._stored(user) if user is not None else None
        mapping, self._mapping = self._mapping, None
        self._index = {}
        self._kept = {user: kept} if user is not None and kept is not None else {}
        if mapping is not None:
            mapping.close()

    def close(self) -> None:
        self.retain_only(None)


def _write(target: mmap.mmap, passwords: PasswordFile) -> None:
    target.write(MAGIC + _COUNT.pack(len(passwords.hashes)))
    for user, stored in passwords.hashes.items():
        name = user.encode("utf-8")
        value = stored.encode("ascii", "replace")
        target.write(_LENGTH.pack(len(name)) + name + _LENGTH.pack(len(value)))
        target.write(value)


def _index(mapping: mmap.mmap) -> dict[str, tuple[int, int]]:
    """User names and where their hashes are, read without copying any hash."""
    if mapping[:len(MAGIC)] != MAGIC:
        raise PasswordFileError("password file loader wrote no usable result")
    (count,) = _COUNT.unpack_from(mapping, len(MAGIC))
    offset = len(MAGIC) + _COUNT.size
    index: dict[str, tuple[int, int]] = {}
    for _ in range(count):
        (name_length,) = _LENGTH.unpack_from(mapping, offset)
        offset += _LENGTH.size
        user = mapping[offset:offset + name_length].decode("utf-8")
        offset += name_length
        (hash_length,) = _LENGTH.unpack_from(mapping, offset)
        offset += _LENGTH.size
        index[user] = (offset, hash_length)
        offset += hash_length
    return index


def _loader(shared: mmap.mmap, report: int, path: str, owner_uid: int | None) -> int:  # pragma: no cover
    """In the forked loader: read, check and copy the hashes, then tell the parent how it went."""
    result: dict[str, object]
    try:
        passwords = PasswordFile.load(path, owner_uid=owner_uid)
        _write(shared, passwords)
        result = {"warnings": list(passwords.warnings)}
    except PasswordFileError as err:
        result = {"error": str(err)}
    except Exception as err:  # whatever it is, the parent must hear of it
        result = {"error": f"{path}: cannot load: {err}"}
    with contextlib.suppress(OSError):
        os.write(report, json.dumps(result).encode())
    return 0


def load_isolated(path: str, *, owner_uid: int | None = None) -> MappedPasswords:
    """``PasswordFile.load(path)`` done in a forked process, the hashes kept only in a mapping.

    Only call this where forking is safe (no other thread: the per-session parent). PasswordFileError
    as ``PasswordFile.load`` raises it.
    """
    prepare_dummies()  # once here, not in every session process
    shared = mmap.mmap(-1, MAX_MAPPING, flags=mmap.MAP_SHARED)
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the loader
            os.close(read_end)
            os._exit(_loader(shared, write_end, path, owner_uid))
        os.close(write_end)
        write_end = -1
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.waitpid(pid, 0)
        try:
            result = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            result = {}
        if "error" in result:
            raise PasswordFileError(str(result["error"]))
        if "warnings" not in result:
            raise PasswordFileError(f"{path}: the password file loader failed")
        index = _index(shared)
        end = max((start + length for start, length in index.values()), default=len(MAGIC))
        private = mmap.mmap(-1, max(end, 1), flags=mmap.MAP_PRIVATE)
        with memoryview(shared) as view:
            private.write(view[:end])
        return MappedPasswords(private, index, path, tuple(str(w) for w in result["warnings"]))
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
        shared.close()
