"""CWD/CDUP, SIZE, MDTM, MLST, STAT <path>, MKD, RMD, DELE, RNFR/RNTO, ABOR when nothing runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from s3dsi.protocol.entries import Entry
from s3dsi.protocol.errors import DsiError, NotADirectory
from s3dsi.protocol.listing import mlst_reply, stat_reply
from s3dsi.protocol.replies import (
    ABORT_SUCCESSFUL,
    ACTION_OK,
    cwd_failed_reply,
    error_reply,
    mdtm_reply,
    mkd_reply,
    size_reply,
)
from s3dsi.protocol.session import Deferred

if TYPE_CHECKING:
    from s3dsi.server.session import Handler, Session

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def target_path(cmd: Deferred) -> str:
    assert cmd.target is not None, "path commands always carry a target"
    return cmd.target.path


def with_operation(err: DsiError, operation: str) -> DsiError:
    if err.operation is None:
        err.operation = operation
    return err


async def stat(session: Session, path: str) -> Entry:
    try:
        return await session.ctx.call(session.user_backend.stat, path)
    except DsiError as err:
        raise with_operation(err, "stat") from None


async def stat_target(session: Session, cmd: Deferred) -> Entry:
    """stat of the command's path; a path written with a trailing ``/`` must be a directory."""
    assert cmd.target is not None
    entry = await stat(session, cmd.target.path)
    if cmd.target.trailing_slash and not entry.is_dir:
        raise NotADirectory(f"{cmd.target.path}: Not a directory", operation="stat")
    return entry


async def cwd(session: Session, cmd: Deferred) -> None:
    path = target_path(cmd)
    try:
        entry = await stat(session, path)
        if not entry.is_dir:
            raise NotADirectory(operation="chdir")
    except DsiError as err:
        await session.reply(cwd_failed_reply(path, err))
        return
    await session.reply(session.core.changed_directory(path))


async def size(session: Session, cmd: Deferred) -> None:
    entry = await stat_target(session, cmd)
    await session.reply(size_reply(entry.size))


async def mdtm(session: Session, cmd: Deferred) -> None:
    entry = await stat_target(session, cmd)
    await session.reply(mdtm_reply(entry.modified or EPOCH))


async def mlst(session: Session, cmd: Deferred) -> None:
    assert cmd.target is not None
    entry = await stat_target(session, cmd)
    await session.reply(mlst_reply(cmd.target.given, entry, facts=session.state.mlst_facts,
                                   owner=owner_of(session), root=cmd.target.path == "/"))


async def stat_path(session: Session, cmd: Deferred) -> None:
    assert cmd.target is not None
    entry = await stat_target(session, cmd)
    await session.reply(stat_reply(cmd.target.given, entry, owner=owner_of(session)))


async def mkd(session: Session, cmd: Deferred) -> None:
    path = target_path(cmd)
    try:
        await session.ctx.call(session.user_backend.mkdir, path)
    except DsiError as err:
        raise with_operation(err, "mkdir") from None
    await session.reply(mkd_reply(path))


async def rmd(session: Session, cmd: Deferred) -> None:
    try:
        await session.ctx.call(session.user_backend.rmdir, target_path(cmd))
    except DsiError as err:
        raise with_operation(err, "rmdir") from None
    await session.reply(ACTION_OK)


async def dele(session: Session, cmd: Deferred) -> None:
    try:
        if cmd.target is not None and cmd.target.trailing_slash:
            await stat_target(session, cmd)  # "file/" names a directory: never delete the file
        await session.ctx.call(session.user_backend.delete, target_path(cmd))
    except DsiError as err:
        raise with_operation(err, "unlink") from None
    await session.reply(ACTION_OK)


async def rnfr(session: Session, cmd: Deferred) -> None:
    path = target_path(cmd)
    try:
        await stat_target(session, cmd)
    except DsiError as err:
        await session.reply(error_reply(err, code=500))  # GT answers a missing source with 500
        return
    try:
        await session.ctx.call(session.user_backend.check_renamable, path)  # a policy may forbid it
    except DsiError as err:
        raise with_operation(err, "rename") from None
    await session.reply(session.core.rnfr_accepted(path))


async def rnto(session: Session, cmd: Deferred) -> None:
    assert cmd.rename_from is not None
    try:
        await session.ctx.call(session.user_backend.rename, cmd.rename_from, target_path(cmd))
    except DsiError as err:
        raise with_operation(err, "rename") from None
    await session.reply(ACTION_OK)


async def abor(session: Session, cmd: Deferred) -> None:
    await session.reply(ABORT_SUCCESSFUL)


def owner_of(session: Session) -> str:
    return session.state.user or "s3"


HANDLERS: Mapping[str, Handler] = {
    "CWD": cwd,
    "CDUP": cwd,
    "SIZE": size,
    "MDTM": mdtm,
    "MLST": mlst,
    "STAT": stat_path,
    "MKD": mkd,
    "RMD": rmd,
    "DELE": dele,
    "RNFR": rnfr,
    "RNTO": rnto,
    "ABOR": abor,
}
