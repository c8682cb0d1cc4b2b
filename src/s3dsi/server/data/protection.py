"""The security of one session's data connections, from its DCAU and PROT settings.

* Clear control channel (``ftp://``): data connections are plain (PROT C only).
* GSSAPI (``gsiftp://``): DCAU A (the default) or S authenticates every data connection with a full
  GSI handshake using the credential the client delegated, the connecting side as initiator (gsi.md
  §2.4); PROT C then carries clear data, PROT S/P TLS records. DCAU N: plain connections.
* TLS (FTPS, RFC 4217): PROT P runs TLS on every data connection with the daemon as TLS server
  whichever side connected (RFC 4217 §7), and by default (``tls_require_session_reuse``) only a
  connection that resumes the control connection's TLS session is accepted.

Authenticated data channels (DCAU A/S) prove who the peer is, so their peer address does not matter
(third-party transfers come from another server); all others must come from the control peer
(``DataChannels``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from s3dsi.protocol.errors import DataChannelError
from s3dsi.protocol.session import SessionState
from s3dsi.security.datachannel import DataChannelContext, Protection, dcau_self, dcau_subject
from s3dsi.security.tlscontext import gsi_acceptor_context, gsi_initiator_context
from s3dsi.server.data.connection import DataConnection
from s3dsi.server.data.tls import FtpsServerHandshake, HandshakeSteps, RecordLayer, handshake
from s3dsi.server.security import SecurityServices, SessionSecurity


@dataclass
class _GsiContexts:
    """SSL contexts made from one delegated credential (an RSA key load each: made once per session)."""

    acceptor: ssl.SSLContext
    initiator: ssl.SSLContext


class DataProtection:
    """``DataSecurity`` for one session (see ``server.data.channels``)."""

    def __init__(self, state: SessionState, session: SessionSecurity, services: SecurityServices,
                 executor: Executor, *, require_session_reuse: bool, max_tls12: bool,
                 log: Callable[..., object] | None = None) -> None:
        self._state = state
        self._session = session
        self._services = services
        self._executor = executor
        self._require_reuse = require_session_reuse
        self._max_tls12 = max_tls12
        self._gsi: _GsiContexts | None = None

    @property
    def required(self) -> bool:
        """Whether new data connections need a handshake at all."""
        state = self._state
        if state.protection == "GSSAPI":
            return state.dcau != "N"
        return state.protection == "TLS" and state.prot != "C"

    @property
    def authenticates_peers(self) -> bool:
        return self._state.protection == "GSSAPI" and self._state.dcau != "N"

    async def secure(self, conn: DataConnection, *, initiator: bool) -> DataConnection:
        if not self.required:
            return conn
        state = self._state
        steps: HandshakeSteps
        if state.protection == "GSSAPI":
            steps = self._gsi_steps(initiator)
        else:
            ftps = self._services.ftps
            if ftps is None:
                raise DataChannelError("PROT P needs the FTPS credential, which this daemon lacks")
            steps = FtpsServerHandshake(ftps, require_reuse=self._require_reuse)
        app, rest = await handshake(conn, steps, self._executor)
        if state.prot == "C":
            conn.secure(None, app + rest)  # after the GSI exchange the stream is clear
            return conn
        engine = steps.engine if isinstance(steps, FtpsServerHandshake) else steps.tls
        records = RecordLayer(engine)
        if rest:
            records.feed(memoryview(rest))
        conn.secure(records, app)
        return conn

    def _gsi_steps(self, initiator: bool) -> DataChannelContext:
        state, session = self._state, self._session
        if session.delegated is None or session.identity is None:
            raise DataChannelError("DCAU A and S need a credential delegated at login; this session has "
                                   "none (send DCAU N, or delegate)")
        contexts = self._contexts()
        authorize = dcau_subject(state.dcau_subject or "") if state.dcau == "S" else \
            dcau_self(session.identity.dn)
        prot: Protection = "S" if state.prot == "S" else "P" if state.prot == "P" else "C"
        return DataChannelContext(contexts.initiator if initiator else contexts.acceptor,
                                  initiator=initiator, protection=prot, verify=self._services.verify,
                                  authorize=authorize)

    def _contexts(self) -> _GsiContexts:
        if self._gsi is None:
            delegated = self._session.delegated
            assert delegated is not None
            credential = delegated.credential
            self._gsi = _GsiContexts(
                acceptor=gsi_acceptor_context(credential, self._services.cert_dir, max_tls12=self._max_tls12),
                initiator=gsi_initiator_context(credential, max_tls12=self._max_tls12))
        return self._gsi
