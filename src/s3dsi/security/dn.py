"""Distinguished names in OpenSSL's ``X509_NAME_oneline`` form, the form grid-mapfiles and GCT use.

``/C=XX/O=GSITest/OU=People/CN=Test User``: most significant RDN first (the order of the DER
encoding), each attribute as ``/<OpenSSL short name>=<value>``; further attributes of a multi-valued RDN
follow with ``+`` instead of ``/`` (OpenSSL 3). Values are printed from their encoded bytes, as
OpenSSL 3 does: bytes outside
printable ASCII become ``\\xHH`` (upper-case hex, so UTF-8 ``ü`` is ``\\xC3\\xBC``), ``/`` and ``+``
are escaped with a backslash; a GeneralString made of 4-byte characters whose first three bytes are
zero prints only the fourth. Attribute types OpenSSL has no short name for print as dotted OIDs.

We read the DER ourselves (``security/der.py``) because ``cryptography`` hands out decoded strings, not the
bytes OpenSSL prints.
"""

from __future__ import annotations

from cryptography import x509

from s3dsi.security.der import OID, SEQUENCE, SET, DERError, elements, oid_text, tlv

# OpenSSL's short names (OBJ_nid2sn) for the attribute types that occur in certificate names.
SHORT_NAMES: dict[str, str] = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
    "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "title",
    "2.5.4.13": "description", "2.5.4.15": "businessCategory", "2.5.4.17": "postalCode",
    "2.5.4.20": "telephoneNumber", "2.5.4.41": "name", "2.5.4.42": "GN", "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier", "2.5.4.45": "x500UniqueIdentifier", "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym", "2.5.4.72": "role", "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress", "1.2.840.113549.1.9.2": "unstructuredName",
    "1.2.840.113549.1.9.8": "unstructuredAddress", "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC", "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST", "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}

_GENERAL_STRING = 0x1B


def _value_text(tag: int, raw: bytes) -> str:
    keep = [True, True, True, True]
    if tag == _GENERAL_STRING and len(raw) % 4 == 0:
        nonzero = [False] * 4
        for i, byte in enumerate(raw):
            if byte:
                nonzero[i & 3] = True
        if not (nonzero[0] or nonzero[1] or nonzero[2]):
            keep = [False, False, False, True]
    out = []
    for i, byte in enumerate(raw):
        if not keep[i & 3]:
            continue
        if byte < 0x20 or byte > 0x7E:
            out.append(f"\\x{byte:02X}")
        elif byte in (0x2F, 0x2B):  # '/' and '+'
            out.append("\\" + chr(byte))
        else:
            out.append(chr(byte))
    return "".join(out)


def oneline_der(name_der: bytes) -> str:
    """``X509_NAME_oneline`` of a DER-encoded Name."""
    tag, content, end = tlv(name_der, 0)
    if tag != SEQUENCE or end != len(name_der):
        raise DERError("a Name is a SEQUENCE")
    parts: list[str] = []
    for set_tag, rdn in elements(content):
        if set_tag != SET:
            raise DERError("an RDN is a SET")
        for member, (seq_tag, atv) in enumerate(elements(rdn)):
            items = elements(atv)
            if seq_tag != SEQUENCE or len(items) != 2 or items[0][0] != OID:
                raise DERError("an attribute is SEQUENCE { OID, value }")
            oid = oid_text(items[0][1])
            separator = "+" if member else "/"
            parts.append(f"{separator}{SHORT_NAMES.get(oid, oid)}={_value_text(items[1][0], items[1][1])}")
    return "".join(parts)


def oneline(name: x509.Name) -> str:
    """``X509_NAME_oneline`` of a cryptography Name: ``/C=XX/O=GSITest/CN=Test User``."""
    return oneline_der(name.public_bytes())
