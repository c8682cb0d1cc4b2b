"""``ssl.SSLContext`` factories for GSI (control and data channels) and for FTPS.

GSI contexts follow gsi.md: TLS 1.2 or 1.3 (``max_tls12`` caps it for GCT builds of 2021-2022 whose
TLS 1.3 handling was broken), no session tickets (``OP_NO_TICKET``, ``num_tickets = 0``: a ticket
would arrive where the NUL/flag exchange expects its records), ``VERIFY_ALLOW_PROXY_CERTS`` and no
``VERIFY_X509_STRICT`` (grid-proxy-init proxies lack an authority key identifier).

* Acceptor (TLS server): requests and verifies the client's chain against ``X509_CERT_DIR`` during the
  handshake (so an untrusted or expired proxy fails with OpenSSL's message); signing policies, CRLs
  and the EEC are checked out of band afterwards (``TrustStore.verify``).
* Initiator (TLS client): ``CERT_NONE``, because OpenSSL would check the peer for the *sslserver*
  purpose and user proxies carry clientAuth only; the chain is verified out of band instead, and the
  caller must do that before trusting the connection (the data-channel context does).
"""

from __future__ import annotations

import os
import ssl

from s3dsi.security.credentials import Credential


def _common(context: ssl.SSLContext, credential: Credential, max_tls12: bool) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if max_tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_TICKET
    context.verify_flags = (context.verify_flags | ssl.VERIFY_ALLOW_PROXY_CERTS) & ~ssl.VERIFY_X509_STRICT
    credential.load_into(context)
    return context


def gsi_acceptor_context(credential: Credential, cert_dir: str, *, max_tls12: bool = False) -> ssl.SSLContext:
    """TLS server side of a GSI context (control channel, or the passive side of a data channel)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.num_tickets = 0
    context.verify_mode = ssl.CERT_REQUIRED
    if os.path.isdir(cert_dir):
        context.load_verify_locations(capath=cert_dir)
    return _common(context, credential, max_tls12)


def gsi_initiator_context(credential: Credential, *, max_tls12: bool = False) -> ssl.SSLContext:
    """TLS client side of a GSI context: the peer is verified out of band (module docstring)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return _common(context, credential, max_tls12)


def ftps_context(credential: Credential) -> ssl.SSLContext:
    """TLS server context for explicit FTPS (AUTH TLS): no client certificate, TLS 1.2 or newer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    credential.load_into(context)
    return context
