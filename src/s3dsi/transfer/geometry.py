"""Part geometry: which S3 part holds a file offset, decided from the offset alone.

A plan is a short list of tiers ``(part_size, count)`` that together hold exactly 10,000 parts, so a
block can be placed in its part whatever order blocks arrive in, and the same plan can be rebuilt
later (restart) from ``to_dict()``.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from s3dsi.transfer.errors import FileTooLarge

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_PARTS = 10_000
S3_MIN_PART = 5 * MiB  # every part but the last
S3_MAX_PART = 5 * GiB
TIER_PARTS = 1_000  # parts per tier of the offset-only schedule


class PartSpan(NamedTuple):
    """Part ``number`` (1-based) covers file bytes ``[start, end)``."""

    number: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


@dataclass(frozen=True)
class PartPlan:
    """Equal-size parts within each tier; tiers cover parts 1..10,000 in order."""

    tiers: tuple[tuple[int, int], ...]
    _first_numbers: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _first_offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("a part plan needs at least one tier")
        numbers: list[int] = []
        offsets: list[int] = []
        number, offset = 1, 0
        for size, count in self.tiers:
            if size <= 0 or count <= 0 or size > S3_MAX_PART:
                raise ValueError(f"invalid tier ({size}, {count})")
            numbers.append(number)
            offsets.append(offset)
            number += count
            offset += size * count
        if number - 1 != MAX_PARTS:
            raise ValueError(f"tiers must hold exactly {MAX_PARTS} parts, not {number - 1}")
        object.__setattr__(self, "_first_numbers", tuple(numbers))
        object.__setattr__(self, "_first_offsets", tuple(offsets))

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def uniform(cls, part_size: int) -> PartPlan:
        return cls(((part_size, MAX_PARTS),))

    @classmethod
    def for_size(cls, size: int, *, min_part: int, max_part: int) -> PartPlan:
        """Equal parts for a file of known ``size`` (ALLO): min_part unless 10,000 of them are too few.

        A larger part is rounded up to a MiB multiple. The plan still accepts data beyond ``size``
        (up to 10,000 parts), so a client that under-announced does not break the transfer.
        """
        if size < 0:
            raise ValueError("size must be >= 0")
        max_part = min(max_part, S3_MAX_PART)
        part = min_part
        if part * MAX_PARTS < size:
            part = max(min_part, _round_up(-(-size // MAX_PARTS), MiB))
        if part > max_part:
            raise FileTooLarge(
                f"File too large for the configured part_size_max / memory budget: {size} bytes need "
                f"parts of at least {part} bytes to stay within {MAX_PARTS} parts, but parts are "
                f"limited to {max_part} bytes")
        return cls.uniform(part)

    @classmethod
    def schedule(cls, *, min_part: int, max_part: int) -> PartPlan:
        """The plan used when the size is unknown (no ALLO, stream mode).

        Part size starts at ``min_part`` and doubles every 1,000 parts until it reaches ``max_part``;
        the last tier takes the remaining parts. Small files get small parts (early 111 markers,
        little memory), and 10,000 parts still reach ``max_size``: with 8 MiB / 512 MiB that is
        1000 × (8+16+...+512) MiB + 3000 × 512 MiB ≈ 2.43 TiB; with 8 MiB / 80 MiB (the default
        160 MiB budget halved) ≈ 586 GiB.
        """
        if min_part <= 0 or max_part < min_part:
            raise ValueError("need 0 < min_part <= max_part")
        max_part = min(max_part, S3_MAX_PART)
        tiers: list[tuple[int, int]] = []
        size, remaining = min_part, MAX_PARTS
        while remaining > 0:
            if size >= max_part or remaining <= TIER_PARTS:
                tiers.append((min(size, max_part), remaining))
                break
            tiers.append((size, TIER_PARTS))
            remaining -= TIER_PARTS
            size = min(size * 2, max_part)
        return cls(tuple(tiers))

    # -- serialisation (restart journal) -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "tiers": [[size, count] for size, count in self.tiers]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartPlan:
        if data.get("version") != 1:
            raise ValueError(f"unsupported part plan version {data.get('version')!r}")
        return cls(tuple((int(size), int(count)) for size, count in data["tiers"]))

    # -- queries -----------------------------------------------------------------------------------
    @property
    def max_size(self) -> int:
        """The largest object this plan can hold."""
        size, count = self.tiers[-1]
        return self._first_offsets[-1] + size * count

    @property
    def largest_part(self) -> int:
        return max(size for size, _ in self.tiers)

    def part_for(self, offset: int) -> PartSpan:
        """The part holding file byte ``offset``; FileTooLarge beyond ``max_size``."""
        if offset < 0:
            raise ValueError("offset must be >= 0")
        if len(self.tiers) == 1:
            size = self.tiers[0][0]
            index = offset // size
            if index >= MAX_PARTS:
                raise self._too_large(offset)
            start = index * size
            return PartSpan(index + 1, start, start + size)
        tier = bisect_right(self._first_offsets, offset) - 1
        size, count = self.tiers[tier]
        index = (offset - self._first_offsets[tier]) // size
        if index >= count:
            raise self._too_large(offset)
        start = self._first_offsets[tier] + index * size
        return PartSpan(self._first_numbers[tier] + index, start, start + size)

    def span(self, number: int) -> PartSpan:
        if not 1 <= number <= MAX_PARTS:
            raise ValueError(f"part number {number} out of range 1..{MAX_PARTS}")
        tier = bisect_right(self._first_numbers, number) - 1
        size = self.tiers[tier][0]
        start = self._first_offsets[tier] + (number - self._first_numbers[tier]) * size
        return PartSpan(number, start, start + size)

    def parts_for_size(self, total: int) -> int:
        """How many parts an object of ``total`` bytes has (0 for an empty object)."""
        if total <= 0:
            return 0
        return self.part_for(total - 1).number

    def _too_large(self, offset: int) -> FileTooLarge:
        return FileTooLarge(
            f"File too large for the configured part_size_max / memory budget: offset {offset} is beyond "
            f"the {self.max_size} bytes that {MAX_PARTS} parts of this plan can hold")


def upload_plan(size: int | None, *, min_part: int, max_part: int, budget: int) -> PartPlan:
    """The plan for an upload: ``for_size`` when ALLO announced the size, else the ``schedule``.

    Parts are capped at half the memory budget (two must fit so a transfer can always overlap
    filling one part with uploading another), so with Settings defaults (16 MiB / 512 MiB, 160 MiB
    budget) parts are at most 80 MiB: ≤ 781 GiB with ALLO, ≈ 656 GiB without.
    """
    cap = max(min_part, min(max_part, budget // 2))
    if size is None:
        return PartPlan.schedule(min_part=min_part, max_part=cap)
    return PartPlan.for_size(size, min_part=min_part, max_part=cap)
