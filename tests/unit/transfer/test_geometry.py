from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3dsi.transfer.errors import FileTooLarge
from s3dsi.transfer.geometry import MAX_PARTS, S3_MAX_PART, S3_MIN_PART, PartPlan, upload_plan

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB

mins = st.sampled_from([5 * MiB, 8 * MiB, 16 * MiB, 64 * MiB])
maxes = st.sampled_from([64 * MiB, 80 * MiB, 512 * MiB, 5 * GiB])


def check_plan(plan: PartPlan, size: int) -> None:
    n = plan.parts_for_size(size)
    assert n <= MAX_PARTS
    previous_end = 0
    for number in range(1, n + 1):
        span = plan.span(number)
        assert span.start == previous_end
        assert S3_MIN_PART <= span.size <= S3_MAX_PART
        previous_end = span.end
    assert previous_end >= size
    if size:
        assert plan.span(n).start < size


@given(size=st.integers(0, 5 * TiB), min_part=mins, max_part=maxes)
def test_for_size_fits_in_10000_parts(size: int, min_part: int, max_part: int) -> None:
    if -(-size // MAX_PARTS) > max(min_part, max_part):
        with pytest.raises(FileTooLarge, match="part_size_max / memory budget"):
            PartPlan.for_size(size, min_part=min_part, max_part=max_part)
        return
    plan = PartPlan.for_size(size, min_part=min_part, max_part=max_part)
    part = plan.tiers[0][0]
    assert part >= min_part
    assert part <= max(min_part, max_part)
    assert part == min_part or part % MiB == 0
    check_plan(plan, min(size, 200 * part))  # walking 10,000 parts per example is slow
    assert plan.parts_for_size(size) <= MAX_PARTS
    assert plan.max_size >= size


@given(offset=st.integers(0, 2 * TiB), min_part=mins, max_part=maxes)
def test_every_offset_in_exactly_one_part(offset: int, min_part: int, max_part: int) -> None:
    max_part = max(min_part, max_part)
    plan = PartPlan.schedule(min_part=min_part, max_part=max_part)
    if offset >= plan.max_size:
        with pytest.raises(FileTooLarge):
            plan.part_for(offset)
        return
    span = plan.part_for(offset)
    assert span.start <= offset < span.end
    assert plan.span(span.number) == span
    if span.number > 1:
        assert plan.span(span.number - 1).end == span.start
        assert plan.part_for(span.start - 1).number == span.number - 1
    assert plan.part_for(span.end - 1).number == span.number


def test_schedule_tiers_and_reach() -> None:
    plan = PartPlan.schedule(min_part=8 * MiB, max_part=512 * MiB)
    assert plan.tiers[0] == (8 * MiB, 1000)
    assert plan.tiers[-1] == (512 * MiB, 4000)
    assert sum(c for _, c in plan.tiers) == MAX_PARTS
    assert plan.max_size == (1000 * (8 + 16 + 32 + 64 + 128 + 256) + 4000 * 512) * MiB
    small = PartPlan.schedule(min_part=8 * MiB, max_part=80 * MiB)
    assert small.max_size == (1000 * (8 + 16 + 32 + 64) + 6000 * 80) * MiB
    check_plan(plan, 2 * TiB)


def test_serialisation_round_trip() -> None:
    for plan in (PartPlan.schedule(min_part=8 * MiB, max_part=512 * MiB),
                 PartPlan.for_size(3 * TiB, min_part=8 * MiB, max_part=5 * GiB)):
        again = PartPlan.from_dict(plan.to_dict())
        assert again == plan
        assert again.part_for(123456789012).number == plan.part_for(123456789012).number
    with pytest.raises(ValueError):
        PartPlan.from_dict({"version": 2, "tiers": []})


def test_for_size_examples() -> None:
    assert PartPlan.for_size(0, min_part=8 * MiB, max_part=512 * MiB).tiers[0][0] == 8 * MiB
    assert PartPlan.for_size(100 * GiB, min_part=8 * MiB, max_part=512 * MiB).tiers[0][0] == 11 * MiB
    with pytest.raises(FileTooLarge):
        PartPlan.for_size(1 * TiB, min_part=8 * MiB, max_part=80 * MiB)
    assert PartPlan.for_size(0, min_part=8 * MiB, max_part=512 * MiB).parts_for_size(0) == 0


def test_upload_plan_caps_parts_at_half_the_budget() -> None:
    with_allo = upload_plan(100 * GiB, min_part=8 * MiB, max_part=512 * MiB, budget=160 * MiB)
    assert with_allo.tiers == ((11 * MiB, MAX_PARTS),)
    without = upload_plan(None, min_part=8 * MiB, max_part=512 * MiB, budget=160 * MiB)
    assert without.largest_part == 80 * MiB
    with pytest.raises(FileTooLarge):
        upload_plan(800 * GiB, min_part=8 * MiB, max_part=512 * MiB, budget=160 * MiB)
    assert upload_plan(800 * GiB, min_part=8 * MiB, max_part=512 * MiB, budget=GiB).tiers[0][0] == 82 * MiB
