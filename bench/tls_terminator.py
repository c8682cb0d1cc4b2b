"""HTTPS in front of the bench's S3 gateway: haproxy terminating TLS (real S3 is HTTPS), so that the
daemon, s3transfer and s5cmd all pay TLS on the S3 side as they would against AWS.

A throwaway self-signed certificate for 127.0.0.1 (made with ``cryptography``) is written next to the
haproxy configuration; clients trust it through ``ca_bundle`` (the daemon), ``verify=`` (s3transfer)
and ``SSL_CERT_FILE`` (s5cmd, a Go program). Needs Debian's ``haproxy`` (scripts/bench-tools).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.support.processes import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, certificate+key) PEM files for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, combined = directory / "cert.pem", directory / "combined.pem"
    cert_path.write_bytes(cert_pem)
    combined.write_bytes(cert_pem + key_pem)
    combined.chmod(0o600)
    return cert_path, combined


@dataclass
class Terminator:
    process: subprocess.Popen[bytes]
    endpoint: str
    ca_file: Path

    def stop(self) -> None:
        stop_process(self.process)


def start_haproxy(directory: Path, upstream: str) -> Terminator:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        raise SystemExit("haproxy not found: scripts/bench-tools installs it (Debian haproxy)")
    cert, combined = self_signed(directory)
    host, port = upstream.removeprefix("http://").rsplit(":", 1)
    listen = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(f"""global
    maxconn 4096
    nbthread 1
defaults
    mode tcp
    timeout connect 10s
    timeout client 600s
    timeout server 600s
frontend s3
    bind 127.0.0.1:{listen} ssl crt {combined}
    default_backend gateway
backend gateway
    server gw {host}:{port}
""")
    log = (directory / "haproxy.log").open("wb")
    process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", listen), timeout=1).close()
            return Terminator(process, f"https://127.0.0.1:{listen}", cert)
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    raise SystemExit(f"haproxy did not start: {(directory / 'haproxy.log').read_text()[-2000:]}")
