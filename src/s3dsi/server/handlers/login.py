"""PASS: check the password (or, after AUTH GSSAPI, map the certificate's DN through the grid-mapfile),
then bind the session to the local user's S3 credentials.

After GSSAPI the password is ignored (clients send an empty or dummy one): the identity is the
verified end-entity DN. ``USER :globus-mapping:`` takes the DN's default account, ``USER name`` only
an account the DN's grid-mapfile entry lists. Either way the local user then gets its S3 credentials
exactly as a password login does (``BackendProvider.backend_for``; a per-session process becomes
that user there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from s3dsi.protocol.errors import CredentialsUnavailable, DsiError
from s3dsi.protocol.session import Deferred
from s3dsi.security.gridmap import GridMapError

if TYPE_CHECKING:
    from s3dsi.server.session import Handler, Session


async def _gsi_user(session: Session, requested: str) -> str | None:
    identity = session.security.identity
    assert identity is not None
    try:
        local = await session.ctx.call(session.ctx.security.map_user, identity.dn, requested)
    except GridMapError as err:
        session.log.error("grid-mapfile unusable", error=str(err))
        return None
    if local is None:
        session.log.warning("no grid-mapfile entry allows this login", dn=identity.dn, ftp_user=requested)
    return local


async def pass_(session: Session, cmd: Deferred) -> None:
    ctx = session.ctx
    name = session.state.pending_user or ""
    identity = session.security.identity
    gsi = identity is not None
    if gsi:
        local_user = await _gsi_user(session, name)
    else:
        local_user = await ctx.call(ctx.authenticator.authenticate, name, cmd.line.arg or "")
    backend = None
    told: str | None = None  # a reason the user may hear (after a correct password or DN)
    if local_user is not None:
        try:
            backend = await ctx.call(ctx.backends.backend_for, local_user)
        except DsiError as err:
            session.log.warning("no usable S3 credentials", user=local_user, reason=err.text)
            if isinstance(err, CredentialsUnavailable):  # STS's reason, never a token: credentials.py
                told = err.text
    if local_user is None or backend is None:
        delay = ctx.throttle.delay_for(session.peer[0])
        session.log.warning("login failed", ftp_user=name, delay=delay)
        await asyncio.sleep(delay)
        # One reason for every failure: a client cannot tell a bad password from a missing map entry.
        reason = "no grid-mapfile entry or S3 credentials for this DN and user" if gsi else \
            "bad user name, password or credentials"
        reason = told or reason
        await session.reply(session.core.login_failed(reason))
        return
    ctx.throttle.succeeded(session.peer[0])
    session.backend = backend
    reply = session.core.login_succeeded(local_user, name=local_user if gsi else None)
    session.log = session.log.bind(user=local_user)
    session.log.info("login", ftp_user=name, dn=identity.dn if identity is not None else None)
    await session.reply(reply)


HANDLERS: Mapping[str, Handler] = {
    "PASS": pass_,
}
