"""The login throttle: the wait is fixed before the password is checked, counted per address block and
per account, never reset by a success, and leaks away with time."""

from __future__ import annotations

import asyncio
import time

import pytest

from s3dsi.server import throttle as throttle_module
from s3dsi.server.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(throttle_module.time, "monotonic", fake)
    return fake


def test_the_wait_grows_with_failures_and_is_capped(clock: Clock) -> None:
    t = LoginThrottle(base=0.5, cap=4.0)
    waits = []
    for _ in range(6):
        waits.append(t.delay_for("192.0.2.1", "alice"))
        t.failed("192.0.2.1", "alice")
    assert waits == [0.0, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_every_attempt_of_a_throttled_address_waits_right_or_wrong(clock: Clock) -> None:
    t = LoginThrottle(base=0.5)
    t.failed("192.0.2.1", "mallory")
    # the next attempt, whatever its outcome, owes the wait: it is known before the password is checked
    attempt = t.attempt("192.0.2.1", "alice")
    assert attempt.delay == 1.0
    # a success resets nothing (an attacker's own valid or anonymous login would otherwise wipe the count)
    assert t.delay_for("192.0.2.1", "anonymous") == 1.0
    # a failure of an unthrottled attempt still waits the base
    fresh = t.attempt("198.51.100.1", "bob")
    assert fresh.delay == 0.0
    fresh.failed()
    assert fresh.delay == 0.5


def test_counts_are_per_address_block_and_per_account(clock: Clock) -> None:
    t = LoginThrottle(base=0.5)
    for _ in range(3):
        t.failed("2001:db8:1:2::10", "alice")
    # another /128 of the same /64: the same block
    assert t.delay_for("2001:db8:1:2::99", "bob") == 4.0
    # another block, the same account: throttled by the account's count
    assert t.delay_for("198.51.100.7", "alice") == 4.0
    # another block, another account: nothing counted
    assert t.delay_for("2001:db8:1:3::10", "bob") == 0.0
    # IPv4: the address itself (and its IPv4-mapped form)
    t.failed("192.0.2.1", "carol")
    assert t.delay_for("::ffff:192.0.2.1", "dave") == 1.0
    assert t.delay_for("192.0.2.2", "dave") == 0.0


def test_counts_leak_away(clock: Clock) -> None:
    t = LoginThrottle(base=0.5, decay=60.0)
    t.failed("192.0.2.1", "alice")
    t.failed("192.0.2.1", "alice")
    assert t.delay_for("192.0.2.1", "alice") == 2.0
    clock.now += 60
    assert t.delay_for("192.0.2.1", "alice") == 1.0
    clock.now += 60
    assert t.delay_for("192.0.2.1", "alice") == 0.0


def test_a_flood_of_names_cannot_push_out_an_account_under_attack(clock: Clock) -> None:
    t = LoginThrottle(base=0.5, max_entries=100)
    for _ in range(5):
        t.failed("192.0.2.1", "alice")
    for n in range(1000):
        t.failed(f"198.51.{n // 250}.{n % 250}", f"made-up-{n}")
    assert len(t._levels) <= 100
    assert t.delay_for("203.0.113.5", "alice") == 16.0


async def test_the_reply_waits_from_the_start_of_the_attempt() -> None:
    t = LoginThrottle(base=0.1)
    t.failed("192.0.2.1", "alice")
    attempt = t.attempt("192.0.2.1", "alice")
    started = time.monotonic()
    await asyncio.sleep(0.1)  # the password check
    await attempt.wait()
    assert time.monotonic() - started >= 0.2
