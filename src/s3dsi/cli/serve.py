"""``s3dsi serve``: run the GridFTP daemon in the foreground (``--demo``: on an embedded S3)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from s3dsi.config.arguments import add_config_arguments


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="run the GridFTP daemon",
        description="Run the daemon in the foreground until SIGTERM or Ctrl-C. SIGHUP reloads the "
                    "configuration and the password file. The first line on stdout is 'listening on "
                    "HOST:PORT'.")
    add_config_arguments(p)
    p.add_argument("-p", "--port", type=int, help="control port (0: pick a free one and print it)")
    p.add_argument("--control-interface", metavar="ADDR", help="address to listen on for control connections")
    p.add_argument("--data-interface", metavar="ADDR", help="address for passive data connections")
    p.add_argument("--demo", action="store_true",
                   help="run on an embedded, throwaway S3 (moto) with a demo bucket and user; needs the "
                        "'demo' extra; reads no configuration and keeps nothing")
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    flags = {"port": args.port, "control_interface": args.control_interface,
             "data_interface": args.data_interface}
    return {k: v for k, v in flags.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    # imported here: `s3dsi --help` and the other subcommands need none of the daemon's modules
    from s3dsi.daemon.configsource import ConfigSource  # noqa: PLC0415
    from s3dsi.daemon.startup import StartupError  # noqa: PLC0415

    try:
        if args.demo:
            from s3dsi.daemon.demo import run_demo  # noqa: PLC0415

            return run_demo(port=args.port, interface=args.control_interface)
        from s3dsi.daemon.startup import serve  # noqa: PLC0415

        source = ConfigSource(args.config_file, args.config_dir, args.s3_conf, _overrides(args))
        return serve(source)
    except StartupError as err:
        print(f"s3dsi serve: {err}", file=sys.stderr)
        return err.status
