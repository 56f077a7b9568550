"""The window table of the user rules as numpy arrays: every window of the run, ascending, and
its lines. With millions of windows they are views of the file every process maps
(``windows.WindowLines``), read a stretch of the file at a time and let go before the next, so
that a partition never brings the whole file into its process."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..model.windows import WindowLines, release
from .rules import NEIGHBOURS, trim_count

STRETCH = 1 << 16
"""Windows looked up at a time in the window table (then its mapped pages are let go)."""

Ints = npt.NDArray[np.int64]


@dataclass
class Table:
    """``rules.WindowTable`` as arrays: the windows ascending and their lines (views of the
    mapped file when there are millions: shared between the processes, not copied)."""

    order: Ints
    lines: Ints
    all_lines: int
    drop: int
    source: Mapping[int, int]
    """What they were made from: its mapped pages are let go after each stretch read."""

    def find(self, w: Ints) -> tuple[Ints, Ints]:
        """(positions in ``order``, lines there) of the windows ``w`` (all present, in any
        order); mapped windows a stretch of the file at a time (see ``_ascending``)."""
        if self.mapped:
            pos, lines = self._ascending(w, self._find_mapped)
            return pos, lines
        if self.contiguous:  # every window from the first to the last: no search
            pos = w - self.order[0] if len(w) else np.zeros(0, dtype=np.int64)
        else:
            pos = np.searchsorted(self.order, w)
        return pos, self.lines[pos]

    def edges(self, positions: Ints, side: int) -> Ints:
        """For each of ``positions`` (any order): where its neighbourhood starts (side -1) or
        ends (side 1, exclusive), in positions."""
        how: Any = "left" if side < 0 else "right"
        if self.mapped:
            return self._ascending(positions, lambda p: (self._edges_mapped(p, side, how),))[0]
        found: Ints = np.searchsorted(self.order, self.order[positions] + side * NEIGHBOURS,
                                      side=how)
        return found

    @functools.cached_property
    def mapped(self) -> bool:
        """True when the windows are mapped from a file (millions of them): they are then read
        a stretch of the file at a time, its pages let go before the next."""
        return isinstance(self.source, WindowLines)

    @functools.cached_property
    def contiguous(self) -> bool:
        """True when the windows are every one from the first to the last (a window's position
        is then its distance from the first)."""
        n = len(self.order)
        return n > 0 and int(self.order[-1]) - int(self.order[0]) == n - 1

    def _stretches(self, ascending: Ints, by_window: bool) -> Iterator[tuple[int, int, int]]:
        """(first position of a stretch of STRETCH windows of the file, and the part a:b of
        ``ascending`` (windows, or positions if not ``by_window``) that falls in it), for each
        stretch with some; its pages are let go after each."""
        n = len(self.order)
        firsts = np.arange(0, n, STRETCH)
        bounds = self.order[firsts] if by_window else firsts
        cuts = [*np.searchsorted(ascending, bounds).tolist(), len(ascending)]
        release(self.source)
        for j, first in enumerate(firsts.tolist()):
            if cuts[j] < cuts[j + 1]:
                yield first, cuts[j], cuts[j + 1]
                release(self.source)

    def _find_mapped(self, w: Ints) -> tuple[Ints, Ints]:
        """``find`` of ascending windows, a stretch of the file at a time."""
        pos = np.empty(len(w), dtype=np.int64)
        lines = np.empty(len(w), dtype=np.int64)
        for first, a, b in self._stretches(w, by_window=True):
            if self.contiguous:
                pos[a:b] = w[a:b] - self.order[0]
            else:
                pos[a:b] = np.searchsorted(self.order[first : first + STRETCH], w[a:b])
                pos[a:b] += first
            lines[a:b] = self.lines[pos[a:b]]
        return pos, lines

    def _edges_mapped(self, positions: Ints, side: int, how: Any) -> Ints:
        """``edges`` of ascending positions, a stretch of the file at a time: the windows are
        distinct integers, so a neighbourhood lies within NEIGHBOURS positions of its window."""
        n = len(self.order)
        out = np.empty(len(positions), dtype=np.int64)
        for first, a, b in self._stretches(positions, by_window=False):
            lo = max(0, first - NEIGHBOURS)
            hi = min(n, first + STRETCH + NEIGHBOURS + 1)
            out[a:b] = np.searchsorted(self.order[lo:hi],
                                       self.order[positions[a:b]] + side * NEIGHBOURS, side=how)
            out[a:b] += lo
        return out

    def _ascending(self, keys: Ints, stretched: Callable[[Ints], tuple[Ints, ...]]
                   ) -> tuple[Ints, ...]:
        """``stretched(keys)`` of ``keys`` in ascending order, its answers put back in the order
        of ``keys`` (a partition's users one after another, each one's windows ascending)."""
        if len(keys) < 2 or bool(np.all(keys[1:] >= keys[:-1])):
            return stretched(keys)
        order = np.argsort(keys, kind="stable")
        answers = []
        for answer in stretched(keys[order]):
            back = np.empty_like(answer)
            back[order] = answer
            answers.append(back)
        return tuple(answers)

    @functools.cached_property
    def neighbourhoods(self) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
        """For every window: how many positions before it its neighbourhood starts, and after
        it ends (exclusive), as ``edges`` gives them. The windows are distinct integers, so
        those are at most NEIGHBOURS and NEIGHBOURS + 1: one byte each, not two int64 a
        window (320 MB at 20 M windows)."""
        n = len(self.order)
        back = np.empty(n, dtype=np.int8)
        ahead = np.empty(n, dtype=np.int8)
        for start in range(0, n, STRETCH):
            at = np.arange(start, min(n, start + STRETCH))
            back[start : start + STRETCH] = at - self.edges(at, -1)
            ahead[start : start + STRETCH] = self.edges(at, 1) - at
        return back, ahead

    @classmethod
    def of(cls, window_lines: Mapping[int, int]) -> Table:
        """``anomalies.WindowTable.of(window_lines)``, as arrays (the windows and their lines
        are not copied when they are arrays already)."""
        if isinstance(window_lines, WindowLines):
            order = _ints(window_lines.sorted_keys())
            lines = _ints(window_lines.values())
        else:
            order = np.array(sorted(window_lines), dtype=np.int64)
            lines = np.fromiter((window_lines[w] for w in order.tolist()), dtype=np.int64,
                                count=len(order))
        total = 0
        for start in range(0, len(lines), STRETCH):  # one stretch of mapped pages at a time
            total += int(lines[start : start + STRETCH].sum())
            release(window_lines)
        return cls(order, lines, total, trim_count(len(order)), window_lines)


def _ints(seq: Any) -> Ints:
    return np.frombuffer(seq, dtype=np.int64) if len(seq) else np.zeros(0, dtype=np.int64)
