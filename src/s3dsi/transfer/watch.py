"""A transfer's data watchdog: fails a transfer whose data stopped moving.

Two limits, checked about once a second while the data phase runs:

* ``idle_timeout``: no byte received or sent for that long fails the transfer whatever else happens
  (a client that went silent, or stopped reading a download, must not hold its buffers for ever);
* ``pressure_timeout``: shorter, and only while the transfer holds pool memory that another transfer
  has been waiting for: a stalled holder gives the memory back by failing, so one silent client (or a
  few, each with a large part announced by ALLO) cannot freeze everybody else's transfers.

Time spent waiting for pool memory itself (every stream of an upload paused for space) is not idle
time: that transfer is not the one to blame.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from s3dsi.transfer.buffers import BufferPool, PoolAccount
from s3dsi.transfer.errors import DataTimeout

PRESSURE_GRACE = 2.0  # seconds another transfer must have waited before pressure counts


class DataWatch:
    def __init__(self, progress: Callable[[], int], *, idle_timeout: float, pressure_timeout: float,
                 pool: BufferPool | None = None, account: PoolAccount | None = None,
                 excused: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._progress = progress
        self._idle_timeout = idle_timeout
        self._pressure_timeout = pressure_timeout
        self._pool = pool
        self._account = account
        self._excused = excused
        self._clock = clock
        self._last = progress()
        self._since = clock()

    def check(self) -> None:
        """Raise ``DataTimeout`` when a limit is reached; call about once a second."""
        now = self._clock()
        moved = self._progress()
        if moved != self._last or (self._excused is not None and self._excused()):
            self._last, self._since = moved, now
            return
        idle = now - self._since
        if self._idle_timeout > 0 and idle >= self._idle_timeout:
            raise DataTimeout(f"No data moved for {idle:.0f} seconds; transfer aborted")
        if self._pressure_timeout <= 0 or idle < self._pressure_timeout:
            return
        if self._pool is None or self._account is None or self._account.held <= 0:
            return
        since = self._pool.waiting_since(exclude=self._account)
        if since is not None and now - since >= PRESSURE_GRACE:
            raise DataTimeout(f"No data moved for {idle:.0f} seconds while other transfers waited for "
                              "the memory it holds; transfer aborted")
