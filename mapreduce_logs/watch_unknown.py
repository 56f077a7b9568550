"""The watcher's unknown level tokens, on disk: one row per file and token.

A file in another format can put a new token on every line, so the tokens do not stay in
memory. ``unknown`` rows live in the checkpoint's database, inside its transaction::

    unknown(owner, path, generation, token, first, n, examples)

``owner`` is COUNTED for lines counted for good, or the record id of the provisional tail the
row belongs to (taken back with it). ``first`` and the example lines are 0-based line indexes
in the file, not in a chunk. The report takes ``run``'s tokens, the first MAX_UNKNOWN_LEVELS
distinct in input order (sorted sources, then lines), through an index in that order, and
reads only their rows back; it is kept until a change touches the table.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from .partial import MAX_EXAMPLES, Example, Partial, Source
from .scan import MAX_UNKNOWN_LEVELS

COUNTED = -1
"""``owner`` of the rows counted for good."""

SCHEMA = """
CREATE TABLE unknown(
    owner INTEGER NOT NULL, path BLOB NOT NULL, generation INTEGER NOT NULL, token BLOB NOT NULL,
    first INTEGER NOT NULL, n INTEGER NOT NULL, examples BLOB NOT NULL,
    PRIMARY KEY (owner, path, generation, token)) WITHOUT ROWID;
CREATE INDEX unknown_in_order ON unknown(path, generation, first);
CREATE INDEX unknown_by_token ON unknown(token);
"""

_MERGE = (
    "ON CONFLICT DO UPDATE SET first = min(first, excluded.first), "
    f"examples = CASE WHEN n >= {MAX_EXAMPLES} AND first <= excluded.first THEN examples "
    "ELSE first_examples(examples, excluded.examples) END, n = n + excluded.n"
)
"""Joins a row into one already there: counts add, the first examples in line order stay."""

UnknownRow = tuple[str, int, bytes, int, int, list[Example]]
"""(path, generation, token, first line, lines, first examples) of one file's token."""


def take_unknown(partial: Partial, before: int) -> list[UnknownRow]:
    """Move the unknown level tokens out of ``partial`` (the lines of one source), as rows whose
    line indexes count ``before`` lines ahead of the partial's first segment."""
    if not partial.unknown_levels:
        return []
    if len(partial.segments) != 1:
        raise ValueError("unknown level tokens of more or less than one file")
    ((path, generation), segments), = partial.segments.items()
    examples: dict[bytes, list[Example]] = {}
    shift = before
    for segment in segments:
        for token, found in segment.unknown_examples.items():
            mine = examples.setdefault(token, [])
            mine += [(line + shift, text) for line, text in found[: MAX_EXAMPLES - len(mine)]]
        segment.unknown_examples = {}
        shift += segment.newlines
    rows = [(path, generation, token, examples[token][0][0], n, examples[token])
            for token, n in partial.unknown_levels.items()]
    partial.unknown_levels = Counter()
    return rows


def _first_examples(mine: bytes, theirs: bytes) -> bytes:
    joined = sorted(map(tuple, orjson.loads(mine) + orjson.loads(theirs)))
    return orjson.dumps(joined[:MAX_EXAMPLES])


@dataclass
class Report:
    """The tokens ``run`` reports, their counts and, per file, their examples."""

    counts: dict[bytes, int]
    examples: dict[Source, dict[bytes, list[Example]]]


class UnknownStore:
    """The ``unknown`` table of ``db`` (a connection the checkpoint owns)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.report: Report | None = None
        """Kept until the table changes."""

    @staticmethod
    def create(db: sqlite3.Connection) -> None:
        db.executescript(SCHEMA)

    def attach(self) -> None:
        self.db.create_function("first_examples", 2, _first_examples, deterministic=True)

    # --- changes, inside the caller's transaction ------------------------------------------------

    def apply(self, ops: Iterable[tuple[Any, ...]]) -> None:
        """Carry out, in order, what ``State`` noted: ("add", owner, rows), ("drop", owner),
        ("keep", owner): count a tail's rows for good, ("rekey", old source, new source)."""
        for op in ops:
            self.report = None
            getattr(self, "_" + op[0])(*op[1:])

    def _add(self, owner: int, rows: list[UnknownRow]) -> None:
        self.db.executemany(
            f"INSERT INTO unknown VALUES (?, ?, ?, ?, ?, ?, ?) {_MERGE}",
            ((owner, os.fsencode(path), generation, token, first, n, orjson.dumps(examples))
             for path, generation, token, first, n, examples in rows),
        )

    def _drop(self, owner: int) -> None:
        self.db.execute("DELETE FROM unknown WHERE owner = ?", (owner,))

    def _keep(self, owner: int) -> None:
        self.db.execute(
            f"INSERT INTO unknown SELECT {COUNTED}, path, generation, token, first, n, examples "
            f"FROM unknown WHERE owner = ? ORDER BY path, generation, token {_MERGE}", (owner,))
        self._drop(owner)

    def _rekey(self, old: Source, new: Source) -> None:
        self.db.execute(
            "UPDATE unknown SET path = ?, generation = ? WHERE path = ? AND generation = ?",
            (os.fsencode(new[0]), new[1], os.fsencode(old[0]), old[1]))

    # --- reading ---------------------------------------------------------------------------------

    def lines(self) -> int:
        """Lines the rows count (for the checkpoint's check)."""
        return int(self.db.execute("SELECT total(n) FROM unknown").fetchone()[0])

    def reported(self) -> Report:
        """The first MAX_UNKNOWN_LEVELS distinct tokens in input order, with every line of them."""
        if self.report is not None:
            return self.report
        db = self.db
        sources = sorted((os.fsdecode(path), generation) for path, generation in db.execute(
            "SELECT DISTINCT path, generation FROM unknown ORDER BY 1, 2"))
        first: dict[bytes, None] = {}
        for path, generation in sources:
            rows = db.execute(
                "SELECT token FROM unknown WHERE path = ? AND generation = ? ORDER BY first",
                (os.fsencode(path), generation))
            for (token,) in rows:
                first.setdefault(token)
                if len(first) == MAX_UNKNOWN_LEVELS:
                    break
            rows.close()
            if len(first) == MAX_UNKNOWN_LEVELS:
                break
        counts: dict[bytes, int] = {}
        examples: dict[Source, dict[bytes, list[Example]]] = {}
        for token in first:
            for path, generation, n, found in db.execute(
                "SELECT path, generation, n, examples FROM unknown WHERE token = ?", (token,)
            ):
                counts[token] = counts.get(token, 0) + n
                mine = examples.setdefault((os.fsdecode(path), generation), {})
                mine[token] = sorted(mine.get(token, []) + [tuple(e) for e in orjson.loads(found)])
        self.report = Report(counts, examples)
        return self.report


def with_reported(view: Partial, report: Report) -> Partial:
    """``view`` (which holds no tokens) with the reported tokens: their counts, and their
    examples in the first segment of each file (line indexes are from the file's start).
    Shares what it does not change."""
    segments = dict(view.segments)
    for source, found in report.examples.items():
        mine = segments.get(source)
        if not mine:
            raise ValueError(f"unknown level tokens of {source} but no counted lines")
        segments[source] = [
            replace(mine[0], unknown_examples={t: e[:MAX_EXAMPLES] for t, e in found.items()}),
            *mine[1:],
        ]
    return replace(view, unknown_levels=Counter(report.counts), segments=segments)
