"""Clear-text FTP login (USER/PASS): which local user, and so which map entry, a login becomes.

Anonymous logins (when ``allow_anonymous`` is set) use the ``anonymous_user`` map entry whatever the
password; everyone else needs a ``password_file`` entry. Passwords seen here are registered with the
log redactor so that no later log line can carry one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from s3dsi.config.settings import Settings
from s3dsi.identity.passwords import PasswordFile
from s3dsi.observability.logging import register_secret


class PasswordVerifier(Protocol):
    """A loaded password file: PasswordFile, or the per-session model's MappedPasswords."""

    def verify(self, user: str, password: str) -> bool: ...


class Authenticator:
    """Thread-safe: verification only reads the loaded password file."""

    def __init__(self, password_file: PasswordVerifier | None, *, allow_anonymous: bool = False,
                 anonymous_user: str | None = None,
                 anonymous_names: Iterable[str] = ("anonymous", "ftp")) -> None:
        if allow_anonymous and not anonymous_user:
            raise ValueError("allow_anonymous needs anonymous_user (the map entry anonymous sessions use)")
        self.password_file = password_file
        self.allow_anonymous = allow_anonymous
        self.anonymous_user = anonymous_user
        self.anonymous_names = frozenset(anonymous_names)

    @classmethod
    def from_settings(cls, settings: Settings, *, owner_uid: int | None = None) -> Authenticator:
        """Loads ``settings.password_file`` if set (PasswordFileError when it is missing or insecure)."""
        passwords = None
        if settings.password_file:
            passwords = PasswordFile.load(settings.password_file, owner_uid=owner_uid)
        return cls(passwords, allow_anonymous=settings.allow_anonymous,
                   anonymous_user=settings.anonymous_user, anonymous_names=settings.anonymous_names_allowed)

    def forget(self, keep: str | None = None) -> None:
        """Drop every password hash but ``keep``'s: a session process that became ``keep`` (no one else
        can log in through it any more), or a parent done with a reloaded file. Unmaps them where they
        were kept in a mapping; a plain PasswordFile is left as it is."""
        retain = getattr(self.password_file, "retain_only", None)
        if retain is not None:
            retain(keep)

    def is_anonymous(self, user: str) -> bool:
        return self.allow_anonymous and (user in self.anonymous_names or "*" in self.anonymous_names)

    def authenticate(self, user: str, password: str) -> str | None:
        """The local user name whose map entry the session uses, or None to refuse the login.

        Only a password that proved right is registered with the log redactor: PASS lines are
        redacted where they are logged, and registering every guess would let any client blank out
        arbitrary words in the logs.
        """
        if self.is_anonymous(user):
            return self.anonymous_user
        if self.password_file is None:
            return None
        if not self.password_file.verify(user, password):
            return None
        register_secret(password, transient=True)
        return user
