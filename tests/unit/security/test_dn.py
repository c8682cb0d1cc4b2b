"""DN oneline formatting checked against the openssl command (OpenSSL's own X509_NAME_oneline)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from s3dsi.security.dn import oneline

KEY = ec.generate_private_key(ec.SECP256R1())


def _cert(name: x509.Name) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(KEY, hashes.SHA256()))


def _openssl_subject(cert: x509.Certificate, tmp_path: Path) -> str:
    path = tmp_path / "c.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-subject", "-nameopt", "compat"],
                         capture_output=True, check=True).stdout
    return out.decode("latin-1").strip().removeprefix("subject=")


A = x509.NameAttribute
NAMES = {
    "plain": x509.Name([A(NameOID.COUNTRY_NAME, "XX"), A(NameOID.ORGANIZATION_NAME, "GSITest"),
                        A(NameOID.ORGANIZATIONAL_UNIT_NAME, "People"), A(NameOID.COMMON_NAME, "Test User")]),
    "dc-uid-email": x509.Name([A(NameOID.DOMAIN_COMPONENT, "org"), A(NameOID.DOMAIN_COMPONENT, "example"),
                               A(NameOID.USER_ID, "jdoe"), A(NameOID.COMMON_NAME, "John Doe"),
                               A(NameOID.EMAIL_ADDRESS, "john@example.org")]),
    "non-ascii": x509.Name([A(NameOID.COUNTRY_NAME, "DE"), A(NameOID.ORGANIZATION_NAME, "Universität"),
                            A(NameOID.COMMON_NAME, "Jürgen Müller 山田")]),
    "slash-equals-plus": x509.Name([A(NameOID.ORGANIZATION_NAME, "A/B=C"),
                                    A(NameOID.COMMON_NAME, "x+y=z/w")]),
    "control-and-bmp": x509.Name([A(NameOID.ORGANIZATION_NAME, "tab\there"),
                                  A(NameOID.COMMON_NAME, "Wide é", _type=_ASN1Type.BMPString)]),
    "multi-valued-rdn": x509.Name([x509.RelativeDistinguishedName([A(NameOID.COMMON_NAME, "a"),
                                                                   A(NameOID.USER_ID, "b")])]),
    "serial-title-unknown-oid": x509.Name([A(NameOID.SERIAL_NUMBER, "123"), A(NameOID.TITLE, "Dr"),
                                           A(x509.ObjectIdentifier("1.2.3.4.5"), "odd")]),
}


@pytest.mark.parametrize("label", list(NAMES))
def test_oneline_equals_openssl(label: str, tmp_path: Path) -> None:
    cert = _cert(NAMES[label])
    assert oneline(cert.subject) == _openssl_subject(cert, tmp_path)


def test_known_forms() -> None:
    assert oneline(NAMES["plain"]) == "/C=XX/O=GSITest/OU=People/CN=Test User"
    assert oneline(NAMES["dc-uid-email"]) == \
        "/DC=org/DC=example/UID=jdoe/CN=John Doe/emailAddress=john@example.org"
    assert oneline(NAMES["non-ascii"]).endswith(
        "/CN=J\\xC3\\xBCrgen M\\xC3\\xBCller \\xE5\\xB1\\xB1\\xE7\\x94\\xB0")
    assert oneline(NAMES["slash-equals-plus"]) == "/O=A\\/B=C/CN=x\\+y=z\\/w"
