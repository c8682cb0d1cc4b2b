"""``s3dsi serve``: run the daemon (placeholder until the server lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser("serve", help="run the GridFTP daemon")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("s3dsi serve: not implemented yet")
