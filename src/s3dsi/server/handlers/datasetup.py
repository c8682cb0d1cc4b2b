"""PASV, EPSV, SPAS, PORT, EPRT, SPOR: where the next data connections come from or go to."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from s3dsi.protocol.addresses import canonical_ip, same_host_or_allowed
from s3dsi.protocol.parsing import format_epsv, format_pasv, format_spas
from s3dsi.protocol.replies import PASSIVE_DELAYED, PORT_OK, Reply
from s3dsi.protocol.session import Deferred

if TYPE_CHECKING:
    from s3dsi.server.session import Handler, Session


def check_target(session: Session, host: str, port: int) -> Reply | None:
    """FTP bounce protection: data connections only to the client's own address, unprivileged ports."""
    if port < 1024:
        return Reply.line(501, "Illegal PORT command: ports below 1024 are refused.")
    if canonical_ip(host) is None:
        return Reply.line(501, "Illegal PORT command.")
    if same_host_or_allowed(host, session.peer[0], session.ctx.settings.port_allow):
        return None
    return Reply.line(501, "Illegal PORT command: the address must be the client's own "
                           "(third-party peers must be listed in port_allow).")


def _expected(session: Session) -> int | None:
    """Connections the next transfer will open: one in stream mode; MODE E says so in its EOF."""
    return None if session.state.mode == "E" else 1


async def pasv(session: Session, cmd: Deferred) -> None:
    if session.state.delayed_pasv:
        session.channels.delayed_passive(expected=_expected(session))
        await session.reply(PASSIVE_DELAYED)
        return
    host, port = await session.channels.passive(family=socket.AF_INET, expected=_expected(session))
    await session.reply(format_pasv(host, port))


async def epsv(session: Session, cmd: Deferred) -> None:
    arg = (cmd.line.arg or "").strip().upper()
    family = {"1": socket.AF_INET, "2": socket.AF_INET6}.get(arg, socket.AF_UNSPEC)
    _, port = await session.channels.passive(family=family, expected=_expected(session))
    await session.reply(format_epsv(port))


async def spas(session: Session, cmd: Deferred) -> None:
    host, port = await session.channels.passive(family=socket.AF_INET, expected=_expected(session))
    extended = (cmd.line.arg or "").strip() == "2"
    await session.reply(format_spas([(host, port)], extended=extended))


async def _set_active(session: Session, targets: list[tuple[str, int]]) -> None:
    for host, port in targets:
        refusal = check_target(session, host, port)
        if refusal is not None:
            await session.reply(refusal)
            return
    session.channels.active(targets)
    await session.reply(PORT_OK)


async def port(session: Session, cmd: Deferred) -> None:
    await _set_active(session, list(cmd.addresses))


HANDLERS: Mapping[str, Handler] = {
    "PASV": pasv,
    "EPSV": epsv,
    "SPAS": spas,
    "PORT": port,
    "EPRT": port,
    "SPOR": port,
}
