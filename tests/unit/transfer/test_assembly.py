from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from s3dsi.transfer.assembly import PartAssembly
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.geometry import PartSpan

SIZE = 200


@given(st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(1, 60)), max_size=40))
def test_runs_count_each_byte_once(blocks: list[tuple[int, int]]) -> None:
    pool = BufferPool(SIZE)
    buf = pool.try_acquire(SIZE)
    assert buf is not None
    part = PartAssembly(PartSpan(1, 0, SIZE), buf)
    seen: set[int] = set()
    for start, length in blocks:
        end = min(SIZE, start + length)
        new = part.add_run(start, end)
        assert new == len(set(range(start, end)) - seen)
        seen |= set(range(start, end))
        runs = list(zip(part.starts, part.ends, strict=True))
        assert all(s < e for s, e in runs)
        assert all(e1 < s2 for (_, e1), (s2, _) in itertools.pairwise(runs))  # disjoint, merged
        assert sum(e - s for s, e in runs) == len(seen)
    expected_gap = 0
    while expected_gap in seen:
        expected_gap += 1
    assert part.first_gap() == expected_gap
