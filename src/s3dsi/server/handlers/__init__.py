"""Command handlers for the commands the protocol core defers to the I/O layer, one module per area.

Each handler is ``async def h(session, line) -> None``; it sends its own replies and raises
``DsiError`` for the session to turn into the GridFTP error block. Each module ends with its own
``HANDLERS`` table (verb -> handler); ``handler_table`` merges them for the daemon, which hands the
result to every ``Session``. Nothing is registered by importing a module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from s3dsi.server.handlers import checksum, datasetup, listing, login, namespace, security, transfers

if TYPE_CHECKING:
    from s3dsi.server.session import Handler

AREAS = (login, namespace, listing, datasetup, transfers, checksum, security)


def handler_table(*tables: Mapping[str, Handler]) -> dict[str, Handler]:
    """The verb -> handler table of ``tables`` (default: every area's); a verb claimed twice is refused."""
    merged: dict[str, Handler] = {}
    for table in tables or tuple(area.HANDLERS for area in AREAS):
        for verb, handler in table.items():
            if verb in merged:
                raise ValueError(f"two handlers for {verb}")
            merged[verb] = handler
    return merged


__all__ = ["AREAS", "handler_table"]
