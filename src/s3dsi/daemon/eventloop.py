"""Running the daemon's coroutine on an event loop: uvloop when it is installed, asyncio's own otherwise.

Shared by the single-process start-up, the demo and each per-session child (after its fork).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def install_uvloop() -> None:
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    install_uvloop()
    return asyncio.run(main)
