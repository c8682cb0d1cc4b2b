"""CKSM: whole or partial-range digests, from stored tags when they still describe the object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from s3dsi.protocol.errors import DsiError
from s3dsi.protocol.replies import UNKNOWN_CHECKSUM, cksm_reply, transfer_failed_reply
from s3dsi.protocol.session import Deferred
from s3dsi.server.handlers.registry import handles
from s3dsi.transfer.cksm import UnknownChecksumAlgorithm, compute_checksum

if TYPE_CHECKING:
    from s3dsi.server.session import Session


@handles("CKSM")
async def cksm(session: Session, cmd: Deferred) -> None:
    assert cmd.target is not None
    assert cmd.algorithm is not None
    ctx = session.ctx
    try:
        digest = await compute_checksum(session.user_backend, cmd.target.path, cmd.algorithm, cmd.offset,
                                        cmd.length, pool=ctx.pool, workers=ctx.workers,
                                        part_size=ctx.settings.part_size_min)
    except UnknownChecksumAlgorithm:
        await session.reply(UNKNOWN_CHECKSUM)
        return
    except DsiError as err:
        await session.reply(transfer_failed_reply(err, code=500))
        return
    await session.reply(cksm_reply(digest))
