"""IP address comparisons for data channels: one canonical form (IPv4-mapped IPv6 is IPv4, no zone
index), so the control peer, a data connection's peer and PORT targets compare equal when they are
the same host."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def canonical_ip(host: str) -> IPAddress | None:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def same_host_or_allowed(host: str, own: str, networks: Iterable[str]) -> bool:
    """``host`` is the client's own address ``own``, or lies in one of ``networks``."""
    addr = canonical_ip(host)
    if addr is None:
        return False
    if addr == canonical_ip(own):
        return True
    return any(addr in ipaddress.ip_network(net, strict=False) for net in networks)
