"""PASV, EPSV, SPAS, PORT, EPRT, SPOR: where the next data connections come from or go to."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

from s3dsi.protocol.parsing import format_epsv, format_pasv, format_spas
from s3dsi.protocol.replies import PASSIVE_DELAYED, PORT_OK, Reply
from s3dsi.protocol.session import Deferred
from s3dsi.server.handlers.registry import handles

if TYPE_CHECKING:
    from s3dsi.server.session import Session


def _canonical(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def check_target(session: Session, host: str, port: int) -> Reply | None:
    """FTP bounce protection: data connections only to the client's own address, unprivileged ports."""
    if port < 1024:
        return Reply.line(501, "Illegal PORT command: ports below 1024 are refused.")
    target = _canonical(host)
    if target is None:
        return Reply.line(501, "Illegal PORT command.")
    if target == _canonical(session.peer[0]):
        return None
    for net in session.ctx.settings.port_allow:
        if target in ipaddress.ip_network(net, strict=False):
            return None
    return Reply.line(501, "Illegal PORT command: the address must be the client's own "
                           "(third-party peers must be listed in port_allow).")


@handles("PASV")
async def pasv(session: Session, cmd: Deferred) -> None:
    if session.state.delayed_pasv:
        session.channels.delayed_passive()
        await session.reply(PASSIVE_DELAYED)
        return
    host, port = await session.channels.passive(family=socket.AF_INET)
    await session.reply(format_pasv(host, port))


@handles("EPSV")
async def epsv(session: Session, cmd: Deferred) -> None:
    arg = (cmd.line.arg or "").strip().upper()
    family = {"1": socket.AF_INET, "2": socket.AF_INET6}.get(arg, socket.AF_UNSPEC)
    _, port = await session.channels.passive(family=family)
    await session.reply(format_epsv(port))


@handles("SPAS")
async def spas(session: Session, cmd: Deferred) -> None:
    host, port = await session.channels.passive(family=socket.AF_INET)
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


@handles("PORT", "EPRT", "SPOR")
async def port(session: Session, cmd: Deferred) -> None:
    await _set_active(session, list(cmd.addresses))
