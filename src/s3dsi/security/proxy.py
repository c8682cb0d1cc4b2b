"""RFC 3820 proxy certificates: recognising them (and whether they are limited) and issuing them.

Issuing serves delegation (the initiator signs the acceptor's request) and the test PKI (an expired
proxy, which grid-proxy-init cannot make). A proxy's subject is its issuer's subject plus one
``CN=<serial>``; it carries a critical ProxyCertInfo extension naming its policy language.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from s3dsi.security import der

PROXY_CERT_INFO = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
DRAFT_PROXY_CERT_INFO = x509.ObjectIdentifier("1.3.6.1.4.1.3536.1.222")
INHERIT_ALL = "1.3.6.1.5.5.7.21.1"
INDEPENDENT = "1.3.6.1.5.5.7.21.2"
LIMITED = "1.3.6.1.4.1.3536.1.1.1.9"


@dataclass(frozen=True)
class ProxyInfo:
    language: str

    @property
    def limited(self) -> bool:
        return self.language == LIMITED


def proxy_info(cert: x509.Certificate) -> ProxyInfo | None:
    """The ProxyCertInfo of ``cert``; None for an ordinary (end-entity or CA) certificate."""
    for oid in (PROXY_CERT_INFO, DRAFT_PROXY_CERT_INFO):
        try:
            ext = cert.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            continue
        value = ext.value
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()
        try:
            return ProxyInfo(der.proxy_policy_language(raw))
        except der.DERError:
            return ProxyInfo("")
    return None


def key_bits(key: PublicKeyTypes) -> int:
    """The size a delegated key should have to match ``key`` (RSA modulus; 2048 otherwise)."""
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else 2048


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key (CPU work: tens of milliseconds at 2048 bits; run it off the event loop)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=max(bits, 2048))


def issue_proxy(issuer: x509.Certificate, issuer_key: CertificateIssuerPrivateKeyTypes,
                public_key: CertificatePublicKeyTypes, *, limited: bool = False,
                lifetime: dt.timedelta = dt.timedelta(hours=12), not_after: dt.datetime | None = None,
                not_before: dt.datetime | None = None, path_length: int | None = None) -> x509.Certificate:
    """A proxy certificate for ``public_key`` signed by ``issuer``; never outlives the issuer."""
    serial = secrets.randbits(31) | 1
    now = dt.datetime.now(dt.UTC)
    start = not_before or now - dt.timedelta(minutes=5)
    end = min(not_after or start + lifetime, issuer.not_valid_after_utc)
    serial_cn = x509.NameAttribute(NameOID.COMMON_NAME, str(serial))
    subject = x509.Name([*issuer.subject.rdns, x509.RelativeDistinguishedName([serial_cn])])
    language = LIMITED if limited else INHERIT_ALL
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject)
               .public_key(public_key).serial_number(serial).not_valid_before(start).not_valid_after(end)
               .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO,
                                                         der.proxy_cert_info(language, path_length)),
                              critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=True, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True))
    try:
        eku = issuer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        builder = builder.add_extension(eku, critical=False)
    except x509.ExtensionNotFound:
        client_auth = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        builder = builder.add_extension(client_auth, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())
