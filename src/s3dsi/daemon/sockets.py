"""Listening sockets opened before any privilege drop: the control port, the admin unix socket and
the metrics endpoint. Binding here (not in asyncio) lets root bind, then drop, then start the loop."""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account
from s3dsi.transfer.journal import default_state_dir

UNIX_PATH_MAX = 107
BACKLOG = 128


def bind_control(settings: Settings) -> list[socket.socket]:
    """The control listeners: control_interface, or every interface when unset, as one IPv4 and one
    IPv6-only socket on the same port (as asyncio binds them). Not one dual-stack socket: IPv4 clients
    would then see IPv4-mapped IPv6 addresses, which PASV cannot announce."""
    host = settings.control_interface
    if host:
        infos = socket.getaddrinfo(host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        return [socket.create_server(address[:2], family=family, backlog=BACKLOG)]
    ipv4 = socket.create_server(("0.0.0.0", settings.port), backlog=BACKLOG)
    if not socket.has_ipv6:
        return [ipv4]
    try:
        ipv6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            ipv6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ipv6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            ipv6.bind(("::", ipv4.getsockname()[1]))
            ipv6.listen(BACKLOG)
        except OSError:
            ipv6.close()
            raise
    except OSError:
        return [ipv4]  # no IPv6 on this host
    return [ipv4, ipv6]


def shown_address(sock: socket.socket) -> str:
    """``HOST:PORT`` as the ``listening on`` line prints it (IPv6 in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


ROOT_ADMIN_SOCKET = "/run/s3dsi/admin.sock"


def _own_admin_socket() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(runtime, "s3dsi") if runtime else default_state_dir()
    return os.path.join(base, "admin.sock")


def default_admin_socket(settings: Settings) -> str:
    """Where a daemon started by this process's user listens: admin_socket, else ``state_dir/admin.sock``,
    else /run/s3dsi/admin.sock for root, else a private per-user path."""
    if settings.admin_socket:
        return settings.admin_socket
    if settings.state_dir:
        return os.path.join(settings.state_dir, "admin.sock")
    if os.geteuid() == 0:
        return ROOT_ADMIN_SOCKET
    return _own_admin_socket()


def admin_socket_candidates(settings: Settings) -> list[str]:
    """Where the daemon running ``settings`` may listen, as a client run by this user sees it, likeliest
    first. Without admin_socket and state_dir the path depends on who started the daemon: root (always,
    when process_user is set: ``sudo -u globus-s3 s3dsi status`` must find /run/s3dsi) or this user."""
    if settings.admin_socket or settings.state_dir or os.geteuid() == 0:
        return [default_admin_socket(settings)]
    own = _own_admin_socket()
    return [ROOT_ADMIN_SOCKET, own] if settings.process_user else [own, ROOT_ADMIN_SOCKET]


def present(path: str) -> bool:
    """Whether something is at ``path``, or may be: a directory this user cannot search hides it, and a
    connection attempt should then say "permission denied" rather than "no such socket"."""
    try:
        os.lstat(path)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class AdminSocketError(Exception):
    pass


def _in_use(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _check_root_directory(dir_fd: int, directory: str) -> None:
    """As root: the socket's directory must be one only root can change. In a directory another account
    may write (the service account's own state_dir, say), that account could swap the socket's name for
    a link between bind and chown and have root hand it any file."""
    info = os.fstat(dir_fd)
    if info.st_uid != 0 or info.st_mode & 0o022:
        mode = stat.S_IMODE(info.st_mode)
        raise AdminSocketError(f"{directory}: the admin socket must be in a directory only root may change "
                               f"(this one is owned by uid {info.st_uid}, mode {mode:04o}); set admin_socket "
                               "to such a place, e.g. /run/s3dsi/admin.sock")


def _bind_in(sock: socket.socket, dir_fd: int, name: str, path: str) -> None:
    """Bind ``name`` inside the directory open as ``dir_fd`` (through /proc/self/fd, so that no
    directory on the way can be swapped between the checks and the bind); the plain path where /proc is
    not usable (not root, no /proc, a name too long for it)."""
    proc_dir = f"/proc/self/fd/{dir_fd}"
    via = f"{proc_dir}/{name}"
    if os.geteuid() == 0 and len(os.fsencode(via)) <= UNIX_PATH_MAX and os.path.isdir(proc_dir):
        sock.bind(via)
    else:
        sock.bind(path)


def bind_admin(path: str, owner: Account | None) -> socket.socket:
    """The admin socket at ``path``: mode 0600, or 0660 and owned by ``owner`` (the service account)
    when root hands it over before dropping. A stale socket file is replaced; a live one is not.

    Run as root, the directory must be one only root may change, and everything after the directory is
    opened goes through its descriptor: the stale file is removed, the socket bound and handed over
    (``lchown``, mode set by the umask at bind, never a chmod by name) relative to it."""
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise AdminSocketError(f"{path}: longer than the {UNIX_PATH_MAX} bytes a unix socket path may have; "
                               "set admin_socket to a shorter path")
    directory = os.path.dirname(path) or "."
    name = os.path.basename(path)
    hand_over = owner is not None and os.geteuid() == 0
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o750 if owner is not None else 0o700)
            if hand_over:
                assert owner is not None
                os.chown(directory, 0, owner.gid)  # a directory we made: let the service account in
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise AdminSocketError(f"{directory}: cannot create the admin socket directory: {err.strerror}") \
            from None
    try:
        if os.geteuid() == 0:
            _check_root_directory(dir_fd, directory)
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if _in_use(path):
                raise AdminSocketError(f"{path}: another daemon answers on this admin socket")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # never world-connectable, not even for an instant; the group bits only for the hand-over
        old_umask = os.umask(0o117 if hand_over else 0o177)
        try:
            _bind_in(sock, dir_fd, name, path)
            if hand_over:
                assert owner is not None
                os.chown(name, owner.uid, owner.gid, dir_fd=dir_fd, follow_symlinks=False)
            sock.listen(16)
        except OSError as err:
            sock.close()
            raise AdminSocketError(f"{path}: cannot open the admin socket: {err.strerror}") from None
        finally:
            os.umask(old_umask)
        return sock
    finally:
        os.close(dir_fd)


def bind_metrics(listen: str) -> socket.socket:
    """The metrics endpoint at ``host:port`` (``[v6]:port``)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return socket.create_server(address[:2], family=family, backlog=16)
