"""What the daemon needs for GSI and FTPS (``SecurityServices``, built once at start, before any
privilege drop) and what one session holds (``SessionSecurity``: its GSS context, the peer identity,
the delegated credential, removed when the session ends).

Paths come from the reference server's environment variables (``X509_USER_CERT``, ``X509_USER_KEY``,
``X509_CERT_DIR``, ``GRIDMAP``; ``$NAME value`` lines of gridftp.d set them) and options (``gridmap``,
``tls_certificate``, ``tls_key``). The trust directory and the grid-mapfile are read again at each
authentication; the host credential only at start (restart to change it).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from s3dsi.config.settings import Settings
from s3dsi.observability.logging import get_logger
from s3dsi.security.credentials import (
    Credential,
    CredentialError,
    CredentialPaths,
    DelegatedCredential,
    load_credential,
    load_host_credential,
)
from s3dsi.security.dn import oneline
from s3dsi.security.gridmap import GridMap, gridmap_path
from s3dsi.security.gss import GssAcceptor
from s3dsi.security.tlscontext import ftps_context, gsi_acceptor_context
from s3dsi.security.trust import DEFAULT_CERT_DIR, PeerIdentity, TrustStore

log = get_logger("s3dsi.security")


def effective_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment with the ``$NAME value`` lines of the configuration applied."""
    return {**(os.environ if environ is None else environ), **settings.environment}


def no_credential_lines(paths: CredentialPaths) -> tuple[str, ...]:
    """The reason AUTH GSSAPI fails without a host credential, shaped like the reference's 530 block."""
    return ("globus_xio: Server side credential failure",
            "GSS failure: ",
            "GSS Major Status: General failure",
            "GSS Minor Status Error Chain:",
            "globus_gsi_gssapi: Error with GSI credential",
            "globus_credential: Error reading host credential",
            f"The host cert could not be found in: 1) env. var. X509_USER_CERT ({paths.cert})",
            f"The host key could not be found in: 1) env. var. X509_USER_KEY ({paths.key})")


@dataclass
class SecurityServices:
    gsi: ssl.SSLContext | None = None  # acceptor context with the host credential
    gsi_unavailable: tuple[str, ...] = ("GSSAPI is not configured",)
    ftps: ssl.SSLContext | None = None
    cert_dir: str = DEFAULT_CERT_DIR
    gridmap: str = "/etc/grid-security/grid-mapfile"
    host_dn: str | None = None

    @property
    def mechanisms(self) -> tuple[str, ...]:
        """For FEAT: the AUTH mechanisms this daemon can serve."""
        return tuple(name for name, ok in (("GSSAPI", self.gsi), ("TLS", self.ftps)) if ok is not None)

    @classmethod
    def load(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> SecurityServices:
        """Read the host (and FTPS) credential; CredentialError when one exists but is unusable."""
        env = effective_environment(settings, environ)
        paths = CredentialPaths.host(env)
        cert_dir = env.get("X509_CERT_DIR") or DEFAULT_CERT_DIR
        services = cls(cert_dir=cert_dir, gridmap=gridmap_path(settings.gridmap, env),
                       gsi_unavailable=no_credential_lines(paths))
        host = load_host_credential(paths)
        max_tls12 = settings.gsi_tls_max_version == "1.2"
        if host is not None:
            try:
                services.gsi = gsi_acceptor_context(host, cert_dir, max_tls12=max_tls12)
            except ssl.SSLError as err:
                raise CredentialError(f"{paths.cert}: cannot be used for TLS: {err}") from None
            services.host_dn = oneline(host.cert.subject)
        ftps_credential: Credential | None = host
        if settings.tls_certificate:
            ftps_credential = load_credential(settings.tls_certificate,
                                              settings.tls_key or settings.tls_certificate)
        if ftps_credential is not None:
            services.ftps = ftps_context(ftps_credential)
        return services

    @classmethod
    def load_or_disabled(cls, settings: Settings) -> SecurityServices:
        """``load``, logging and disabling GSI/FTPS instead of failing (sessions of per-session children)."""
        try:
            return cls.load(settings)
        except (CredentialError, OSError) as err:
            log.error("GSI and FTPS disabled: the credential cannot be used", error=str(err))
            return cls()

    def verify(self, chain: Sequence[x509.Certificate]) -> PeerIdentity:
        """Blocking: verify a peer chain against the trust directory as it is now."""
        store = TrustStore.load(self.cert_dir)
        for problem in store.problems:
            log.warning("trust directory", problem=problem)
        return store.verify(chain)

    def map_user(self, dn: str, requested: str) -> str | None:
        """Blocking: the local account ``dn`` may log in as (grid-mapfile read now); GridMapError."""
        return GridMap.load(self.gridmap).local_user(dn, requested)


@dataclass
class SessionSecurity:
    """One session's security state; ``close`` removes the delegated credential."""

    gss: GssAcceptor | None = None
    identity: PeerIdentity | None = None
    delegated: DelegatedCredential | None = None
    mechanism: str | None = None  # "GSSAPI" | "TLS" once the control channel is protected

    def close(self) -> None:
        if self.gss is not None:
            self.gss.close()
        if self.delegated is not None:
            self.delegated.close()
