"""An interval map: disjoint half-open integer ranges to values, adjacent equal values merged.

The memory model keeps everything page-granular but never per page: a VM's RAM is tens of
thousands of pages and an RM extent spans 2^44 bytes. Ownership (``memdb``), mapping records
(Gunyah's per-mapping GPTs) and stage-2 views are all ``RangeMap`` s, so their cost grows with the
number of distinct runs, not with the number of pages.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")

Run = tuple[int, int, V]
"""``(start, end, value)``: the half-open range [start, end) maps to ``value``."""


class RangeMap(Generic[V]):
    """Maps disjoint ranges [start, end) to values; setting a range overwrites what it covers."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._runs: list[tuple[int, int, V]] = []

    def __iter__(self) -> Iterator[tuple[int, int, V]]:
        return iter(list(self._runs))

    def __len__(self) -> int:
        return len(self._runs)

    def __bool__(self) -> bool:
        return bool(self._runs)

    def get(self, point: int) -> V | None:
        """Returns the value at ``point``, or None where nothing is mapped."""
        i = bisect_right(self._starts, point) - 1
        if i >= 0 and self._runs[i][1] > point:
            return self._runs[i][2]
        return None

    def runs(self, start: int, end: int) -> list[tuple[int, int, V]]:
        """Returns the mapped runs that meet [start, end), clipped to it, in order."""
        lo, hi = self._span(start, end)
        return [(max(s, start), min(e, end), v) for s, e, v in self._runs[lo:hi]]

    def cover(self, start: int, end: int) -> list[tuple[int, int, V | None]]:
        """Returns [start, end) as consecutive runs, with None for the unmapped gaps."""
        out: list[tuple[int, int, V | None]] = []
        cursor = start
        for s, e, v in self.runs(start, end):
            if s > cursor:
                out.append((cursor, s, None))
            out.append((s, e, v))
            cursor = e
        if cursor < end:
            out.append((cursor, end, None))
        return out

    def set(self, start: int, end: int, value: V | None) -> None:
        """Maps [start, end) to ``value`` (None unmaps it), splitting runs at its edges."""
        if start >= end:
            return
        lo, hi = self._span(start, end)
        pieces: list[tuple[int, int, V]] = []
        if lo < hi and self._runs[lo][0] < start:
            s, _, v = self._runs[lo]
            pieces.append((s, start, v))
        if value is not None:
            pieces.append((start, end, value))
        if lo < hi and self._runs[hi - 1][1] > end:
            _, e, v = self._runs[hi - 1]
            pieces.append((end, e, v))
        self._runs[lo:hi] = pieces
        self._starts[lo:hi] = [s for s, _, _ in pieces]
        self._merge(max(lo - 1, 0), lo + len(pieces) + 1)

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Returns the slice of runs that overlap [start, end)."""
        i = bisect_right(self._starts, start) - 1
        lo = i if i >= 0 and self._runs[i][1] > start else i + 1
        hi = bisect_left(self._starts, end)
        return lo, max(lo, hi)

    def _merge(self, lo: int, hi: int) -> None:
        """Merges touching runs with equal values inside runs[lo:hi]."""
        i = lo
        while i + 1 < min(hi, len(self._runs)):
            s1, e1, v1 = self._runs[i]
            s2, e2, v2 = self._runs[i + 1]
            if e1 == s2 and v1 == v2:
                self._runs[i:i + 2] = [(s1, e2, v1)]
                del self._starts[i + 1]
                hi -= 1
            else:
                i += 1
