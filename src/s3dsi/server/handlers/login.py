"""PASS: check the password (or, after AUTH GSSAPI, map the certificate's DN through the grid-mapfile),
then bind the session to the local user's S3 credentials.

After GSSAPI the password is ignored (clients send an empty or dummy one): the identity is the
verified end-entity DN. ``USER :globus-mapping:`` takes the DN's default account, ``USER name`` only
an account the DN's grid-mapfile entry lists. Either way the local user then gets its S3 credentials
exactly as a password login does (``BackendProvider.backend_for``; a per-session process becomes
that user there).

Every reply to PASS waits as the login throttle says (server/throttle.py), whether the password was
right or wrong; the check itself runs on the login pool. After ``login_attempts_max`` failures the
connection is closed. Anonymous sessions get a read-only back end unless ``anonymous_read_only`` is 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from s3dsi.protocol.errors import CredentialsUnavailable, DsiError
from s3dsi.protocol.replies import Reply
from s3dsi.protocol.session import Deferred
from s3dsi.security.gridmap import GridMapError
from s3dsi.storage.readonly import ReadOnlyBackend

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

TOO_MANY_FAILURES = Reply.line(421, "Too many failed logins: closing control connection.")


async def pass_(session: Session, cmd: Deferred) -> None:
    ctx = session.ctx
    name = session.state.pending_user or ""
    password = cmd.line.arg or ""
    attempt = ctx.throttle.attempt(session.peer[0], name)
    identity = session.security.identity
    gsi = identity is not None
    if gsi:
        local_user = await _gsi_user(session, name)
    else:
        local_user = await ctx.login_pool.run(ctx.authenticator.authenticate, name, password)
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
        attempt.failed()
        session.log.warning("login failed", ftp_user=name, delay=attempt.delay)
        await attempt.wait()
        # One reason for every failure: a client cannot tell a bad password from a missing map entry.
        reason = "no grid-mapfile entry or S3 credentials for this DN and user" if gsi else \
            "bad user name, password or credentials"
        reason = told or reason
        await session.reply(session.core.login_failed(reason))
        session.failed_logins += 1
        if session.failed_logins >= ctx.settings.login_attempts_max:
            await session.reply(TOO_MANY_FAILURES)
            session.close_after_reply()
        return
    await attempt.wait()
    if ctx.settings.anonymous_read_only and ctx.authenticator.is_anonymous(name):
        backend = ReadOnlyBackend(backend)
    session.backend = backend
    reply = session.core.login_succeeded(local_user, name=local_user if gsi else None)
    session.log = session.log.bind(user=local_user)
    session.log.info("login", ftp_user=name, dn=identity.dn if identity is not None else None)
    await session.reply(reply)


HANDLERS: Mapping[str, Handler] = {
    "PASS": pass_,
}
