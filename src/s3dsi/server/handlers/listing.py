"""MLSD, MLSR, LIST, NLST (over the data channel) and MLSC (on the control channel).

Listings are produced page by page (one S3 ListObjectsV2 page at a time) and streamed, so a
directory of any size costs the memory of one page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from s3dsi.protocol.entries import Entry
from s3dsi.protocol.errors import DsiError
from s3dsi.protocol.listing import list_line, mlsc_line, mlsd_line, nlst_line
from s3dsi.protocol.paths import basename, parent
from s3dsi.protocol.replies import Reply, sanitize
from s3dsi.protocol.session import Deferred
from s3dsi.server.data.send import BytesSource, Progress
from s3dsi.server.handlers.namespace import owner_of, stat_target, target_path
from s3dsi.server.handlers.transfers import finish_transfer, send_data
from s3dsi.server.session import RunningTransfer
from s3dsi.storage.paths import unique_for

if TYPE_CHECKING:
    from s3dsi.server.session import Handler, Session

LineFormat = Callable[[Entry, str | None, str | None], bytes]  # entry, shown name, cdir/pdir


async def pages(session: Session, path: str) -> AsyncIterator[list[Entry]]:
    """The back end's listing pages, each fetched in a worker thread when needed."""
    backend = session.user_backend
    iterator: Iterator[list[Entry]] = await session.ctx.call(lambda: iter(backend.list_pages(path)))
    while True:
        page = await session.ctx.call(next, iterator, None)
        if page is None:
            return
        yield page


def _formatter(session: Session, verb: str) -> LineFormat:
    facts = session.state.mlst_facts
    owner = owner_of(session)

    def mlsd(entry: Entry, name: str | None, kind: str | None) -> bytes:
        return mlsd_line(entry, facts=facts, owner=owner, name=name, type_override=kind,
                         root=entry.name == "/")

    def ls(entry: Entry, name: str | None, kind: str | None) -> bytes:
        return list_line(entry, owner, name=name)

    def nlst(entry: Entry, name: str | None, kind: str | None) -> bytes:
        return nlst_line(name if name is not None else entry.name)

    return {"MLSD": mlsd, "MLSR": mlsd, "LIST": ls, "NLST": nlst}[verb]


def _dot_entries(path: str, here: Entry) -> tuple[Entry, Entry]:
    up = parent(path)
    up_entry = Entry(name="..", is_dir=True, size=0, modified=None, unique=unique_for(up))
    return replace(here, name="."), up_entry


async def listing_bytes(session: Session, verb: str, path: str, here: Entry) -> AsyncIterator[bytes]:
    fmt = _formatter(session, verb)
    if not here.is_dir:
        yield fmt(here, basename(path) or here.name, None)
        return
    dot, dotdot = _dot_entries(path, here)
    if verb != "MLSR":
        yield fmt(dot, ".", "cdir") + fmt(dotdot, "..", "pdir")
    else:
        yield fmt(dot, ".", "cdir")
    stack: list[tuple[str, str]] = [(path, "")]  # (directory, name prefix relative to the top)
    while stack:
        directory, prefix = stack.pop()
        subdirs: list[tuple[str, str]] = []
        async for page in pages(session, directory):
            out = bytearray()
            for entry in page:
                out += fmt(entry, prefix + entry.name, None)
                if verb == "MLSR" and entry.is_dir:
                    child = directory.rstrip("/") + "/" + entry.name
                    subdirs.append((child, prefix + entry.name + "/"))
            if out:
                yield bytes(out)
        stack.extend(reversed(subdirs))


async def data_listing(session: Session, cmd: Deferred) -> None:
    verb = cmd.spec.verb
    path = target_path(cmd)
    here = await stat_target(session, cmd)  # a missing path is answered before any data connection
    transfer = RunningTransfer(verb, path)
    progress = Progress()

    async def body() -> None:
        await send_data(session, transfer, BytesSource(listing_bytes(session, verb, path, here)), progress)
        transfer.nbytes = progress.nbytes

    failure = await session.run_transfer(transfer, body)
    await finish_transfer(session, transfer, failure)


async def mlsc(session: Session, cmd: Deferred) -> None:
    assert cmd.target is not None
    path = cmd.target.path
    here = await stat_target(session, cmd)
    facts = session.state.mlst_facts
    owner = owner_of(session)

    def line(entry: Entry, name: str | None = None, kind: str | None = None) -> str | None:
        return mlsc_line(entry, facts=facts, owner=owner, name=name, type_override=kind,
                         root=path == "/" and kind == "cdir")

    stream = session.stream
    await stream.send_lines([f"250-Contents of {sanitize(cmd.target.given)}"])
    try:
        if not here.is_dir:
            lines = [line(here, basename(path))]
        else:
            dot, dotdot = _dot_entries(path, here)
            lines = [line(dot, ".", "cdir"), line(dotdot, "..", "pdir")]
        await stream.send_lines([x for x in lines if x is not None])
        if here.is_dir:
            async for page in pages(session, path):
                await stream.send_lines([x for x in (line(e) for e in page) if x is not None])
    except DsiError as err:
        # The multi-line reply already started: end it with the error's code and text.
        await stream.send_lines([f"250 End. (listing incomplete: {sanitize(err.text)})"])
        return
    except asyncio.CancelledError:
        raise
    await session.reply(Reply.line(250, "End."))


HANDLERS: Mapping[str, Handler] = {
    "MLSD": data_listing,
    "MLSR": data_listing,
    "LIST": data_listing,
    "NLST": data_listing,
    "MLSC": mlsc,
}
