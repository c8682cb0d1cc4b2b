"""``s3dsi serve``: run the GridFTP daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.settings import Settings
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.logging import configure_logging, get_logger
from s3dsi.protocol.errors import ConfigError
from s3dsi.server.app import Daemon
from s3dsi.server.backends import MapFileBackends
from s3dsi.server.context import BackendProvider
from s3dsi.storage.s3 import S3BackendFactory
from s3dsi.storage.s3clients import S3Config


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser("serve", help="run the GridFTP daemon")
    add_config_arguments(p)
    p.add_argument("-p", "--port", type=int, help="control port (0: pick a free one and print it)")
    p.add_argument("--control-interface", metavar="ADDR", help="address to listen on for control connections")
    p.add_argument("--data-interface", metavar="ADDR", help="address for passive data connections")
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    flags = {"port": args.port, "control_interface": args.control_interface,
             "data_interface": args.data_interface}
    return {k: v for k, v in flags.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args, overrides=_overrides(args))
    except ConfigError as err:
        print(f"s3dsi serve: {err}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        authenticator = Authenticator.from_settings(settings)
    except Exception as err:  # an unreadable or insecure password file: refuse to start
        print(f"s3dsi serve: {err}", file=sys.stderr)
        return 2
    backends = MapFileBackends(settings, S3BackendFactory(S3Config.from_settings(settings)))
    return run_daemon(settings, authenticator, backends)


def run_daemon(settings: Settings, authenticator: Authenticator | Any, backends: BackendProvider) -> int:
    _install_uvloop()
    return asyncio.run(_serve(settings, authenticator, backends))


def _install_uvloop() -> None:
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(settings: Settings, authenticator: Any, backends: BackendProvider) -> int:
    log = get_logger("s3dsi.daemon")
    daemon = Daemon(settings, authenticator=authenticator, backends=backends)
    try:
        await daemon.start()
    except OSError as err:
        print(f"s3dsi serve: cannot listen on port {settings.port}: {err.strerror}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping", grace=settings.shutdown_grace)
    await daemon.stop(grace=float(settings.shutdown_grace))
    return 0
