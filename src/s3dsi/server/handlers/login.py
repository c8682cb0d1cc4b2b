"""PASS: check the password, then bind the session to the user's S3 credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from s3dsi.protocol.errors import DsiError
from s3dsi.protocol.session import Deferred

if TYPE_CHECKING:
    from s3dsi.server.session import Handler, Session


async def pass_(session: Session, cmd: Deferred) -> None:
    ctx = session.ctx
    name = session.state.pending_user or ""
    password = cmd.line.arg or ""
    local_user = await ctx.call(ctx.authenticator.authenticate, name, password)
    backend = None
    if local_user is not None:
        try:
            backend = await ctx.call(ctx.backends.backend_for, local_user)
        except DsiError as err:
            session.log.warning("no usable S3 credentials", user=local_user, reason=err.text)
    if local_user is None or backend is None:
        delay = ctx.throttle.delay_for(session.peer[0])
        session.log.warning("login failed", ftp_user=name, delay=delay)
        await asyncio.sleep(delay)
        # One reason for every failure: a client cannot tell a bad password from a missing map entry.
        await session.reply(session.core.login_failed("bad user name, password or credentials"))
        return
    ctx.throttle.succeeded(session.peer[0])
    session.backend = backend
    reply = session.core.login_succeeded(local_user)
    session.log = session.log.bind(user=local_user)
    session.log.info("login", ftp_user=name)
    await session.reply(reply)


HANDLERS: Mapping[str, Handler] = {
    "PASS": pass_,
}
