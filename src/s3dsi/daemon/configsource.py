"""Where the configuration came from, so that SIGHUP can load it again the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from s3dsi.config.loader import load_settings
from s3dsi.config.settings import Settings

# Settings a running daemon cannot change: they shaped sockets, pools or the process model at start
# (the GSI/FTPS ones: the host credential and its TLS contexts are loaded once, before any drop).
RESTART_ONLY = ("port", "control_interface", "process_user", "process_group", "allow_root", "threads",
                "workers", "part_workers", "memory_budget", "metrics_listen", "admin_socket", "state_dir",
                "gridmap", "tls_certificate", "tls_key", "gsi_tls_max_version")


@dataclass(frozen=True)
class ConfigSource:
    config_file: str | None = None
    config_dir: str | None = None
    s3_conf: str | None = None
    overrides: Mapping[str, object] = field(default_factory=dict)

    def load(self, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings as ``serve`` builds them (ConfigError on a bad file)."""
        return load_settings(config_file=self.config_file, config_dir=self.config_dir, s3_conf=self.s3_conf,
                             overrides=self.overrides, environ=environ)


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """Names of the settings that differ but only take effect after a restart."""
    return [name for name in RESTART_ONLY if getattr(old, name) != getattr(new, name)]
