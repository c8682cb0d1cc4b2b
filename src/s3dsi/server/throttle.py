"""Failed-login throttling: how long the reply to a PASS waits.

Rules, each closing a way around the delay:

* The wait of an attempt is fixed *before* its password is checked, from the failures already counted
  for its address block and for the login name, and every reply waits it out, right password or
  wrong. A client that gives up early learns nothing, since a success would have waited as long.
  An attempt that fails also waits at least ``base``, as failed logins always did.
* Failures count per address block (an IPv4 address, an IPv6 /64: see server/admission.py) and per
  login name, each on its own: many addresses against one account, or one address against many
  accounts, are both slowed down. The wait is ``base * 2**n`` for ``n`` counted failures, at most
  ``cap``: consecutive failures wait 0.5, 1, 2, 4 ... seconds, and so does a success after them.
* Nothing resets a count: not a success (an attacker's own anonymous or valid login would otherwise
  wipe it) and not a new connection. Counts leak away instead, one failure per ``decay`` seconds, so a
  user who mistyped twice is back to no wait within minutes.
* The tables are bounded: past ``max_entries`` keys the lowest counts are dropped first, so a flood
  of made-up names or addresses cannot push out the count of an account under attack.

Per connection, ``login_attempts_max`` failed PASS commands close the connection (the login handler).
"""

from __future__ import annotations

import asyncio
import math
import time

from s3dsi.server.admission import address_block

MAX_NAME = 256  # longer login names count under their first MAX_NAME characters


class LoginThrottle:
    def __init__(self, base: float = 0.5, cap: float = 16.0, decay: float = 60.0,
                 max_entries: int = 20000) -> None:
        self.base = base
        self.cap = cap
        self.decay = decay
        self.max_entries = max_entries
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (failures, when counted)

    @staticmethod
    def keys(address: str, user: str) -> tuple[str, str]:
        return f"addr {address_block(address)}", f"user {user[:MAX_NAME]}"

    def _level(self, key: str, now: float) -> float:
        entry = self._levels.get(key)
        if entry is None:
            return 0.0
        level, at = entry
        return max(0.0, level - (now - at) / self.decay)

    def failures(self, address: str, user: str) -> float:
        """The larger of the two counts (decayed), as a number of failures."""
        now = time.monotonic()
        return max(self._level(key, now) for key in self.keys(address, user))

    def delay_for(self, address: str, user: str) -> float:
        """The wait every reply to the next PASS from ``address`` for ``user`` owes."""
        count = math.ceil(self.failures(address, user) - 1e-9)
        if count <= 0:
            return 0.0
        return float(min(self.cap, self.base * 2 ** count))

    def failed(self, address: str, user: str) -> None:
        now = time.monotonic()
        for key in self.keys(address, user):
            self._levels[key] = (self._level(key, now) + 1.0, now)
        if len(self._levels) > self.max_entries:
            self._prune(now)

    def _prune(self, now: float) -> None:
        live = {k: (self._level(k, now), now) for k in self._levels}
        live = {k: v for k, v in live.items() if v[0] > 0}
        if len(live) > self.max_entries * 9 // 10:
            keep = sorted(live, key=lambda k: live[k][0], reverse=True)[:self.max_entries * 9 // 10]
            live = {k: live[k] for k in keep}
        self._levels = live

    def attempt(self, address: str, user: str) -> LoginAttempt:
        return LoginAttempt(self, address, user)


class LoginAttempt:
    """One PASS: its wait is decided when it starts, before anyone knows whether the password is right."""

    def __init__(self, throttle: LoginThrottle, address: str, user: str) -> None:
        self.throttle = throttle
        self.address = address
        self.user = user
        self.delay = throttle.delay_for(address, user)
        self._started = time.monotonic()

    def failed(self) -> None:
        self.throttle.failed(self.address, self.user)
        self.delay = max(self.delay, self.throttle.base)

    async def wait(self) -> None:
        """Until ``delay`` seconds after the attempt began (the password check counts towards it)."""
        remaining = self._started + self.delay - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
