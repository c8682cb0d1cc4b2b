"""The -c/-C/--s3-conf command-line options that ``serve``, ``check-config`` and the admin tools share."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from s3dsi.config.loader import DEFAULT_CONFIG_DIR, DEFAULT_CONFIG_FILE, DEFAULT_S3_CONF, load_settings
from s3dsi.config.settings import Settings


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration files")
    group.add_argument("-c", "--config-file", dest="config_file", metavar="FILE",
                       help=f"main configuration file, read instead of {DEFAULT_CONFIG_FILE}")
    group.add_argument("-C", "--config-dir", dest="config_dir", metavar="DIR",
                       help=f"configuration directory, read instead of {DEFAULT_CONFIG_DIR}")
    group.add_argument("--s3-conf", dest="s3_conf", metavar="FILE",
                       help=f"S3 connector configuration, read instead of {DEFAULT_S3_CONF}")


def settings_from_args(args: argparse.Namespace, *, overrides: Mapping[str, object] | None = None,
                       environ: Mapping[str, str] | None = None) -> Settings:
    """``load_settings`` with the paths from ``add_config_arguments``; raises ConfigError."""
    return load_settings(
        config_file=getattr(args, "config_file", None),
        config_dir=getattr(args, "config_dir", None),
        s3_conf=getattr(args, "s3_conf", None),
        overrides=overrides,
        environ=environ,
    )
