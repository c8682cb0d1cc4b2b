"""Per-session model: whose credential map a session reads, and the back-end provider of a session's
forked process, which becomes the logged-in user before it touches that user's map."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from s3dsi.config.loader import expand_user_path
from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account, AccountError, PrivilegeError, drop_privileges
from s3dsi.observability.logging import get_logger
from s3dsi.protocol.errors import PermissionDenied
from s3dsi.server.backends import mapped_credentials, user_backend
from s3dsi.storage.backend import Backend
from s3dsi.storage.s3 import S3BackendFactory

log = get_logger("s3dsi.daemon")


def map_path_for(settings: Settings, account: Account) -> str:
    """``account``'s map: ``~/.globus/s3`` of that account, or s3_map_filename expanded for it."""
    template = settings.s3_map_template
    if template is None:
        return os.path.join(account.home, ".globus", "s3")
    return expand_user_path(template, account.name, account.home)


def user_state_dir(settings: Settings, account: Account) -> str | None:
    """Where ``account``'s sessions journal restartable uploads: under state_dir when set (a directory
    per user, created by root before the drop), else the user's own default (None)."""
    if settings.state_dir is None:
        return None
    return os.path.join(settings.state_dir, "users", account.name)


def prepare_user_state_dir(path: str, account: Account) -> None:
    """Create ``path`` 0700 owned by ``account`` (we are still root); an existing one must be theirs."""
    users = os.path.dirname(path)
    if not os.path.isdir(users):
        made = [users] if os.path.isdir(os.path.dirname(users)) else [os.path.dirname(users), users]
        os.makedirs(users, mode=0o755, exist_ok=True)
        for directory in made:  # whatever the umask (0027 under the unit): every user passes through
            os.chmod(directory, 0o755)  # noqa: S103
    try:
        os.mkdir(path, 0o700)
        os.chown(path, account.uid, account.gid)
    except FileExistsError:
        info = os.lstat(path)
        if info.st_uid != account.uid:
            raise PermissionDenied("this user's upload journal directory belongs to someone else") from None


class SessionUserBackends:
    """BackendProvider of one per-session process (still root until the first successful login).

    The first login drops the process to the login's local account for good, then reads that
    account's map with its own identity; the process can never serve anyone else afterwards.
    """

    def __init__(self, settings: Settings, factory: Callable[[], S3BackendFactory],
                 on_drop: Callable[[Account], None] | None = None) -> None:
        self.settings = settings
        self._make_factory = factory
        self._factory: S3BackendFactory | None = None
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self.account: Account | None = None

    def backend_for(self, local_user: str) -> Backend:
        account = self._become(local_user)
        entry = mapped_credentials(map_path_for(self.settings, account), local_user)
        with self._lock:
            if self._factory is None:
                self._factory = self._make_factory()
            factory = self._factory
        return user_backend(factory, self.settings, entry, local_user)

    def _become(self, local_user: str) -> Account:
        with self._lock:
            if self.account is not None:
                if self.account.name != local_user:
                    raise PermissionDenied("this session already runs as another local user")
                return self.account
            try:
                account = Account.lookup(local_user)
            except AccountError:
                raise PermissionDenied(f"no local account {local_user!r} to run the session as") from None
            if account.uid == 0:
                raise PermissionDenied("sessions never run as root")
            state_dir = user_state_dir(self.settings, account)
            if state_dir is not None:
                prepare_user_state_dir(state_dir, account)
            try:
                drop_privileges(account)
            except PrivilegeError as err:
                log.critical("privilege drop failed; session process exits", error=str(err))
                os._exit(70)  # never serve anything in an unknown privilege state
            self.account = account
        if self._on_drop is not None:
            self._on_drop(account)
        return account
