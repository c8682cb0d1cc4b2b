"""The few DER pieces the GSI code reads and writes by hand: TLV reading, OIDs, ProxyCertInfo.

``cryptography`` parses certificates, but it hands out decoded name strings (OpenSSL prints the encoded
bytes) and keeps the RFC 3820 ProxyCertInfo extension opaque; these helpers cover exactly that.
"""

from __future__ import annotations

SEQUENCE, SET, OID, INTEGER, OCTET_STRING = 0x30, 0x31, 0x06, 0x02, 0x04


class DERError(ValueError):
    """The encoding could not be read."""


def tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, position after) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise DERError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DERError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError("truncated DER")
    return tag, data[pos:end], end


def elements(content: bytes) -> list[tuple[int, bytes]]:
    """(tag, content) of every element inside a constructed value."""
    out = []
    pos = 0
    while pos < len(content):
        tag, value, pos = tlv(content, pos)
        out.append((tag, value))
    return out


def oid_text(encoded: bytes) -> str:
    """Dotted text of a DER OBJECT IDENTIFIER's content."""
    if not encoded or encoded[-1] & 0x80:
        raise DERError("bad OID")
    arcs: list[int] = []
    value = 0
    for byte in encoded:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def encode(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def encode_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return encode(OID, bytes(body))


def encode_integer(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)
    return encode(INTEGER, value.to_bytes(size, "big", signed=True))


def proxy_cert_info(language: str, path_length: int | None = None) -> bytes:
    """DER of RFC 3820 ProxyCertInfo: SEQUENCE { pCPathLenConstraint?, SEQUENCE { policyLanguage } }."""
    policy = encode(SEQUENCE, encode_oid(language))
    head = encode_integer(path_length) if path_length is not None else b""
    return encode(SEQUENCE, head + policy)


def proxy_policy_language(value: bytes) -> str:
    """The policy language OID of a DER ProxyCertInfo value."""
    tag, content, _ = tlv(value)
    if tag != SEQUENCE:
        raise DERError("ProxyCertInfo is a SEQUENCE")
    for item_tag, item in elements(content):
        if item_tag == SEQUENCE:
            inner = elements(item)
            if not inner or inner[0][0] != OID:
                raise DERError("ProxyPolicy starts with its language OID")
            return oid_text(inner[0][1])
    raise DERError("ProxyCertInfo has no ProxyPolicy")
