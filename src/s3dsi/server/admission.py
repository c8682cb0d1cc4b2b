"""Who may open a control connection, and how many connections each may hold.

Asked once per accepted connection, before anything is sent or forked: by the single-process daemon
before it creates a Session, and by the per-session parent before it forks a child. In this order:

1. ``allow_from`` / ``deny_from`` (the reference server's rule): with an allow list, only addresses
   matching one of its entries are let in; then any address matching a deny entry is refused. A
   refused client gets no reply at all, as from the reference.
2. ``connections_disabled``, or ``connections_max 0``: ``422`` with ``offline_msg``.
3. ``connections_max`` (every connection, logged in or not): ``421``.
4. ``connections_max_per_address``: ``421``. An address is an IPv4 address or an IPv6 /64, since one
   IPv6 host usually holds a whole /64 and a /128 limit would not limit it.

Entries of the address lists are networks (``192.0.2.0/24``, ``2001:db8::/48``) or, as the reference
server reads them, textual prefixes of the address: ``192.168.1.`` matches 192.168.1.45. The reference
compares against ``1.2.3.4:port`` and ``[2001:db8::1]:port``, so bracketed IPv6 entries work as
they did there.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from s3dsi.config.settings import Settings
from s3dsi.protocol.addresses import canonical_ip

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPV6_BLOCK = 64

OFFLINE = "Service temporarily offline. Closing control connection."  # the reference server's text
TOO_MANY = b"421 Service not available: too many connections.\r\n"
TOO_MANY_FROM_YOU = b"421 Service not available: too many connections from your address.\r\n"


def address_block(host: str) -> str:
    """What per-address limits count: the IPv4 address, or the IPv6 /64 the address lies in."""
    address = canonical_ip(host)
    if address is None:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_BLOCK), strict=False))
    return str(address)


def _texts(address: IPAddress) -> tuple[str, ...]:
    """The forms a reference-server fragment may have been written against."""
    text = str(address)
    if isinstance(address, ipaddress.IPv4Address):
        return (f"{text}:",)
    return (f"[{text}]:", f"{text}")


@dataclass(frozen=True)
class AddressList:
    """One ``allow_from`` or ``deny_from`` list (entries already validated by the configuration)."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    fragments: tuple[str, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> AddressList:
        networks = []
        fragments = []
        for entry in entries:
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
            else:
                fragments.append(entry.lower())
        return cls(tuple(networks), tuple(fragments))

    def __bool__(self) -> bool:
        return bool(self.networks or self.fragments)

    def matches(self, host: str) -> bool:
        address = canonical_ip(host)
        if address is None:
            return False
        if any(address in network for network in self.networks):
            return True
        texts = _texts(address)
        return any(text.startswith(fragment) for fragment in self.fragments for text in texts)


@dataclass(frozen=True)
class Refusal:
    """Why a connection is not served, and what (if anything) it is told before it is closed."""

    reason: str  # "denied", "offline", "total", "per_address": for the log
    reply: bytes | None  # None: close without a word


class Admission:
    """Decides at accept and counts the connections it let in, per address block."""

    def __init__(self, settings: Settings) -> None:
        self.total = 0
        self._per_block: Counter[str] = Counter()
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        """The rules in force from now on (start, SIGHUP); connections already counted stay counted."""
        self.allow = AddressList.of(settings.allow_from) if settings.allow_from is not None else None
        self.deny = AddressList.of(settings.deny_from)
        self.offline = settings.connections_disabled or settings.connections_max == 0
        text = settings.offline_msg or OFFLINE
        self.offline_reply = f"422 {' '.join(text.splitlines())}\r\n".encode("utf-8", "replace")
        self.limit = settings.connections_max
        self.per_address = settings.connections_max_per_address

    def allowed(self, host: str) -> bool:
        """allow_from / deny_from alone."""
        if self.allow is not None and not self.allow.matches(host):
            return False
        return not self.deny.matches(host)

    def check(self, host: str) -> Refusal | None:
        if not self.allowed(host):
            return Refusal("denied", None)
        if self.offline:
            return Refusal("offline", self.offline_reply)
        if self.limit is not None and self.total >= self.limit:
            return Refusal("total", TOO_MANY)
        if self.per_address is not None and self._per_block[address_block(host)] >= self.per_address:
            return Refusal("per_address", TOO_MANY_FROM_YOU)
        return None

    def admit(self, host: str) -> Refusal | None:
        """``check``, and when the connection is let in, count it until ``release(host)``."""
        refusal = self.check(host)
        if refusal is None:
            self.total += 1
            self._per_block[address_block(host)] += 1
        return refusal

    def release(self, host: str) -> None:
        block = address_block(host)
        self.total = max(0, self.total - 1)
        self._per_block[block] -= 1
        if self._per_block[block] <= 0:
            del self._per_block[block]

    def count_from(self, host: str) -> int:
        return self._per_block[address_block(host)]
