"""Connection admission: the reference server's allow_from/deny_from rule and the connection limits."""

from __future__ import annotations

import dataclasses

import pytest

from s3dsi.config.settings import Settings
from s3dsi.server.admission import (
    TOO_MANY,
    TOO_MANY_FROM_YOU,
    AddressList,
    Admission,
    address_block,
)


def test_address_blocks_are_ipv4_addresses_and_ipv6_slash_64s() -> None:
    assert address_block("192.0.2.7") == "192.0.2.7"
    assert address_block("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_block("2001:db8:1:2::1") == address_block("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_block("2001:db8:1:3::1") != address_block("2001:db8:1:2::1")
    assert address_block("fe80::1%eth0") == "fe80::/64"


@pytest.mark.parametrize(("entries", "host", "matches"), [
    (["192.168.1."], "192.168.1.45", True),  # the reference's own example
    (["192.168.1."], "192.168.10.45", False),
    (["192.168.1"], "192.168.10.45", True),  # a textual prefix, as there
    (["10.0.0.1"], "10.0.0.1", True),
    (["10.0.0.1"], "10.0.0.17", True),  # ditto: hence the check-config warning
    (["10.0.0.1/32"], "10.0.0.17", False),
    (["10.0.0.0/8"], "10.200.3.4", True),
    (["10.0.0.0/8"], "::ffff:10.200.3.4", True),  # IPv4-mapped clients of a dual-stack listener
    (["[2001:db8:"], "2001:db8::5", True),  # the reference matched "[addr]:port"
    (["[2001:db8::5]"], "2001:db8::5", True),
    (["[2001:db8::5]"], "2001:db8::51", False),
    (["2001:db8:"], "2001:db8::5", True),
    (["2001:db8::/32"], "2001:db8:ffff::1", True),
    (["2001:db8::/32"], "2001:db9::1", False),
    (["192.168.1.", "127."], "127.0.0.2", True),
    ([], "127.0.0.1", False),
])
def test_address_lists(entries: list[str], host: str, matches: bool) -> None:
    assert AddressList.of(entries).matches(host) is matches


def admission(**overrides: object) -> Admission:
    return Admission(dataclasses.replace(Settings(), **overrides))  # type: ignore[arg-type]


def test_allow_from_then_deny_from_and_no_reply_for_refused_addresses() -> None:
    gate = admission(allow_from=("127.0.0.", "10.0.0.0/8"), deny_from=("127.0.0.3",))
    assert gate.check("127.0.0.1") is None
    assert gate.check("10.1.2.3") is None
    for host in ("127.0.0.3", "192.0.2.1", "::1"):
        refusal = gate.check(host)
        assert refusal is not None and refusal.reason == "denied" and refusal.reply is None, host
    only_deny = admission(deny_from=("192.0.2.",))
    assert only_deny.check("198.51.100.1") is None
    assert only_deny.check("192.0.2.9") is not None


def test_offline() -> None:
    refusal = admission(connections_disabled=True).check("127.0.0.1")
    assert refusal is not None
    assert refusal.reply == b"422 Service temporarily offline. Closing control connection.\r\n"
    refusal = admission(connections_max=0, offline_msg="Down for maintenance\nuntil noon").check("127.0.0.1")
    assert refusal is not None and refusal.reply == b"422 Down for maintenance until noon\r\n"


def test_total_and_per_address_limits_count_until_released() -> None:
    gate = admission(connections_max=4, connections_max_per_address=2)
    assert gate.admit("127.0.0.1") is None
    assert gate.admit("127.0.0.1") is None
    refusal = gate.admit("127.0.0.1")
    assert refusal is not None and refusal.reply == TOO_MANY_FROM_YOU
    assert gate.admit("2001:db8::1") is None
    refusal = gate.admit("2001:db8::2")  # another /128 of the same /64
    assert refusal is None
    refusal = gate.admit("2001:db8::3")
    assert refusal is not None and refusal.reason == "total" and refusal.reply == TOO_MANY
    gate.release("2001:db8::1")
    assert gate.admit("127.0.0.9") is None
    assert gate.admit("2001:db8::4") is not None  # total again
    gate.release("127.0.0.1")
    gate.release("127.0.0.9")
    assert gate.admit("2001:db8::5") is None  # the /64 holds two again
    refusal = gate.admit("2001:db8::6")
    assert refusal is not None and refusal.reason == "per_address"
    assert gate.count_from("127.0.0.1") == 1


def test_unlimited_and_reconfigured() -> None:
    gate = admission(connections_max=None, connections_max_per_address=None)
    for _ in range(1000):
        assert gate.admit("127.0.0.1") is None
    gate.configure(dataclasses.replace(Settings(), connections_max_per_address=5))
    assert gate.admit("127.0.0.1") is not None  # the 1000 already counted still count


def test_defaults_limit_connections() -> None:
    settings = Settings()
    assert settings.connections_max == 500
    assert settings.connections_max_per_address == 50
    assert settings.preauth_timeout == 60
