"""The receive window of one upload: which parts may hold a buffer now, and lending their memory.

Only parts inside ``[base, end)`` — the lowest unfinished part and the next ``width - 1`` — get
buffers from the shared pool, so memory stays bounded whatever order blocks arrive in; ``width`` is
what the memory budget holds (at least 2). Bytes of parts that are already durable (a resumed
upload's acknowledged parts, or duplicates of a sealed part) are received into a discard view.
The window also keeps the pool account's priority key on the base part, so concurrent transfers
sharing the pool always let the lowest part of every transfer through (``BufferPool``'s progress rule).
"""

from __future__ import annotations

from collections.abc import Collection

from s3dsi.transfer.assembly import DONE, FILLING, PartAssembly
from s3dsi.transfer.buffers import BufferPool, PartBuffer, PoolAccount
from s3dsi.transfer.geometry import MAX_PARTS, PartPlan, PartSpan

_DISCARD_SIZE = 256 * 1024


class PartWindow:
    def __init__(self, plan: PartPlan, pool: BufferPool, account: PoolAccount, *,
                 durable: Collection[int] = (), max_width: int | None = None) -> None:
        self.plan = plan
        self.pool = pool
        self.account = account
        self.parts: dict[int, PartAssembly] = {}
        self.durable = set(durable)  # part numbers already in S3 before this transfer
        self.base = 1
        self.end = 0
        self.current: PartAssembly | None = None  # the part the last block went to (fast path)
        self._max_width = max_width
        self._discard: memoryview | None = None
        self.reserving = False  # hold a pool reserve for the base part (once the engine is open)

    def lend(self, f: int, max_len: int) -> memoryview | None:
        """A writable view for file offset ``f``; None when the part lies beyond the window or the pool
        has no room now (the caller pauses and waits). Raises DsiError past the plan's limit."""
        part = self.current
        if part is None or not part.start <= f < part.end:
            span = self.plan.part_for(f)
            part = self.parts.get(span.number)
            if part is None:
                if span.number < self.base or span.number in self.durable:
                    return self.discard(min(max_len, span.end - f))
                if span.number >= self.end:
                    return None
                buf = self.pool.try_acquire(span.size, account=self.account, key=span.number)
                if buf is None:
                    return None
                part = self.open_part(span, buf)
        if part.state != FILLING:
            return self.discard(min(max_len, part.end - f))
        self.current = part
        rel = f - part.start
        return part.view[rel:min(part.size, rel + max_len)]

    def filling_part_at(self, f: int) -> PartAssembly | None:
        """The part still being filled that holds offset ``f``, if any."""
        part = self.current
        if part is None or not part.start <= f < part.end:
            part = self.parts.get(self.plan.part_for(f).number)
        return part if part is not None and part.state == FILLING else None

    def has_room_for(self, span: PartSpan) -> bool:
        """``lend`` for this part needs no pool buffer (it has one, or its bytes are dropped)."""
        n = span.number
        return n in self.parts or n < self.base or n in self.durable

    def open_part(self, span: PartSpan, buf: PartBuffer) -> PartAssembly:
        part = PartAssembly(span, buf)
        self.parts[span.number] = part
        if span.number == self.base:
            self.account.set_priority(self.base, 0)
        return part

    def unlink(self, part: PartAssembly) -> None:
        if self.current is part:
            self.current = None

    def release(self, part: PartAssembly) -> None:
        """A finished part gives its buffer back; the window moves when it was the base."""
        if part.buf is not None:
            self.pool.release(part.buf)
            part.buf = None
        part.state = DONE
        if part.number == self.base:
            self.advance()

    def advance(self) -> None:
        while True:
            part = self.parts.get(self.base)
            if part is not None and part.state == DONE:
                del self.parts[self.base]
            elif self.base not in self.durable:
                break
            self.base += 1
        span = self.plan.span(min(self.base, MAX_PARTS))
        width = max(2, self.pool.budget // span.size)
        if self._max_width is not None:
            width = max(2, min(width, self._max_width))
        self.end = self.base + width
        if self.reserving:  # an engine never opened must not hold a reserve in the shared pool
            self.account.set_priority(self.base, 0 if self.base in self.parts else span.size)

    def release_all(self) -> None:
        for part in self.parts.values():
            if part.buf is not None:
                self.pool.release(part.buf)
                part.buf = None
        self.current = None

    def discard(self, length: int) -> memoryview:
        if self._discard is None:
            self._discard = memoryview(bytearray(_DISCARD_SIZE))
        return self._discard[:min(length, _DISCARD_SIZE)]
