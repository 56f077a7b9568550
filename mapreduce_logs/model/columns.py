"""Tables of (subject, window) counts as numpy columns: how the kernel hands a spilling chunk's
counts over, and how a spilled partition is read.

``Columns`` holds the subjects' names once (end to end, ``names.Names``) and, per table of ``Tables``, arrays of (subject
index, window, count); ``Users`` is its first table, the user lines, as the user rules of
``arrays`` take it; ``Subject`` is one subject alone, with its windows per table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from .names import Names

Ints = npt.NDArray[np.int64]


@dataclass
class Columns:
    """Tables of (subject, window) counts as arrays, tables in the order of ``Tables``: the
    subjects' ``names`` once, then per table (subject index into ``names``, window, count) of
    its entries, by subject then window, each (subject, window) once when ``summed``. Columns
    not yet summed (a mapper's, see ``Partial.runs``) may list a name twice and a (subject,
    window) more than once."""

    names: Names
    tables: list[tuple[Ints, Ints, Ints]]

    def entries(self) -> int:
        return sum(len(t[0]) for t in self.tables)

    def users(self) -> Users:
        """The first table (user lines) as ``Users``."""
        return Users(self.names, *self.tables[0])

    def as_dict(self, table: int) -> dict[tuple[bytes, int], int]:
        """One table as a dict (subject, window) -> count."""
        subjects, windows, counts = self.tables[table]
        names = self.names
        keys = zip([names[i] for i in subjects.tolist()], windows.tolist(), strict=True)
        return dict(zip(keys, counts.tolist(), strict=True))

    @classmethod
    def of(cls, tables: Iterable[Mapping[tuple[bytes, int], int]], summed: bool = True) -> Columns:
        """Dicts (subject, window) -> count as columns, read in C; sorted if ``summed``."""
        tables = list(tables)
        names, subjects = Names.of(itertools.chain.from_iterable(
            map(itemgetter(0), table) for table in tables)).numbered()
        columns = []
        at = 0
        for table in tables:
            n = len(table)
            columns.append((subjects[at : at + n],
                            np.fromiter(map(itemgetter(1), table), np.int64, n),
                            np.fromiter(table.values(), np.int64, n)))
            at += n
        out = cls(names, columns)
        return out.summed() if summed else out

    @classmethod
    def gather(cls, pieces: Iterable[Columns]) -> Columns:
        """The sum of ``pieces`` (which may share subjects and windows)."""
        pieces = list(pieces)
        if len(pieces) == 1:
            return pieces[0].summed()
        names, mapped = Names.join([p.names for p in pieces]).numbered()
        width = max((len(p.tables) for p in pieces), default=0)
        parts: list[list[list[Ints]]] = [[[], [], []] for _ in range(width)]
        at = 0
        while pieces:
            piece = pieces.pop(0)  # let go of each piece once read
            mine = mapped[at : at + len(piece.names)]
            at += len(piece.names)
            for columns, (subjects, windows, counts) in zip(parts, piece.tables, strict=False):
                columns[0].append(mine[subjects])
                columns[1].append(windows)
                columns[2].append(counts)
        return cls(names, [(_joined(s), _joined(w), _joined(c)) for s, w, c in parts]).summed()

    def summed(self) -> Columns:
        """Sorted by subject then window, counts of the same (subject, window) added up."""
        return Columns(self.names, [_sum_pairs(*table) for table in self.tables])


def _sum_pairs(subjects: Ints, windows: Ints, counts: Ints) -> tuple[Ints, Ints, Ints]:
    """Entries sorted by subject then window, the counts of equal pairs added up."""
    if not len(subjects):
        # New empty arrays: a slice, even empty, would keep the whole array it was cut from.
        return subjects.copy(), windows.copy(), counts.copy()
    order = by_pairs(subjects, windows)
    subjects, windows, counts = subjects[order], windows[order], counts[order]
    del order
    new = np.empty(len(subjects), dtype=bool)
    new[0] = True
    np.not_equal(subjects[1:], subjects[:-1], out=new[1:])
    new[1:] |= windows[1:] != windows[:-1]
    if new.all():
        return subjects, windows, counts
    starts = np.flatnonzero(new)
    return subjects[starts], windows[starts], np.add.reduceat(counts, starts)


@dataclass
class Subject:
    """One subject's windows (ascending, distinct) and counts, per table of ``Tables`` (user
    lines, service errors, service other lines, user errors); a table it is absent from is
    empty."""

    name: bytes
    windows: list[Ints]
    counts: list[Ints]

    @classmethod
    def of(cls, columns: Columns) -> Subject:
        """The one subject of ``columns`` (summed)."""
        return cls(columns.names[0] if columns.names else b"",
                   [w for _, w, _ in columns.tables], [c for _, _, c in columns.tables])


@dataclass
class Users:
    """The windows of many users: entries by user (``user``: an index into ``names``), then
    window ascending, distinct; every user listed has one at least."""

    names: Sequence[bytes]
    user: Ints
    windows: Ints
    counts: Ints

    def segments(self) -> tuple[Ints, Ints]:
        """(where each user's entries start, how many it has), users in entry order."""
        return segments(self.user)


def segments(user: Ints) -> tuple[Ints, Ints]:
    if not len(user):
        return user[:0], user[:0]
    starts = np.flatnonzero(np.diff(user, prepend=user[0] - 1))
    return starts, np.diff(starts, append=len(user))


def _joined(pieces: list[Ints]) -> Ints:
    """One array of ``pieces``, which is emptied (each piece let go as soon as it is copied)."""
    out = np.empty(sum(map(len, pieces)), dtype=np.int64)
    at = 0
    while pieces:
        piece = pieces.pop(0)
        out[at : at + len(piece)] = piece
        at += len(piece)
    return out


def by_pairs(major: Ints, minor: Ints) -> Ints:
    """The order of (``major``, ``minor``) pairs of integers (``major`` 0 or more), ascending; equal
    pairs in any order. One sort of ``minor`` when ``major`` has one value (a subject alone: no
    key array of its millions of entries), else of a combined key when it fits in 62 bits, else
    two."""
    if not len(major) or int(major.min()) == int(major.max()):  # one major value: minor alone
        alone: Ints = np.argsort(minor)
        return alone
    low = int(minor.min())
    span = int(minor.max()) - low + 1
    if (int(major.max()) + 1) * span < 1 << 62:
        key = major * span
        key += minor
        key -= low
        return np.argsort(key)
    return np.lexsort((minor, major))
