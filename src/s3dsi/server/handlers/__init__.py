"""Command handlers for the commands the protocol core defers to the I/O layer, one module per area.

Each handler is ``async def h(session, line) -> None``; it sends its own replies and raises
``DsiError`` for the session to turn into the GridFTP error block.
"""

from __future__ import annotations

from s3dsi.server.handlers import checksum, datasetup, listing, login, namespace, security, transfers
from s3dsi.server.handlers.registry import HANDLERS

__all__ = ["HANDLERS", "checksum", "datasetup", "listing", "login", "namespace", "security", "transfers"]
