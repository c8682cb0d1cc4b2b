"""RETR, ERET, STOR, APPE, ESTO: moving file data between the data connections and S3.

Downloads: a DownloadEngine prefetches ranged GETs (pinned to the ETag seen at open) and the senders
push its chunks out. Uploads: an UploadEngine turns the received bytes into multipart parts; the
object becomes visible only at CompleteMultipartUpload after the data ended cleanly, and every failure
path aborts the multipart upload so an existing object of the same name stays untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from s3dsi.protocol.errors import (
    DsiError,
    NotADirectory,
    NotSupported,
    PathNotFound,
    TransferAborted,
)
from s3dsi.protocol.replies import TRANSFER_ABORTED, TRANSFER_COMPLETE, transfer_failed_reply
from s3dsi.protocol.session import Deferred
from s3dsi.server.data.markers import MarkerTicker
from s3dsi.server.data.paths import DataPath, data_path, wait_for_data
from s3dsi.server.data.send import ChunkSource, Progress
from s3dsi.server.restart import RestartKeeper
from s3dsi.server.session import RunningTransfer
from s3dsi.transfer.buffers import PoolAccount
from s3dsi.transfer.download import DownloadEngine
from s3dsi.transfer.errors import IncompleteUpload
from s3dsi.transfer.geometry import upload_plan
from s3dsi.transfer.resume import Resumable, find_resumable
from s3dsi.transfer.upload import UploadEngine
from s3dsi.transfer.watch import DataWatch

if TYPE_CHECKING:
    from s3dsi.server.session import Handler, Session

CHUNK_SIZE = 1024 * 1024
CONTROL_EOF_GRACE = 0.05


# -- shared steps ---------------------------------------------------------------------------------
def path_for(session: Session) -> DataPath:
    """The data path of the session's current mode."""
    return data_path(session.channels, session.state.mode, session.reply)


def data_watch(session: Session, progress: Callable[[], int], account: PoolAccount | None = None,
               excused: Callable[[], bool] | None = None) -> DataWatch:
    """The data watchdog of a transfer (``data_idle_timeout``, ``data_pressure_timeout``)."""
    settings = session.ctx.settings
    return DataWatch(progress, idle_timeout=settings.data_idle_timeout,
                     pressure_timeout=settings.data_pressure_timeout, pool=session.ctx.pool,
                     account=account, excused=excused)


async def send_data(session: Session, transfer: RunningTransfer, source: ChunkSource, progress: Progress, *,
                    offset_shift: int = 0, on_start: Callable[[], None] | None = None,
                    account: PoolAccount | None = None) -> None:
    """Send ``source`` in the current mode (RETR, ERET, listings): announce 125/150, move the data; a
    failed or interrupted send leaves no connection behind for reuse. ``on_start`` runs once data moves;
    ``account``: the pool memory the source holds (for the watchdog)."""
    data = path_for(session)
    async with data.sending(session.state.parallelism) as sender:
        transfer.streams, transfer.data_peer = data.streams, data.peer
        if on_start is not None:
            on_start()
        watch = data_watch(session, lambda: progress.nbytes, account)
        await sender.send(source, progress, offset_shift=offset_shift, watch=watch)


async def finish_transfer(session: Session, transfer: RunningTransfer, failure: BaseException | None) -> None:
    if failure is None:
        await session.reply(TRANSFER_COMPLETE)
        session.log.info("transfer done", kind=transfer.kind, path=transfer.path, nbytes=transfer.nbytes)
        session.report_transfer(transfer, TRANSFER_COMPLETE.code)
        return
    if isinstance(failure, asyncio.CancelledError):
        session.log.info("transfer aborted", kind=transfer.kind, path=transfer.path)
        session.report_transfer(transfer, TRANSFER_ABORTED.code)
        return
    err = failure if isinstance(failure, DsiError) else DsiError(f"{type(failure).__name__}")
    if not isinstance(failure, DsiError):
        session.log.error("transfer failed", kind=transfer.kind, path=transfer.path, exc_info=failure)
    else:
        session.log.warning("transfer failed", kind=transfer.kind, path=transfer.path, error=err.text)
    reply = transfer_failed_reply(err)
    await session.reply(reply)
    session.report_transfer(transfer, reply.code)


# -- downloads ------------------------------------------------------------------------------------
async def retr(session: Session, cmd: Deferred) -> None:
    assert cmd.target is not None
    await _download(session, cmd.target.path, window=None, slashed=cmd.target.trailing_slash)


async def eret(session: Session, cmd: Deferred) -> None:
    assert cmd.target is not None
    await _download(session, cmd.target.path, window=(cmd.offset, cmd.length),
                    slashed=cmd.target.trailing_slash)


async def _download(session: Session, path: str, *, window: tuple[int, int] | None,
                    slashed: bool = False) -> None:
    ctx, state = session.ctx, session.state
    rest = session.core.take_rest()
    ranges: list[tuple[int, int | None]] | None = None
    shift = 0
    if window is not None:
        ranges = [(window[0], window[0] + window[1])]
        shift = window[0]
    elif rest is not None:
        ranges = [(start, end) for start, end in rest.needed()]  # the engine clips them to the size
    engine = DownloadEngine(session.user_backend, path, ranges=ranges, pool=ctx.pool, workers=ctx.workers,
                            part_size=ctx.settings.part_size_min, chunk_size=CHUNK_SIZE)
    try:
        await engine.open()
        if slashed:  # "name/" names a directory; an object is not one
            raise NotADirectory(f"{path}: Not a directory", operation="open")
    except DsiError as err:
        await engine.close()
        await session.reply(transfer_failed_reply(err))
        return
    transfer = RunningTransfer("RETR" if window is None else "ERET", path)
    progress = Progress()
    transfer.progress, transfer.block_size = (lambda: progress.nbytes), CHUNK_SIZE

    async def body() -> None:
        ticker = MarkerTicker(session.reply, bytes_done=lambda: progress.nbytes,
                              perf_interval=state.retr_markers)
        try:
            await send_data(session, transfer, engine, progress, offset_shift=shift, on_start=ticker.start,
                            account=engine.pool_account)
            await ticker.stop()
            if state.retr_markers:
                await ticker.perf_now()
        finally:
            await ticker.stop()
            transfer.nbytes = progress.nbytes
            await asyncio.shield(engine.close())

    failure = await session.run_transfer(transfer, body)
    await finish_transfer(session, transfer, failure)


# -- uploads --------------------------------------------------------------------------------------
async def store(session: Session, cmd: Deferred) -> None:
    assert cmd.target is not None
    offset = cmd.offset if cmd.spec.verb == "ESTO" else 0
    await _upload(session, cmd.target.path, kind=cmd.spec.verb, offset=offset)


async def _object_exists(session: Session, path: str) -> bool:
    try:
        await session.ctx.call(session.user_backend.head_object, path)
    except PathNotFound:
        return False
    return True


async def _refuse_partial_write(session: Session, path: str, kind: str, offset: int) -> None:
    """S3 objects cannot be modified in place: partial writes onto existing objects are refused."""
    if kind == "STOR":
        return
    exists = await _object_exists(session, path)
    if kind == "APPE" and exists:
        raise NotSupported("APPE onto an existing object is not supported: S3 objects cannot be appended "
                           "to; upload the whole file with STOR", code=504)
    if kind == "ESTO" and (exists or offset > 0):
        raise NotSupported("ESTO onto an existing object or at a non-zero offset is not supported: "
                           "S3 objects cannot be modified in place", code=504)


async def _resumable(session: Session, path: str, held: list[tuple[int, int]]) -> Resumable:
    """REST ranges on STOR: the unfinished upload they continue, or a refusal before 150."""
    ctx = session.ctx
    found = await ctx.call(find_resumable, session.user_backend, session.state.user or "", path, held)
    if found is None:
        raise NotSupported("REST does not match an unfinished upload of this file; "
                           "restart the transfer from the beginning")
    session.log.info("resuming upload", path=path, upload_id=found.entry.upload_id,
                     parts=len(found.parts))
    return found


async def _upload(session: Session, path: str, *, kind: str, offset: int) -> None:
    ctx, state = session.ctx, session.state
    settings = ctx.settings
    rest = session.core.take_rest()
    allo = session.core.take_allo()
    expect = session.core.take_expected_checksum()
    checksums = tuple(settings.upload_checksums)
    if expect is not None and expect[0].upper() not in {c.upper() for c in checksums}:
        checksums = (*checksums, expect[0].upper())  # SCKS: compute what the client will check
    held = [(a, b) for a, b in (rest.held if rest is not None else []) if b > a]
    resumed: Resumable | None = None
    try:
        await _refuse_partial_write(session, path, kind, offset)
        if held:
            resumed = await _resumable(session, path, held)
            plan = resumed.plan
        else:
            plan = upload_plan(allo + offset if allo else None, min_part=settings.part_size_min,
                               max_part=settings.part_size_max, budget=settings.memory_budget)
        keeper = RestartKeeper(session, path, session.user_backend, plan, resumed.entry if resumed else None)
        if resumed is not None:
            await keeper.resumed()
        engine = UploadEngine(session.user_backend, path, plan=plan, pool=ctx.pool, workers=ctx.workers,
                              checksums=checksums, base_offset=offset,
                              upload_id=resumed.entry.upload_id if resumed else None,
                              committed_parts=resumed.parts if resumed else (), recorder=keeper)
        keeper.engine = engine
        await engine.open()
    except DsiError as err:
        await session.reply(transfer_failed_reply(err))
        return
    transfer = RunningTransfer(kind, path)
    transfer.progress, transfer.block_size = (lambda: engine.bytes_received), CHUNK_SIZE
    data = path_for(session)

    async def body() -> None:
        ticker: MarkerTicker | None = None
        try:
            async with data.receiving(engine) as receive:
                transfer.data_peer = data.peer
                if data.upload_markers:
                    ticker = MarkerTicker(session.reply, bytes_done=lambda: engine.bytes_received,
                                          perf_interval=state.perf_interval, ranges=keeper.ranges,
                                          range_interval=state.restart_interval)
                    await ticker.perf_now()
                    ticker.start()
                watch = data_watch(session, lambda: engine.bytes_received, engine.pool_account,
                                   excused=receive.all_paused)
                await wait_for_data(receive, engine.is_stalled, watch)
                if resumed is None:
                    _check_allo(engine, allo, offset)
                if data.end_is_ambiguous and not allo:
                    await _confirm_client_alive(session)
                transfer.committing = True
                await engine.finish(expect=expect)
            if ticker is not None:
                await ticker.stop()
                await ticker.perf_now()
                await ticker.ranges_now()
        except BaseException as failure:
            # the record goes when the upload is completed or aborted (keeper.finished); one S3
            # refused to abort stays for the janitor
            keep = await keeper.keep_on(failure)
            await asyncio.shield(engine.abort(keep_upload=keep))
            raise
        finally:
            if ticker is not None:
                await ticker.stop()
            transfer.streams, transfer.data_peer = data.streams, transfer.data_peer or data.peer
            transfer.nbytes = engine.bytes_received

    failure = await session.run_transfer(transfer, body)
    await finish_transfer(session, transfer, failure)


def _check_allo(engine: UploadEngine, allo: int | None, offset: int) -> None:
    """Fewer bytes than ALLO announced means the sender died: never commit a truncated object."""
    if allo and engine.bytes_received + offset < allo:
        raise IncompleteUpload(f"received {engine.bytes_received} of the {allo - offset} bytes announced "
                               "by ALLO; the upload was not stored")


async def _confirm_client_alive(session: Session) -> None:
    """Stream mode without ALLO: a killed client closes data and control at once, and the data EOF
    alone looks like a complete file. Give the control EOF a moment to arrive before committing."""
    await asyncio.sleep(CONTROL_EOF_GRACE)
    if session.control_closed:
        raise TransferAborted("control connection closed during the upload; nothing was stored")


HANDLERS: Mapping[str, Handler] = {
    "RETR": retr,
    "ERET": eret,
    "STOR": store,
    "APPE": store,
    "ESTO": store,
}
