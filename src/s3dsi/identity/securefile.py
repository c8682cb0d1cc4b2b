"""Reading and atomically replacing files that hold credentials, with ssh-style ownership checks.

Checks are made with ``fstat`` on the descriptors actually read (the directory is opened first and the
file is opened relative to it with O_NOFOLLOW), so nothing can be swapped between check and read. The
mode and owner rules are enforced on ``st_mode``/``st_uid`` even for root, who would otherwise bypass
them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from s3dsi.config.textfile import MAX_FILE_BYTES, TextFileError, read_bounded


class InsecureFileError(Exception):
    """The file or its directory fails a permission, owner or type check; the message says how to fix it."""


@dataclass(frozen=True)
class FilePolicy:
    """What a credential file must satisfy.

    ``owners``: uids allowed to own the file and its directory (root is always allowed, as ssh does);
    ``forbidden_mode``: permission bits the file must not have (0o077: private to its owner).
    """

    owners: frozenset[int]
    forbidden_mode: int = 0o077

    @classmethod
    def private_to(cls, uid: int | None = None, forbidden_mode: int = 0o077) -> FilePolicy:
        return cls(frozenset({os.geteuid() if uid is None else uid, 0}), forbidden_mode)


def _owner_text(owners: Collection[int]) -> str:
    return " or ".join(f"uid {uid}" for uid in sorted(owners, reverse=True))


@contextlib.contextmanager
def _open_dir(directory: str) -> Iterator[int]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def check_directory(fd: int, directory: str, policy: FilePolicy) -> None:
    info = os.fstat(fd)
    if info.st_mode & 0o022:
        raise InsecureFileError(f"{directory}: directory is writable by group or others "
                                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod go-w {directory}")
    if info.st_uid not in policy.owners:
        raise InsecureFileError(f"{directory}: directory is owned by uid {info.st_uid}, expected "
                                f"{_owner_text(policy.owners)}")


def check_file(info: os.stat_result, path: str, policy: FilePolicy) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise InsecureFileError(f"{path}: not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & policy.forbidden_mode:
        fix = "chmod 600" if policy.forbidden_mode == 0o077 else "chmod go-w"
        raise InsecureFileError(f"{path}: permissions {mode:04o} are too open (group or others may read or "
                                f"write it); run: {fix} {path}")
    if info.st_uid not in policy.owners:
        raise InsecureFileError(f"{path}: owned by uid {info.st_uid}, expected {_owner_text(policy.owners)}")


def read_secure_file(path: str, policy: FilePolicy,
                     limit: int = MAX_FILE_BYTES) -> tuple[bytes, os.stat_result]:
    """The content and stat of ``path`` after the checks. FileNotFoundError when it does not exist;
    InsecureFileError on a failed check; TextFileError when it is too large; OSError otherwise."""
    directory, name = os.path.split(os.path.abspath(path))
    with _open_dir(directory) as dir_fd:
        check_directory(dir_fd, directory, policy)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InsecureFileError(f"{path}: is a symbolic link; point the configuration at the real "
                                        "file") from None
            raise
        try:
            info = os.fstat(fd)
            check_file(info, path, policy)
            return read_bounded(fd, limit), info
        finally:
            os.close(fd)


def read_checked(path: str, policy: FilePolicy,
                 error: Callable[[str], Exception]) -> tuple[bytes, os.stat_result]:
    """``read_secure_file`` whose every failure becomes ``error(message)``, one line naming the path."""
    try:
        return read_secure_file(path, policy)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except InsecureFileError as exc:
        raise error(str(exc)) from None
    except TextFileError as exc:
        raise error(exc.located(path)) from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None


def _target_owner(dir_fd: int, name: str) -> tuple[int, int] | None:
    """The owner a file written by root should get: the existing file's, else its directory's."""
    if os.geteuid() != 0:
        return None
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        info = os.fstat(dir_fd)
    return info.st_uid, info.st_gid


def _make_private_dir(directory: str) -> None:
    """Create ``directory`` 0700 (and missing parents); when root, give it its parent's owner."""
    parent = os.path.dirname(directory)
    if not os.path.isdir(parent):
        _make_private_dir(parent)
    os.mkdir(directory, 0o700)
    if os.geteuid() == 0:
        info = os.stat(parent)
        os.chown(directory, info.st_uid, info.st_gid)


def write_secure_file(path: str, data: bytes, policy: FilePolicy) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600, under umask 077 (directory created 0700).

    The directory must pass the same checks as for reading. When run as root the file keeps the owner of
    the file it replaces (or takes its directory's), so the daemon's user can still read it.
    """
    directory, name = os.path.split(os.path.abspath(path))
    old_umask = os.umask(0o077)
    try:
        if not os.path.isdir(directory):
            _make_private_dir(directory)
        with _open_dir(directory) as dir_fd:
            check_directory(dir_fd, directory, policy)
            owner = _target_owner(dir_fd, name)
            temp = f".{name}.{secrets.token_hex(6)}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
            try:
                try:
                    os.fchmod(fd, 0o600)
                    if owner is not None:
                        os.fchown(fd, *owner)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dir_fd)
                raise
            os.fsync(dir_fd)
    finally:
        os.umask(old_umask)


def admin_owner_uid(path: str) -> int | None:
    """The owner an admin tool should expect for ``path``: None (the effective user) unless running as
    root, then the owner of the nearest existing directory above it (root edits other users' files)."""
    if os.geteuid() != 0:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    return os.stat(directory).st_uid
