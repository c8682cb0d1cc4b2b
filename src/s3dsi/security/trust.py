"""The trust store (``X509_CERT_DIR``) and chain verification: who a peer's certificate chain proves it is.

The directory holds, per CA, ``<subject hash>.0`` (the certificate, OpenSSL >= 1.0 hash),
``<hash>.signing_policy`` (required: a CA without one is refused, as GCT refuses it) and optionally
``<hash>.r0`` (its CRL). It is read afresh for every authentication, so CAs and CRLs that a
fetch-crl job updates apply at once.

Verification (``TrustStore.verify``), in order:

1. OpenSSL's verifier through pyOpenSSL ``X509StoreContext`` with ``ALLOW_PROXY_CERTS``, ``X509_STRICT``
   cleared (grid-proxy-init proxies have no authority key identifier) and no purpose check (user
   proxies carry clientAuth only, and a TLS client role would otherwise demand serverAuth). OpenSSL
   enforces validity dates, signatures and the RFC 3820 proxy naming and path-length rules; its
   error text ("certificate has expired") is what the client sees.
2. Signing policies: every certificate issued by a CA (not by an end entity or proxy) must be allowed
   by the issuing CA's policy file.
3. CRLs: when the issuing CA has a CRL it must be signed by that CA and current, and must not list
   the certificate; a CA without a CRL is tolerated (GCT behaviour).
4. A limited proxy may only sign limited proxies.

The identity is the end-entity certificate (EEC) subject in oneline form, whatever the number of
proxy levels above it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import crypto

from s3dsi.security.dn import oneline
from s3dsi.security.proxy import proxy_info
from s3dsi.security.signing_policy import SigningPolicy, SigningPolicyError

DEFAULT_CERT_DIR = "/etc/grid-security/certificates"
_CA_FILE = re.compile(r"([0-9a-f]{8})\.[0-9]+")
_CRL_FILE = re.compile(r"([0-9a-f]{8})\.r[0-9]+")
MAX_TRUST_FILE = 64 * 1024 * 1024  # CRLs of large CAs run to megabytes


class VerificationError(Exception):
    """The chain is not acceptable; the message says why (shown to the client)."""


@dataclass(frozen=True)
class PeerIdentity:
    """Who authenticated: the EEC's DN, the chain as verified (leaf first, trust anchor last)."""

    dn: str
    chain: tuple[x509.Certificate, ...]
    limited: bool
    proxy_depth: int

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def subject_hash(cert: x509.Certificate) -> str:
    """OpenSSL's ``-subject_hash`` (the ``<hash>.0`` file name) of ``cert``."""
    return f"{crypto.X509.from_cryptography(cert).subject_name_hash():08x}"


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read(MAX_TRUST_FILE + 1)
    if len(data) > MAX_TRUST_FILE:
        raise ValueError("file too large")
    return data


@dataclass
class TrustStore:
    directory: str
    cas: list[x509.Certificate] = field(default_factory=list)
    policies: dict[str, SigningPolicy | str] = field(default_factory=dict)  # hash -> policy or error
    crl_files: dict[str, list[str]] = field(default_factory=dict)  # hash -> paths, parsed when needed
    problems: list[str] = field(default_factory=list)  # unreadable files (logged by the caller)

    @classmethod
    def load(cls, directory: str) -> TrustStore:
        """Every CA, policy and CRL of ``directory``; a missing directory is an empty store."""
        store = cls(directory)
        try:
            names = sorted(os.listdir(directory))
        except OSError as err:
            store.problems.append(f"{directory}: cannot list: {err.strerror}")
            return store
        for name in names:
            path = os.path.join(directory, name)
            ca_match = _CA_FILE.fullmatch(name)
            crl_match = _CRL_FILE.fullmatch(name)
            try:
                if ca_match:
                    store.cas.extend(x509.load_pem_x509_certificates(_read(path)))
                elif crl_match:
                    store.crl_files.setdefault(crl_match.group(1), []).append(path)
                elif name.endswith(".signing_policy"):
                    key = name.removesuffix(".signing_policy")
                    try:
                        text = _read(path).decode("utf-8", "replace")
                        store.policies[key] = SigningPolicy.parse(text, path)
                    except SigningPolicyError as err:
                        store.policies[key] = str(err)
            except (OSError, ValueError) as err:
                store.problems.append(f"{path}: {err}")
        return store

    # -- pieces ------------------------------------------------------------------------------------
    def _check_policy(self, cert: x509.Certificate, issuer: x509.Certificate) -> None:
        ca_dn, subject = oneline(issuer.subject), oneline(cert.subject)
        policy = self.policies.get(subject_hash(issuer))
        if policy is None:
            raise VerificationError(f"Error with signing policy: no signing policy file for the CA {ca_dn} "
                                    f"({subject_hash(issuer)}.signing_policy in {self.directory})")
        if isinstance(policy, str):
            raise VerificationError(f"Error with signing policy: {policy}")
        if not policy.names_ca(ca_dn):
            raise VerificationError(f"Error with signing policy: the policy file does not name the CA "
                                    f"{ca_dn}")
        if not policy.allows(ca_dn, subject):
            raise VerificationError(f"Error with signing policy: the subject {subject} is not allowed by "
                                    f"the signing policy of the CA {ca_dn}")

    def _crls(self, issuer_hash: str) -> list[x509.CertificateRevocationList]:
        """The CRLs published for ``issuer_hash``, parsed now (only the CAs a chain uses cost anything)."""
        crls = []
        for path in self.crl_files.get(issuer_hash, []):
            try:
                data = _read(path)
                pem = b"-----BEGIN" in data
                crls.append(x509.load_pem_x509_crl(data) if pem else x509.load_der_x509_crl(data))
            except (OSError, ValueError) as err:
                raise VerificationError(f"Invalid CRL: {path} cannot be read: {err}") from None
        return crls

    def _check_crl(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None:
        for crl in self._crls(subject_hash(issuer)):
            if crl.issuer != issuer.subject:
                continue
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise VerificationError(f"Invalid CRL: the CRL of the CA {oneline(issuer.subject)} has an "
                                        "invalid signature")
            next_update = crl.next_update_utc
            if next_update is not None and next_update < now:
                raise VerificationError(f"Invalid CRL: the CRL of the CA {oneline(issuer.subject)} has "
                                        "expired")
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                raise VerificationError(f"certificate revoked: serial number {cert.serial_number} of "
                                        f"{oneline(cert.subject)}")

    # -- the whole check ---------------------------------------------------------------------------
    def verify(self, chain: Sequence[x509.Certificate], *, at: dt.datetime | None = None) -> PeerIdentity:
        """The identity ``chain`` (leaf first, as the peer sent it) proves; VerificationError if none."""
        if not chain:
            raise VerificationError("the peer sent no certificate")
        now = at or dt.datetime.now(dt.UTC)
        store = crypto.X509Store()
        for ca in {ca.fingerprint(hashes.SHA256()): ca for ca in self.cas}.values():  # duplicates: .0 and .1
            store.add_cert(crypto.X509.from_cryptography(ca))
        store.set_flags(crypto.X509StoreFlags.ALLOW_PROXY_CERTS)
        if at is not None:
            store.set_time(at.replace(tzinfo=None))
        context = crypto.X509StoreContext(store, crypto.X509.from_cryptography(chain[0]),
                                          chain=[crypto.X509.from_cryptography(c) for c in chain[1:]])
        try:
            context.verify_certificate()
        except crypto.X509StoreContextError as err:
            raise VerificationError(str(err)) from None
        verified = tuple(c.to_cryptography() for c in context.get_verified_chain())
        for position, cert in enumerate(verified):
            issuer = verified[min(position + 1, len(verified) - 1)]
            if proxy_info(cert) is not None or cert.issuer != issuer.subject:
                continue
            if position == len(verified) - 1 and cert.issuer == cert.subject:
                continue  # the self-signed trust anchor
            self._check_policy(cert, issuer)
            self._check_crl(cert, issuer, now)
        return identity_of(verified)


def identity_of(verified: Sequence[x509.Certificate]) -> PeerIdentity:
    """The EEC DN and proxy facts of a verified chain (leaf first)."""
    depth = 0
    eec: x509.Certificate | None = None
    for cert in verified:
        if proxy_info(cert) is None:
            eec = cert
            break
        depth += 1
    if eec is None:
        raise VerificationError("the chain has no end-entity certificate")
    limited_above = False
    limited = False
    for cert in reversed(verified[:depth]):  # from the EEC's own proxy down to the leaf
        info = proxy_info(cert)
        assert info is not None
        if limited_above and not info.limited:
            raise VerificationError("a limited proxy cannot sign a non-limited proxy")
        limited_above = limited_above or info.limited
        limited = limited or info.limited
    return PeerIdentity(oneline(eec.subject), tuple(verified), limited, depth)
