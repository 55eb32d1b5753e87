"""RangeMap, the interval map under ownership, records and views, against a dict of points."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gunyah_net.hyp.rangemap import RangeMap

DOMAIN = 40
ops = st.lists(st.tuples(st.integers(0, DOMAIN), st.integers(0, DOMAIN),
                         st.sampled_from(["a", "b", "c", None])), max_size=30)


def _apply(ops_list) -> tuple[RangeMap[str], dict[int, str]]:
    rmap: RangeMap[str] = RangeMap()
    points: dict[int, str] = {}
    for start, end, value in ops_list:
        rmap.set(start, end, value)
        for p in range(start, end):
            if value is None:
                points.pop(p, None)
            else:
                points[p] = value
    return rmap, points


@given(ops)
def test_setting_ranges_matches_setting_points(ops_list):
    rmap, points = _apply(ops_list)
    assert {p: rmap.get(p) for p in range(DOMAIN + 1) if rmap.get(p) is not None} == points


@given(ops)
def test_runs_are_sorted_disjoint_and_maximal(ops_list):
    rmap, _ = _apply(ops_list)
    runs = list(rmap)
    assert all(s < e for s, e, _ in runs)
    for (s1, e1, v1), (s2, e2, v2) in zip(runs, runs[1:]):
        assert e1 <= s2
        assert e1 < s2 or v1 != v2, "touching runs with equal values must merge"


@given(ops, st.integers(0, DOMAIN), st.integers(0, DOMAIN))
def test_cover_and_runs_describe_a_window(ops_list, a, b):
    rmap, points = _apply(ops_list)
    start, end = min(a, b), max(a, b)
    cover = rmap.cover(start, end)
    expanded = [v for s, e, v in cover for _ in range(s, e)]
    assert expanded == [points.get(p) for p in range(start, end)]
    assert [r for r in cover if r[2] is not None] == rmap.runs(start, end)

