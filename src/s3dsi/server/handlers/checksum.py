"""CKSM: whole or partial-range digests, from stored tags when they still describe the object.

A digest that must be computed by reading the object back can take a while; after
``OPTS CKSM markers=N;`` the client gets a ``113`` status marker every N seconds meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from s3dsi.protocol.errors import DsiError
from s3dsi.protocol.markers import cksm_marker
from s3dsi.protocol.replies import UNKNOWN_CHECKSUM, cksm_reply, transfer_failed_reply
from s3dsi.protocol.session import Deferred
from s3dsi.transfer.cksm import UnknownChecksumAlgorithm, compute_checksum

if TYPE_CHECKING:
    from s3dsi.server.session import Handler, Session


async def cksm(session: Session, cmd: Deferred) -> None:
    assert cmd.target is not None
    assert cmd.algorithm is not None
    ctx = session.ctx
    processed = 0

    def progress(nbytes: int) -> None:
        nonlocal processed
        processed = nbytes

    async def markers(interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await session.reply(cksm_marker(time.time(), processed))

    interval = session.state.cksm_markers
    ticker = asyncio.create_task(markers(float(interval))) if interval else None
    try:
        digest = await compute_checksum(session.user_backend, cmd.target.path, cmd.algorithm, cmd.offset,
                                        cmd.length, pool=ctx.pool, workers=ctx.workers,
                                        part_size=ctx.settings.part_size_min, progress=progress)
    except UnknownChecksumAlgorithm:
        await session.reply(UNKNOWN_CHECKSUM)
        return
    except DsiError as err:
        await session.reply(transfer_failed_reply(err, code=500))
        return
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
    await session.reply(cksm_reply(digest))


HANDLERS: Mapping[str, Handler] = {
    "CKSM": cksm,
}
