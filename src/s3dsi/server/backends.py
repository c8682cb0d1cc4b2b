"""Where a logged-in user's back end comes from: the S3 credential map, or one shared memory store.

A map line gives the user's credentials (static keys, an assumed role, botocore's chain:
``storage/s3credentials.py``) and narrows the site's S3 policy (``config/s3policy.py``); the back end is
the user's S3 namespace with that policy's request options, wrapped in the policy layer
(``storage/policy.py``) when the policy confines the view or the writes. A line whose policy would widen
the site's, or whose credentials cannot be obtained, gives no back end (PermissionDenied; the login
is refused, for STS failures with the reason).
"""

from __future__ import annotations

import os
import pwd
import re

from s3dsi.config.s3policy import PolicyError, S3Policy, narrow, site_policy
from s3dsi.config.settings import Settings
from s3dsi.identity.usermap import MapEntry, MapError, UserMap
from s3dsi.protocol.errors import PermissionDenied
from s3dsi.storage.backend import Backend
from s3dsi.storage.policy import PolicyBackend
from s3dsi.storage.s3 import S3BackendFactory
from s3dsi.storage.s3credentials import CredentialSpec


def default_map_path() -> str:
    """``~/.globus/s3`` of the user the process runs as."""
    try:
        home = pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        home = os.path.expanduser("~")
    return os.path.join(home, ".globus", "s3")


def mapped_credentials(map_path: str, local_user: str) -> MapEntry:
    """``local_user``'s entry in the credential map at ``map_path``, read now; PermissionDenied else."""
    try:
        entry = UserMap.load(map_path).lookup(local_user)
    except MapError as err:
        raise PermissionDenied(f"credential map unusable: {err}") from None
    except OSError as err:
        raise PermissionDenied(f"credential map unreadable: {err.strerror}") from None
    if entry is None:
        raise PermissionDenied("no S3 credentials are mapped for this user")
    return entry


def session_name(local_user: str) -> str:
    """The default RoleSessionName: names the local user in CloudTrail (STS allows [\\w+=,.@-], 2-64)."""
    return ("s3dsi-" + re.sub(r"[^\w+=,.@-]", "_", local_user, flags=re.ASCII))[:64]


def credential_spec(entry: MapEntry, local_user: str) -> CredentialSpec:
    options = entry.options
    return CredentialSpec(
        access_key_id=entry.access_key_id, secret_access_key=entry.secret_access_key,
        role_arn=options.role_arn, external_id=options.external_id,
        session_name=options.session_name or session_name(local_user), duration=options.duration,
        default_chain=options.source == "default", profile=options.profile)


def user_policy(settings: Settings, entry: MapEntry, local_user: str) -> S3Policy:
    """The site's policy narrowed by the line's keys; PermissionDenied when the line would widen it."""
    try:
        return narrow(site_policy(settings, local_user), entry.options.policy)
    except PolicyError as err:
        raise PermissionDenied(f"credential map: this user's line goes beyond the site's S3 policy: {err}") \
            from None


def user_backend(factory: S3BackendFactory, settings: Settings, entry: MapEntry, local_user: str) -> Backend:
    """``local_user``'s back end from their map line (CredentialsUnavailable, PermissionDenied)."""
    policy = user_policy(settings, entry, local_user)
    credentials = factory.credentials.resolve(credential_spec(entry, local_user))
    backend = factory.for_user(credentials, policy)
    return PolicyBackend(backend, policy) if policy.shapes_namespace else backend


class MapFileBackends:
    """Reads the map file at every login, so an admin's edit takes effect for the next login."""

    def __init__(self, settings: Settings, factory: S3BackendFactory) -> None:
        self.settings = settings
        self.map_path = settings.s3_map_filename or default_map_path()
        self.factory = factory

    def backend_for(self, local_user: str) -> Backend:
        entry = mapped_credentials(self.map_path, local_user)
        return user_backend(self.factory, self.settings, entry, local_user)

    def users(self) -> list[str]:
        """One user per distinct set of credentials in the map (the janitor sweeps with each once);
        [] when the map cannot be read."""
        try:
            usermap = UserMap.load(self.map_path)
        except (MapError, OSError):
            return []
        distinct: dict[tuple[str, str | None], str] = {}
        for entry in usermap:
            distinct.setdefault((entry.access_key_id, entry.extra), entry.user)
        return list(distinct.values())


class SharedBackend:
    """Every user gets the same back end (tests, demos)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def backend_for(self, local_user: str) -> Backend:
        return self.backend

    def users(self) -> list[str]:
        return ["*"]
