"""Where a logged-in user's back end comes from: the S3 credential map, or one shared memory store."""

from __future__ import annotations

import os
import pwd

from s3dsi.config.settings import Settings
from s3dsi.identity.usermap import MapEntry, MapError, UserMap
from s3dsi.protocol.errors import PermissionDenied
from s3dsi.storage.backend import Backend
from s3dsi.storage.s3 import S3BackendFactory


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


class MapFileBackends:
    """Reads the map file at every login, so an admin's edit takes effect for the next login."""

    def __init__(self, settings: Settings, factory: S3BackendFactory) -> None:
        self.map_path = settings.s3_map_filename or default_map_path()
        self.factory = factory

    def backend_for(self, local_user: str) -> Backend:
        entry = mapped_credentials(self.map_path, local_user)
        return self.factory.for_credentials(entry.access_key_id, entry.secret_access_key)

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
