"""PASS: check the password, then bind the session to the user's S3 credentials.

Every reply waits as the login throttle says (server/throttle.py), whether the password was right or
wrong; the check itself runs on the login pool. After ``login_attempts_max`` failures the connection
is closed. Anonymous sessions get a read-only back end unless ``anonymous_read_only`` is 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from s3dsi.protocol.errors import DsiError
from s3dsi.protocol.replies import Reply
from s3dsi.protocol.session import Deferred
from s3dsi.server.handlers.registry import handles
from s3dsi.storage.readonly import ReadOnlyBackend

if TYPE_CHECKING:
    from s3dsi.server.session import Session

TOO_MANY_FAILURES = Reply.line(421, "Too many failed logins: closing control connection.")


@handles("PASS")
async def pass_(session: Session, cmd: Deferred) -> None:
    ctx = session.ctx
    name = session.state.pending_user or ""
    password = cmd.line.arg or ""
    attempt = ctx.throttle.attempt(session.peer[0], name)
    local_user = await ctx.login_pool.run(ctx.authenticator.authenticate, name, password)
    backend = None
    if local_user is not None:
        try:
            backend = await ctx.call(ctx.backends.backend_for, local_user)
        except DsiError as err:
            session.log.warning("no usable S3 credentials", user=local_user, reason=err.text)
    if local_user is None or backend is None:
        attempt.failed()
        session.log.warning("login failed", ftp_user=name, delay=attempt.delay)
        await attempt.wait()
        # One reason for every failure: a client cannot tell a bad password from a missing map entry.
        await session.reply(session.core.login_failed("bad user name, password or credentials"))
        session.failed_logins += 1
        if session.failed_logins >= ctx.settings.login_attempts_max:
            await session.reply(TOO_MANY_FAILURES)
            session.close_after_reply()
        return
    await attempt.wait()
    if ctx.settings.anonymous_read_only and ctx.authenticator.is_anonymous(name):
        backend = ReadOnlyBackend(backend)
    session.backend = backend
    reply = session.core.login_succeeded(local_user)
    session.log = session.log.bind(user=local_user)
    session.log.info("login", ftp_user=name)
    await session.reply(reply)
