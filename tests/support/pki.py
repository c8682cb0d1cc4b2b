"""A throw-away grid PKI for tests (about a second to build), nothing under /etc/grid-security.

``build_pki(dir)`` makes, in ``dir``:

* ``certificates/``: the test CA (``<hash>.0``, ``<hash>.signing_policy`` allowing ``/C=XX/O=GSITest/*``,
  ``<hash>.r0`` revoking one user) and a CA without a signing policy file;
* ``hostcert.pem``/``hostkey.pem`` (SAN DNS:localhost, IP:127.0.0.1; key 0600);
* users, each with its certificate, key and an RFC 3820 proxy: ``user`` (mapped in the grid-mapfile),
  ``unmapped``, ``outside`` (issued by the test CA outside its signing policy), ``nopolicy`` (issued by
  the CA without a policy file), ``untrusted`` (issued by a CA that is not in the directory),
  ``revoked`` (listed in the CRL);
* proxies of ``user`` made by the real ``grid-proxy-init``: RFC 3820, limited, and a proxy of that proxy;
  plus an expired one made with cryptography (grid-proxy-init cannot);
* ``grid-mapfile`` mapping ``user`` to ``alice,bob``.

Clients and servers get the paths through X509_CERT_DIR, X509_USER_PROXY, X509_USER_CERT/KEY, GRIDMAP.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from s3dsi.security.credentials import Credential
from s3dsi.security.proxy import issue_proxy
from s3dsi.security.trust import subject_hash
from tests.support.programs import need

CA_DN = "/C=XX/O=GSITest/CN=GSITest CA"
USER_DN = "/C=XX/O=GSITest/OU=People/CN=Test User"
MAPPED_USERS = ("alice", "bob")


def _name(oneline: str) -> x509.Name:
    oids = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
            "CN": NameOID.COMMON_NAME, "DC": NameOID.DOMAIN_COMPONENT}
    parts = [p.split("=", 1) for p in oneline.strip("/").split("/")]
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in parts])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


NOW = dt.datetime.now(dt.UTC)


def _usage(**flags: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


def _ca(dn: str) -> Credential:
    key = _key()
    name = _name(dn)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Credential(cert, key)


def _issue(ca: Credential, dn: str, *, host: bool = False) -> Credential:
    key = _key()
    builder = (x509.CertificateBuilder().subject_name(_name(dn)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=20))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_usage(digital_signature=True, key_encipherment=True,
                                     data_encipherment=not host), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),  # type: ignore[arg-type]
                              critical=False))
    if host:
        import ipaddress  # noqa: PLC0415
        both = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
        builder = (builder.add_extension(both, critical=False)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False))
    else:
        client = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        builder = builder.add_extension(client, critical=False)
    return Credential(builder.sign(ca.key, hashes.SHA256()), key)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


@dataclass
class User:
    name: str
    dn: str
    cert: Path
    key: Path
    proxy: Path
    credential: Credential


@dataclass
class Pki:
    root: Path
    cert_dir: Path
    host_cert: Path
    host_key: Path
    gridmap: Path
    ca: Credential
    host: Credential
    users: dict[str, User] = field(default_factory=dict)
    proxies: dict[str, Path] = field(default_factory=dict)  # kinds of proxies of the mapped user

    def client_env(self, proxy: Path | None = None) -> dict[str, str]:
        """Environment for a GSI client (globus-url-copy, gfal2) using ``proxy`` (default: user's)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("X509_")}
        env.update(X509_CERT_DIR=str(self.cert_dir), X509_USER_PROXY=str(proxy or self.users["user"].proxy))
        return env

    def server_env(self) -> dict[str, str]:
        return {"X509_CERT_DIR": str(self.cert_dir), "X509_USER_CERT": str(self.host_cert),
                "X509_USER_KEY": str(self.host_key), "GRIDMAP": str(self.gridmap)}


def grid_proxy_init(pki: Pki, cert: Path, key: Path, out: Path, *extra: str) -> Path:
    program = need("grid-proxy-init")
    env = {k: v for k, v in os.environ.items() if not k.startswith("X509_")}
    env["X509_CERT_DIR"] = str(pki.cert_dir)
    proc = subprocess.run([program, "-q", "-rfc", *extra, "-cert", str(cert), "-key", str(key), "-certdir",
                           str(pki.cert_dir), "-out", str(out)], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"grid-proxy-init failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return out


def _proxy_file(path: Path, issuer: Credential, *, chain: tuple[x509.Certificate, ...],
                not_after: dt.datetime | None = None, not_before: dt.datetime | None = None) -> Path:
    key = _key()
    cert = issue_proxy(issuer.cert, issuer.key, key.public_key(), not_after=not_after, not_before=not_before)
    return _write(path, Credential(cert, key, (issuer.cert, *chain)).proxy_file_pem(), 0o600)


def build_pki(root: Path) -> Pki:
    root.mkdir(parents=True, exist_ok=True)
    certs = root / "certificates"
    certs.mkdir(exist_ok=True)
    ca = _ca(CA_DN)
    ca_hash = subject_hash(ca.cert)
    _write(certs / f"{ca_hash}.0", _pem(ca.cert))
    _write(certs / f"{ca_hash}.signing_policy",
           f"# EACL for the test CA\naccess_id_CA X509 '{CA_DN}'\npos_rights globus CA:sign\n"
           "cond_subjects globus '\"/C=XX/O=GSITest/*\"'\n".encode())
    nopolicy_ca = _ca("/C=XX/O=NoPolicy/CN=No Policy CA")
    _write(certs / f"{subject_hash(nopolicy_ca.cert)}.0", _pem(nopolicy_ca.cert))
    other_ca = _ca("/C=XX/O=Other/CN=Untrusted CA")  # deliberately not in the directory
    _write(root / "untrusted-ca.pem", _pem(other_ca.cert))

    host = _issue(ca, "/C=XX/O=GSITest/CN=localhost", host=True)
    host_cert = _write(root / "hostcert.pem", _pem(host.cert))
    host_key = _write(root / "hostkey.pem", host.key_pem(), 0o600)
    gridmap = _write(root / "grid-mapfile",
                     f'# test grid-mapfile\n"{USER_DN}" {",".join(MAPPED_USERS)}\n'.encode())
    pki = Pki(root, certs, host_cert, host_key, gridmap, ca, host)

    people = {"user": (ca, USER_DN), "unmapped": (ca, "/C=XX/O=GSITest/OU=People/CN=Unmapped User"),
              "outside": (ca, "/C=XX/O=Elsewhere/CN=Outside User"),
              "nopolicy": (nopolicy_ca, "/C=XX/O=NoPolicy/CN=No Policy User"),
              "untrusted": (other_ca, "/C=XX/O=Other/CN=Untrusted User"),
              "revoked": (ca, "/C=XX/O=GSITest/OU=People/CN=Revoked User")}
    for name, (issuer, dn) in people.items():
        cred = _issue(issuer, dn)
        cert = _write(root / f"{name}cert.pem", _pem(cred.cert))
        key = _write(root / f"{name}key.pem", cred.key_pem(), 0o600)
        proxy = root / f"{name}-proxy.pem"
        if name == "user":
            grid_proxy_init(pki, cert, key, proxy)
        else:
            _proxy_file(proxy, cred, chain=())
        pki.users[name] = User(name, dn, cert, key, proxy, cred)

    serial = pki.users["revoked"].credential.cert.serial_number
    revoked = (x509.RevokedCertificateBuilder().serial_number(serial)
               .revocation_date(NOW - dt.timedelta(hours=1)).build())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
           .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + dt.timedelta(days=7))
           .add_revoked_certificate(revoked).sign(ca.key, hashes.SHA256()))
    _write(certs / f"{ca_hash}.r0", crl.public_bytes(serialization.Encoding.PEM))

    user = pki.users["user"]
    pki.proxies["rfc"] = user.proxy
    pki.proxies["limited"] = grid_proxy_init(pki, user.cert, user.key, root / "user-limited.pem", "-limited")
    pki.proxies["two-level"] = grid_proxy_init(pki, user.proxy, user.proxy, root / "user-2level.pem")
    pki.proxies["expired"] = _proxy_file(root / "user-expired.pem", user.credential, chain=(),
                                         not_before=NOW - dt.timedelta(hours=3),
                                         not_after=NOW - dt.timedelta(hours=1))
    return pki
