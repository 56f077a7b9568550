"""The high-cardinality counters of a change (``Counts``), and piece files that hold them on
disk while a big ``.gz`` is read, until they are committed."""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from ..model.digest import Key
from ..model.partial import Partial, add_counts
from .lines import FutureRow, UnknownRow

PIECE_ROWS = 200_000
"""Rows of a provisional tail read back at a time when it is taken back."""
PIECE_PREFIX = "piece-"
"""Piece files: the counters a worker wrote while it read a big ``.gz``, until they commit."""


class Counts(NamedTuple):
    """The counters of a Partial that grow with the number of users and services."""

    users: dict[bytes, int]
    services: dict[bytes, int]
    user_lines: dict[Key, int]
    service_errors: dict[Key, int]
    service_others: dict[Key, int]
    user_errors: dict[Key, int]

    @classmethod
    def empty(cls) -> Counts:
        return cls({}, {}, {}, {}, {}, {})

    def _pairs(self, other: Counts) -> Iterator[tuple[dict[Any, int], dict[Any, int]]]:
        yield self.users, other.users
        yield self.services, other.services
        yield self.user_lines, other.user_lines
        yield self.service_errors, other.service_errors
        yield self.service_others, other.service_others
        yield self.user_errors, other.user_errors

    def add(self, other: Counts) -> None:
        for mine, theirs in self._pairs(other):
            add_counts(mine, theirs)

    def subtract(self, other: Counts) -> None:
        for mine, theirs in self._pairs(other):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) - n

    def negate(self) -> None:
        for mine, _ in self._pairs(self):
            for key in mine:
                mine[key] = -mine[key]

    def windowed(self) -> tuple[dict[Key, int], ...]:
        """The (subject, window) tables, in the order of ``Tables``."""
        return self.user_lines, self.service_errors, self.service_others, self.user_errors

    def rows(self) -> Iterator[tuple[int, bytes, int, int]]:
        """(kind, subject, window, n) of every (subject, window) count; kind is the table's
        index in ``windowed()``."""
        for kind, table in enumerate(self.windowed()):
            for (subject, window), n in table.items():
                yield kind, subject, window, n


def take_counts(partial: Partial) -> Counts:
    """Move the high-cardinality counters out of ``partial``, leaving it empty ones."""
    users, services = partial.users, partial.services
    partial.users, partial.services = type(partial.users)(), type(partial.services)()
    return Counts(users, services, *partial.take_tables())


Piece = tuple[Counts, list[UnknownRow], list[FutureRow]]


def write_piece(folder: str, counts: Counts, unknown: list[UnknownRow], future: list[FutureRow]) -> str:
    """Save ``counts`` and line facts (``lines``) as a new piece file in ``folder``; its path."""
    fd, path = tempfile.mkstemp(prefix=PIECE_PREFIX, suffix=".pickle", dir=folder)
    with os.fdopen(fd, "wb") as f:
        pickle.dump((tuple(counts), unknown, future), f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def remove_pieces(paths: Iterable[str]) -> None:
    """Remove piece files (those already gone are fine)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def read_piece(path: str) -> Piece:
    with open(path, "rb") as f:
        counts, unknown, future = pickle.load(f)
    return Counts(*counts), unknown, future
