"""Byte-range sets: the 111 range markers, REST range lists and the assembler's bookkeeping.

Ranges are half-open ``[start, end)`` everywhere, as GT prints them (``0-100`` is 100 bytes).
A ``RangeList`` keeps them sorted, disjoint and with touching ranges merged, so its textual form is
canonical. "To the end of the file" is ``MAX_OFFSET`` (the largest off_t), which callers clip with
the real size.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

MAX_OFFSET: Final = (1 << 63) - 1

_RANGE = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")
_NUMBER = re.compile(r"[0-9]{1,19}")


class RangeList:
    """Sorted, disjoint, merged ``[start, end)`` ranges (mutable through ``add`` only)."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    # -- building --------------------------------------------------------------------------------
    def add(self, start: int, end: int) -> None:
        """Insert ``[start, end)``, merging with overlapping or touching ranges; empty is a no-op."""
        if start < 0 or end < start or end > MAX_OFFSET:
            raise ValueError(f"bad range {start}-{end}")
        if start == end:
            return
        first = bisect_left(self._ends, start)  # first range ending at or after start
        stop = bisect_right(self._starts, end)  # ranges starting at or before end
        if first < stop:
            start = min(start, self._starts[first])
            end = max(end, self._ends[stop - 1])
        self._starts[first:stop] = [start]
        self._ends[first:stop] = [end]

    def copy(self) -> RangeList:
        clone = RangeList()
        clone._starts = list(self._starts)
        clone._ends = list(self._ends)
        return clone

    # -- set algebra (new lists) -----------------------------------------------------------------
    def union(self, other: Iterable[tuple[int, int]]) -> RangeList:
        result = self.copy()
        for start, end in other:
            result.add(start, end)
        return result

    def subtract(self, other: Iterable[tuple[int, int]]) -> RangeList:
        """The parts of self not in ``other``."""
        removed = other if isinstance(other, RangeList) else RangeList(other)
        cut_starts, cut_ends = removed._starts, removed._ends
        result = RangeList()
        j = 0
        for start, end in self:
            while j < len(cut_starts) and cut_ends[j] <= start:
                j += 1
            position = start
            k = j
            while k < len(cut_starts) and cut_starts[k] < end and position < end:
                if cut_starts[k] > position:
                    result.add(position, cut_starts[k])
                position = max(position, cut_ends[k])
                k += 1
            if position < end:
                result.add(position, end)
        return result

    def intersection(self, other: Iterable[tuple[int, int]]) -> RangeList:
        other_list = other if isinstance(other, RangeList) else RangeList(other)
        return self.subtract(self.subtract(other_list))

    def clip(self, limit: int) -> RangeList:
        """Only what lies inside ``[0, limit)``."""
        return self.intersection(((0, limit),)) if limit > 0 else RangeList()

    def invert(self, limit: int | None = None) -> RangeList:
        """``[0, limit)`` (``[0, MAX_OFFSET)`` for None) minus this list."""
        top = MAX_OFFSET if limit is None else limit
        result = RangeList()
        position = 0
        for start, end in self:
            if start >= top:
                break
            if position < start:
                result.add(position, start)
            position = max(position, end)
        if position < top:
            result.add(position, top)
        return result

    def needed(self, total: int | None = None) -> RangeList:
        """What remains to be sent or received of a file of ``total`` bytes (None: unknown)."""
        return self.invert(total)

    # -- queries ---------------------------------------------------------------------------------
    def covers(self, start: int, end: int) -> bool:
        """True if all of ``[start, end)`` is in the list (an empty range always is)."""
        if start >= end:
            return True
        i = bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def contains(self, offset: int) -> bool:
        return self.covers(offset, offset + 1)

    @property
    def total(self) -> int:
        """Number of bytes covered."""
        return sum(end - start for start, end in self)

    @property
    def first_gap(self) -> int:
        """End of the range starting at 0 (0 if offset 0 is not covered): the contiguous prefix."""
        if self._starts and self._starts[0] == 0:
            return self._ends[0]
        return 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self._starts, self._ends, strict=True)

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeList):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        return f"RangeList({self.format()!r})"

    # -- text ------------------------------------------------------------------------------------
    def format(self) -> str:
        """``"0-100,200-300"`` (end exclusive); ``""`` when empty."""
        return ",".join(f"{start}-{end}" for start, end in self)

    @classmethod
    def parse(cls, text: str) -> RangeList:
        """Strict inverse of ``format`` for a non-empty list; ValueError on anything else."""
        result = cls()
        for item in text.split(","):
            match = _RANGE.fullmatch(item)
            if match is None:
                raise ValueError(f"bad range {item!r}")
            start, end = int(match.group(1)), int(match.group(2))
            if end < start or end > MAX_OFFSET:
                raise ValueError(f"bad range {item!r}")
            result.add(start, end)
        return result


@dataclass(frozen=True)
class RestMarker:
    """A pending ``REST``: the ranges the client already holds.

    ``REST n`` (stream form) holds ``[0, n)``; ``REST a-b,c-d`` holds the listed ranges. The
    transfer then moves only ``needed(size)``; a STOR with a non-empty ``held`` must not truncate.
    """

    held: tuple[tuple[int, int], ...]
    stream_offset: int | None = None

    @classmethod
    def parse(cls, arg: str) -> RestMarker:
        """``"100"`` or ``"0-100,200-300"``; ValueError otherwise."""
        text = arg.strip()
        if "-" not in text:
            if _NUMBER.fullmatch(text) is None:
                raise ValueError(f"bad restart marker {arg!r}")
            offset = int(text)
            if offset > MAX_OFFSET:
                raise ValueError(f"bad restart marker {arg!r}")
            return cls(held=((0, offset),) if offset else (), stream_offset=offset)
        return cls(held=tuple(RangeList.parse(text)))

    def held_ranges(self) -> RangeList:
        return RangeList(self.held)

    def needed(self, total: int | None = None) -> RangeList:
        return self.held_ranges().invert(total)

    @property
    def is_empty(self) -> bool:
        """Nothing held: the transfer behaves as without REST (``REST 0``)."""
        return not self.held

    def format(self) -> str:
        if self.stream_offset is not None:
            return str(self.stream_offset)
        return RangeList(self.held).format()
