"""Credentials (certificate + key + chain): the host credential, FTPS certificates, delegated proxies.

Host credential: ``X509_USER_CERT``/``X509_USER_KEY`` (defaults /etc/grid-security/hostcert.pem and
hostkey.pem). The key must be mode 0600 or 0400 and owned by the user reading it (the daemon at
start, before any privilege drop), as GCT requires; otherwise the daemon refuses to start. Both files
missing means "no GSI" (``AUTH GSSAPI`` then answers as the reference does without a credential).

Python's ``ssl`` loads certificates and keys only from files, so credentials held in memory are
written to a private (0700) temporary directory: for a moment when loading into a context, and for
the whole session for a delegated credential, which later data-channel contexts load again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from s3dsi.identity.securefile import FilePolicy, read_checked

DEFAULT_HOST_CERT = "/etc/grid-security/hostcert.pem"
DEFAULT_HOST_KEY = "/etc/grid-security/hostkey.pem"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CredentialError(Exception):
    """A credential that exists but cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Credential:
    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()  # issuers after ``cert``, leaf-most first

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return (self.cert, *self.chain)

    def cert_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.certificates)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def proxy_file_pem(self) -> bytes:
        """The proxy file layout (``X509_USER_PROXY``): certificate, key, then the chain."""
        return (self.cert.public_bytes(serialization.Encoding.PEM) + self.key_pem()
                + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain))

    def load_into(self, context: ssl.SSLContext) -> None:
        """``context.load_cert_chain`` from memory (through files that exist only meanwhile)."""
        with private_dir() as directory:
            path = os.path.join(directory, "cred.pem")
            _write_private(path, self.proxy_file_pem())
            context.load_cert_chain(path)


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@contextlib.contextmanager
def private_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="s3dsi-cred-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def parse_pem_credential(cert_pem: bytes, key_pem: bytes, source: str) -> Credential:
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CredentialError(f"{source}: no PEM certificate could be read") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise CredentialError(f"{source}: the private key cannot be read (encrypted keys are not "
                              f"supported): {err}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CredentialError(f"{source}: only RSA and EC keys are supported")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != certs[0].public_key().public_bytes(*spki):
        raise CredentialError(f"{source}: the key does not belong to the certificate")
    return Credential(certs[0], key, tuple(certs[1:]))


def load_credential(cert_path: str, key_path: str) -> Credential:
    """Read a certificate file and its key (mode 0600/0400, owned by us); CredentialError otherwise."""
    try:
        with open(cert_path, "rb") as handle:
            cert_pem = handle.read(1024 * 1024)
    except OSError as err:
        raise CredentialError(f"{cert_path}: cannot read the certificate: {err.strerror}") from None
    key_pem, _ = read_checked(key_path, FilePolicy(frozenset({os.geteuid()})), CredentialError)
    return parse_pem_credential(cert_pem, key_pem, f"{cert_path} / {key_path}")


@dataclass(frozen=True)
class CredentialPaths:
    cert: str
    key: str

    @classmethod
    def host(cls, environ: Mapping[str, str]) -> CredentialPaths:
        return cls(environ.get("X509_USER_CERT") or DEFAULT_HOST_CERT,
                   environ.get("X509_USER_KEY") or DEFAULT_HOST_KEY)

    def missing(self) -> bool:
        return not os.path.lexists(self.cert) and not os.path.lexists(self.key)


def load_host_credential(paths: CredentialPaths) -> Credential | None:
    """The host credential, None when neither file exists; CredentialError when it is unusable."""
    if paths.missing():
        return None
    return load_credential(paths.cert, paths.key)


class DelegatedCredential:
    """A credential the client delegated, as a proxy file in a 0700 directory until ``close()``.

    The file is written on first use of ``path``, not at delegation: a per-session process delegates
    while still root and drops to the mapped user at login, and the file must belong to whoever
    uses and removes it (data channels only exist after login).
    """

    def __init__(self, credential: Credential) -> None:
        self.credential = credential
        self.directory: str | None = None
        self._path: str | None = None
        self._closed = False

    @property
    def path(self) -> str:
        if self._closed:
            raise RuntimeError("the delegated credential was removed with its session")
        if self._path is None:
            self.directory = tempfile.mkdtemp(prefix="s3dsi-deleg-")
            path = os.path.join(self.directory, "x509up")
            _write_private(path, self.credential.proxy_file_pem())
            self._path = path
        return self._path

    def close(self) -> None:
        self._closed = True
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None
        self._path = None
