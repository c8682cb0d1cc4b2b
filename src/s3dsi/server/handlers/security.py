"""AUTH and ADAT: the GSSAPI exchange (RFC 2228, as GCT) and explicit FTPS (AUTH TLS, RFC 4217).

AUTH GSSAPI -> 334, then ADAT tokens -> 335 ADAT=<token> ... 235 (``ADAT=<token>`` when the last
token is not empty). A failed exchange answers a 530 block carrying the reason (OpenSSL's verify
error, the signing-policy or CRL verdict) and the session may start again with AUTH. Without a host
credential AUTH GSSAPI answers the reference's 530 block and password logins keep working.
AUTH TLS (and SSL, TLS-C as vsftpd/pyftpdlib accept) -> 234, then the connection continues in TLS.
The handshake steps and the delegated key's generation run on a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING

from s3dsi.protocol.lines import MAX_LINE
from s3dsi.protocol.replies import NOT_SUPPORTED, Reply
from s3dsi.protocol.session import Deferred
from s3dsi.security.engine import SecurityContextError
from s3dsi.security.gss import GssAcceptor
from s3dsi.security.rfc2228 import ADAT_MAX_LINE, ProtectedControl, TlsControl

if TYPE_CHECKING:
    from s3dsi.server.session import Handler, Session

TLS_NAMES = frozenset({"TLS", "SSL", "TLS-C"})
GSSAPI_ACCOUNT = ":gssapi:"  # the throttle's account key for failed GSSAPI exchanges
UNKNOWN_MECHANISM = Reply.line(504, "Unknown authentication type.")
ALREADY_PROTECTED = Reply.line(503, "The control connection is already protected.")


async def auth(session: Session, cmd: Deferred) -> None:
    mechanism = (cmd.line.arg or "").strip().upper()
    services = session.ctx.security
    if session.state.protection is not None:
        await session.reply(ALREADY_PROTECTED)
        return
    if session.state.logged_in:
        await session.reply(Reply.line(503, "AUTH must come before the login."))
        return
    if mechanism == "GSSAPI":
        if services.gsi is None:
            await session.reply(Reply.block(530, services.gsi_unavailable))
            return
        session.security.close()
        session.security.gss = GssAcceptor(services.gsi, services.verify)
        session.lines.max_line = ADAT_MAX_LINE  # ADAT lines carry certificate chains
        await session.reply(session.core.auth_started())
        return
    if mechanism in TLS_NAMES and services.ftps is not None:
        session.core.auth_ended("TLS")
        session.security.mechanism = "TLS"
        await session.stream.send_and_switch(Reply.line(234, "AUTH command OK. Expecting TLS Negotiation."),
                                             TlsControl(services.ftps))
        session.log.info("control connection protected", mechanism="TLS")
        return
    await session.reply(UNKNOWN_MECHANISM)


def _failed(session: Session, reason: str) -> Reply:
    session.core.auth_ended(None)
    session.lines.max_line = MAX_LINE
    session.security.close()
    session.security.gss = None
    return Reply.block(530, ["globus_xio: Authentication Error", "GSS failure: ", reason])


async def adat(session: Session, cmd: Deferred) -> None:
    acceptor = session.security.gss
    if acceptor is None or not session.state.auth_in_progress:
        await session.reply(NOT_SUPPORTED)  # as GT without a security exchange in progress
        return
    try:
        token = base64.b64decode((cmd.line.arg or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        await session.reply(Reply.line(501, "ADAT: the argument is not base64."))
        return
    loop = asyncio.get_running_loop()
    try:
        out = await loop.run_in_executor(session.ctx.namespace_pool, acceptor.step, token)
    except SecurityContextError as err:
        # counted like a failed password for the address (the certificate names no account yet)
        attempt = session.ctx.throttle.attempt(session.peer[0], GSSAPI_ACCOUNT)
        attempt.failed()
        session.log.warning("GSSAPI authentication failed", reason=str(err), delay=attempt.delay)
        await attempt.wait()
        await session.reply(_failed(session, str(err)))
        return
    encoded = base64.b64encode(out).decode("ascii")
    if not acceptor.complete:
        await session.reply(Reply.line(335, f"ADAT={encoded}"))
        return
    security = session.security
    security.identity = acceptor.peer
    security.delegated = acceptor.delegated
    security.mechanism = "GSSAPI"
    session.core.auth_ended("GSSAPI")
    session.lines.max_line = MAX_LINE
    done = Reply.line(235, f"ADAT={encoded}") if out else Reply.line(235, "GSSAPI Authentication successful.")
    assert acceptor.peer is not None
    session.log.info("GSSAPI authenticated", dn=acceptor.peer.dn, limited=acceptor.peer.limited,
                     delegated=acceptor.delegated is not None)
    await session.stream.send_and_switch(done, ProtectedControl(acceptor))


HANDLERS: Mapping[str, Handler] = {
    "AUTH": auth,
    "ADAT": adat,
}
