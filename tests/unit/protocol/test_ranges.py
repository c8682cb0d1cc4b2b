from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3dsi.protocol.ranges import MAX_OFFSET, RangeList, RestMarker

LIMIT = 120
_pairs = st.lists(st.tuples(st.integers(0, LIMIT), st.integers(0, LIMIT)).map(lambda p: (min(p), max(p))),
                  max_size=12)


def _bytes(ranges: RangeList) -> set[int]:
    return {i for start, end in ranges for i in range(start, end)}


def _model(pairs: list[tuple[int, int]]) -> set[int]:
    return {i for start, end in pairs for i in range(start, end)}


def _assert_canonical(ranges: RangeList) -> None:
    items = list(ranges)
    assert all(start < end for start, end in items)
    assert all(a_end < b_start for (_, a_end), (b_start, _) in itertools.pairwise(items))


@given(_pairs)
def test_add_matches_a_set_model(pairs: list[tuple[int, int]]) -> None:
    ranges = RangeList(pairs)
    _assert_canonical(ranges)
    assert _bytes(ranges) == _model(pairs)
    assert ranges.total == len(_model(pairs))
    assert RangeList(reversed(pairs)) == ranges  # order of insertion does not matter


@given(_pairs, _pairs)
def test_algebra_matches_a_set_model(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    left, right = RangeList(a), RangeList(b)
    for result, expected in ((left.union(right), _model(a) | _model(b)),
                             (left.subtract(right), _model(a) - _model(b)),
                             (left.intersection(right), _model(a) & _model(b)),
                             (left.invert(LIMIT), set(range(LIMIT)) - _model(a)),
                             (left.needed(LIMIT // 2), set(range(LIMIT // 2)) - _model(a)),
                             (left.clip(50), {i for i in _model(a) if i < 50})):
        _assert_canonical(result)
        assert _bytes(result) == expected
    assert left == RangeList(a)  # operations do not mutate


@given(_pairs, st.integers(0, LIMIT), st.integers(0, LIMIT))
def test_covers_and_contains(pairs: list[tuple[int, int]], x: int, y: int) -> None:
    start, end = min(x, y), max(x, y)
    ranges = RangeList(pairs)
    assert ranges.covers(start, end) == set(range(start, end)).issubset(_model(pairs))
    assert ranges.contains(x) == (x in _model(pairs))


@given(_pairs)
def test_format_parse_round_trip(pairs: list[tuple[int, int]]) -> None:
    ranges = RangeList(pairs)
    if ranges:
        assert RangeList.parse(ranges.format()) == ranges
    else:
        assert ranges.format() == ""


def test_unbounded_invert_and_first_gap() -> None:
    ranges = RangeList([(0, 50000), (60000, 70000)])
    assert list(ranges.invert()) == [(50000, 60000), (70000, MAX_OFFSET)]
    assert list(ranges.needed(100000)) == [(50000, 60000), (70000, 100000)]  # the GT MODE E REST example
    assert ranges.first_gap == 50000
    assert RangeList([(5, 6)]).first_gap == 0
    assert list(RangeList().invert()) == [(0, MAX_OFFSET)]


def test_merging_touching_ranges() -> None:
    ranges = RangeList()
    ranges.add(10, 20)
    ranges.add(30, 40)
    ranges.add(20, 30)
    assert list(ranges) == [(10, 40)]
    assert len(ranges) == 1
    assert bool(ranges)
    ranges.add(5, 5)
    assert ranges.format() == "10-40"
    assert repr(ranges) == "RangeList('10-40')"


@pytest.mark.parametrize("bad", [(-1, 5), (5, 4), (0, MAX_OFFSET + 1)])
def test_add_rejects_bad_ranges(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        RangeList().add(*bad)


@pytest.mark.parametrize("text", ["", "1", "a-b", "5-3", "0-1,", " 0-1", "0-1 ", "1-2-3",
                                  "0-99999999999999999999"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        RangeList.parse(text)


def test_gt_marker_text_parses() -> None:
    text = "21495808-22020096,22806528-23068672,23592960-24117248,24641536-44040192"
    assert RangeList.parse(text).format() == text


def test_rest_marker() -> None:
    stream = RestMarker.parse("6")
    assert stream.held == ((0, 6),)
    assert stream.stream_offset == 6
    assert not stream.is_empty
    assert list(stream.needed(14)) == [(6, 14)]
    assert stream.format() == "6"
    assert RestMarker.parse("0").is_empty
    ranges = RestMarker.parse("0-22544384,22806528-23592960")
    assert ranges.stream_offset is None
    assert list(ranges.needed(60000000)) == [(22544384, 22806528), (23592960, 60000000)]
    assert ranges.format() == "0-22544384,22806528-23592960"
    assert RestMarker.parse("0-10,5-20").held == ((0, 20),)
    for bad in ("abc", "", "-1", "1-"):
        with pytest.raises(ValueError):
            RestMarker.parse(bad)


def test_many_ranges_stay_fast() -> None:
    ranges = RangeList()
    for i in range(20000, 0, -1):
        ranges.add(i * 10, i * 10 + 5)
    assert len(ranges) == 20000
    ranges.add(0, 300000)
    assert len(ranges) == 1
