"""FTP bounce protection: PORT, EPRT and SPOR may only name the client's own address (or a network in
port_allow), and never a privileged port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from s3dsi.config.settings import Settings
from s3dsi.server.handlers.datasetup import check_target


@dataclass
class _Ctx:
    settings: Settings


@dataclass
class _Session:
    peer: tuple[str, int]
    ctx: _Ctx = field(default_factory=lambda: _Ctx(Settings()))


def session(peer: str, port_allow: tuple[str, ...] = ()) -> Any:
    return cast(Any, _Session((peer, 40000), _Ctx(Settings(port_allow=port_allow))))


@pytest.mark.parametrize(("peer", "host", "port"), [
    ("127.0.0.1", "127.0.0.1", 50000),
    ("127.0.0.1", "::ffff:127.0.0.1", 50000),  # the same client over EPRT |2|
    ("::ffff:192.0.2.5", "192.0.2.5", 1024),
    ("2001:db8::5", "2001:db8::5", 65535),
])
def test_the_clients_own_address_is_accepted(peer: str, host: str, port: int) -> None:
    assert check_target(session(peer), host, port) is None


@pytest.mark.parametrize(("peer", "host", "port", "text"), [
    ("127.0.0.1", "127.0.0.2", 50000, "the address must be the client's own"),  # another host
    ("127.0.0.1", "192.0.2.80", 50000, "the address must be the client's own"),
    ("2001:db8::5", "2001:db8::6", 50000, "the address must be the client's own"),
    ("127.0.0.1", "127.0.0.1", 25, "ports below 1024"),  # SMTP on the client itself
    ("127.0.0.1", "127.0.0.1", 1023, "ports below 1024"),
    ("127.0.0.1", "not-an-address", 50000, "Illegal PORT command"),
])
def test_bounces_are_refused(peer: str, host: str, port: int, text: str) -> None:
    reply = check_target(session(peer), host, port)
    assert reply is not None and reply.code == 501 and text in reply.lines[0]


def test_port_allow_opens_listed_networks_only() -> None:
    s = session("127.0.0.1", port_allow=("192.0.2.0/24",))
    assert check_target(s, "192.0.2.80", 50000) is None
    refused = check_target(s, "198.51.100.1", 50000)
    assert refused is not None and refused.code == 501
    low = check_target(s, "192.0.2.80", 80)
    assert low is not None and "ports below 1024" in low.lines[0]
