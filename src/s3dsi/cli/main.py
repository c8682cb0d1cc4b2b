"""Entry point of the ``s3dsi`` console script and of ``python -m s3dsi``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from s3dsi import __version__

# Each module registers one subcommand: register(subparsers) -> None, setting ``func`` on its parser.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "s3dsi.cli.serve",
    "s3dsi.cli.janitor",
    "s3dsi.cli.check_config",
    "s3dsi.cli.map_cmd",
    "s3dsi.cli.passwd",
    "s3dsi.cli.policy",
    "s3dsi.cli.status",
    "s3dsi.cli.probe",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3dsi",
        description="GridFTP-compatible transfer daemon storing data in S3.",
    )
    parser.add_argument("--version", action="version", version=f"s3dsi {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = func(args)
    return result
