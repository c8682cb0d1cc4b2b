"""Chain verification against the test PKI's trust directory (proxies from the real grid-proxy-init)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from s3dsi.security.trust import TrustStore, VerificationError, subject_hash
from tests.support.pki import USER_DN, Pki


def chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@pytest.fixture
def store(pki: Pki) -> TrustStore:
    return TrustStore.load(str(pki.cert_dir))


@pytest.mark.parametrize(("kind", "depth", "limited"), [("rfc", 1, False), ("limited", 1, True),
                                                         ("two-level", 2, False)])
def test_proxies_of_the_mapped_user(store: TrustStore, pki: Pki, kind: str, depth: int,
                                    limited: bool) -> None:
    identity = store.verify(chain(pki.proxies[kind]))
    assert identity.dn == USER_DN
    assert identity.proxy_depth == depth
    assert identity.limited is limited
    assert identity.chain[-1] == pki.ca.cert


def test_end_entity_certificate_itself(store: TrustStore, pki: Pki) -> None:
    identity = store.verify(chain(pki.users["user"].cert))
    assert (identity.dn, identity.proxy_depth) == (USER_DN, 0)


def test_expired_proxy_gives_openssl_reason(store: TrustStore, pki: Pki) -> None:
    with pytest.raises(VerificationError, match="certificate has expired"):
        store.verify(chain(pki.proxies["expired"]))


def test_untrusted_ca(store: TrustStore, pki: Pki) -> None:
    with pytest.raises(VerificationError, match="unable to get local issuer certificate"):
        store.verify(chain(pki.users["untrusted"].proxy))


def test_ca_without_signing_policy_is_refused(store: TrustStore, pki: Pki) -> None:
    with pytest.raises(VerificationError, match="no signing policy file for the CA /C=XX/O=NoPolicy/CN="):
        store.verify(chain(pki.users["nopolicy"].proxy))


def test_subject_outside_the_signing_policy_is_refused(store: TrustStore, pki: Pki) -> None:
    with pytest.raises(VerificationError, match="/C=XX/O=Elsewhere/CN=Outside User is not allowed"):
        store.verify(chain(pki.users["outside"].proxy))


def test_revoked_certificate_is_refused(store: TrustStore, pki: Pki) -> None:
    with pytest.raises(VerificationError, match="certificate revoked"):
        store.verify(chain(pki.users["revoked"].proxy))


def _copy_dir(pki: Pki, tmp_path: Path) -> Path:
    target = tmp_path / "certificates"
    shutil.copytree(pki.cert_dir, target)
    return target


def test_ca_without_crl_is_tolerated(pki: Pki, tmp_path: Path) -> None:
    directory = _copy_dir(pki, tmp_path)
    (directory / f"{subject_hash(pki.ca.cert)}.r0").unlink()
    identity = TrustStore.load(str(directory)).verify(chain(pki.users["revoked"].proxy))
    assert identity.dn.endswith("Revoked User")


def test_expired_or_forged_crl_is_refused(pki: Pki, tmp_path: Path) -> None:
    directory = _copy_dir(pki, tmp_path)
    now = dt.datetime.now(dt.UTC)
    stale = (x509.CertificateRevocationListBuilder().issuer_name(pki.ca.cert.subject)
             .last_update(now - dt.timedelta(days=3)).next_update(now - dt.timedelta(days=1))
             .sign(pki.ca.key, hashes.SHA256()))
    crl_path = directory / f"{subject_hash(pki.ca.cert)}.r0"
    crl_path.write_bytes(stale.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(VerificationError, match="has expired"):
        TrustStore.load(str(directory)).verify(chain(pki.proxies["rfc"]))
    forged = (x509.CertificateRevocationListBuilder().issuer_name(pki.ca.cert.subject)
              .last_update(now).next_update(now + dt.timedelta(days=1)).sign(pki.host.key, hashes.SHA256()))
    crl_path.write_bytes(forged.public_bytes(serialization.Encoding.DER))
    with pytest.raises(VerificationError, match="invalid signature"):
        TrustStore.load(str(directory)).verify(chain(pki.proxies["rfc"]))


def test_policy_file_that_does_not_parse_refuses_its_ca(pki: Pki, tmp_path: Path) -> None:
    directory = _copy_dir(pki, tmp_path)
    (directory / f"{subject_hash(pki.ca.cert)}.signing_policy").write_text("pos_rights globus CA:sign\n")
    with pytest.raises(VerificationError, match="before any access_id_CA"):
        TrustStore.load(str(directory)).verify(chain(pki.proxies["rfc"]))


def test_missing_directory_trusts_nothing(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore.load(str(tmp_path / "nowhere"))
    assert store.problems
    with pytest.raises(VerificationError):
        store.verify(chain(pki.proxies["rfc"]))


def test_limited_proxy_cannot_sign_an_unlimited_one(store: TrustStore, pki: Pki) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    from s3dsi.security.credentials import parse_pem_credential  # noqa: PLC0415
    from s3dsi.security.proxy import issue_proxy  # noqa: PLC0415

    data = pki.proxies["limited"].read_bytes()
    limited = parse_pem_credential(data, data, "limited")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for flag, ok in ((True, True), (False, False)):
        cert = issue_proxy(limited.cert, limited.key, key.public_key(), limited=flag)
        if ok:
            assert store.verify([cert, *limited.certificates]).limited
        else:
            with pytest.raises(VerificationError, match="limited proxy cannot sign"):
                store.verify([cert, *limited.certificates])


def test_unreadable_crl_refuses_its_ca(pki: Pki, tmp_path: Path) -> None:
    directory = _copy_dir(pki, tmp_path)
    (directory / f"{subject_hash(pki.ca.cert)}.r0").write_bytes(b"not a CRL")
    with pytest.raises(VerificationError, match=r"Invalid CRL: .* cannot be read"):
        TrustStore.load(str(directory)).verify(chain(pki.proxies["rfc"]))


def test_duplicate_ca_files_are_fine(pki: Pki, tmp_path: Path) -> None:
    directory = _copy_dir(pki, tmp_path)
    ca_hash = subject_hash(pki.ca.cert)
    shutil.copy(directory / f"{ca_hash}.0", directory / f"{ca_hash}.1")
    assert TrustStore.load(str(directory)).verify(chain(pki.proxies["rfc"])).dn == USER_DN
