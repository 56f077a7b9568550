"""The watcher's facts about single lines, on disk: unknown level tokens and future stamps.

Both can grow with the input (a file in another format can put a new token on every line; a
host whose clock runs ahead stamps every line in the future), so neither stays in memory. Rows
live in the checkpoint's database, inside its transaction::

    unknown(owner, path, generation, token, first, n, examples)   one per file and token
    future(path, generation, line, owner, stamp, text)            one per future-stamped line

``owner`` is COUNTED for lines counted for good, or the record id of the provisional tail the
row belongs to (taken back with it). Line indexes are 0-based from the file's start.

The report takes ``run``'s tokens, the first ``limits().unknown_levels`` distinct in input order (sorted
sources, then lines), through an index in that order, and reads only their rows back.

``run`` flags a line stamped more than ``--clock-skew`` after its file's modification time when
it runs; the watcher reads a growing file's lines at earlier times, when the file's mtime was
smaller. So every line flagged when it was read is kept, and the report flags those stamped
after the file's newest mtime (plus the skew): a settled folder gives ``run``'s answer. Rows that
the newest mtime no longer flags are pruned as it moves on. Both are kept until a change touches
the tables.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import orjson

from ..model.partial import MAX_EXAMPLES, Example, Partial, Segment, Source
from ..settings import limits

COUNTED = -1
"""``owner`` of the rows counted for good."""

SCHEMA = """
CREATE TABLE unknown(
    owner INTEGER NOT NULL, path BLOB NOT NULL, generation INTEGER NOT NULL, token BLOB NOT NULL,
    first INTEGER NOT NULL, n INTEGER NOT NULL, examples BLOB NOT NULL,
    PRIMARY KEY (owner, path, generation, token)) WITHOUT ROWID;
CREATE INDEX unknown_in_order ON unknown(path, generation, first);
CREATE INDEX unknown_by_token ON unknown(token);
CREATE TABLE future(
    path BLOB NOT NULL, generation INTEGER NOT NULL, line INTEGER NOT NULL,
    owner INTEGER NOT NULL, stamp BLOB NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (path, generation, line)) WITHOUT ROWID;
CREATE INDEX future_by_owner ON future(owner);
"""

_MERGE = (
    "ON CONFLICT DO UPDATE SET first = min(first, excluded.first), "
    f"examples = CASE WHEN n >= {MAX_EXAMPLES} AND first <= excluded.first THEN examples "
    "ELSE first_examples(examples, excluded.examples) END, n = n + excluded.n"
)
"""Joins a token's row into one already there: counts add, the first examples in line order stay."""

STAMP_BIAS = 1 << 66
"""Added to a timestamp in ns (years 1-9999) to store it as 9 bytes that sort as it does."""

UnknownRow = tuple[str, int, bytes, int, int, list[Example]]
"""(path, generation, token, first line, lines, first examples) of one file's token."""

FutureRow = tuple[str, int, int, int, str]
"""(path, generation, line, timestamp in ns, example text) of one future-stamped line."""


@dataclass(frozen=True, slots=True)
class AddTokens:
    """Unknown level rows of ``owner`` (a tail's rid, or COUNTED for good)."""

    owner: int
    rows: list[UnknownRow]


@dataclass(frozen=True, slots=True)
class AddFuture:
    """Future-stamped line rows of ``owner``."""

    owner: int
    rows: list[FutureRow]


@dataclass(frozen=True, slots=True)
class DropTail:
    """Forget the rows of a tail taken back."""

    owner: int


@dataclass(frozen=True, slots=True)
class KeepTail:
    """Count a tail's rows for good (its file was replaced)."""

    owner: int


@dataclass(frozen=True, slots=True)
class Rekey:
    """A file's rows move to its new (path, generation)."""

    old: Source
    new: Source


@dataclass(frozen=True, slots=True)
class Prune:
    """Forget the future lines of ``source`` stamped at or before ``after``."""

    source: Source
    after: int


LineChange = AddTokens | AddFuture | DropTail | KeepTail | Rekey | Prune
"""What ``State`` notes for the line tables, carried out in order at the next commit."""


def _stamp(ts: int) -> bytes:
    return (ts + STAMP_BIAS).to_bytes(9, "big")


def _one_source(partial: Partial) -> tuple[Source, list[Segment]]:
    if len(partial.segments) != 1:
        raise ValueError("line facts of more or less than one file")
    ((source, segments),) = partial.segments.items()
    return source, segments


def take_unknown(partial: Partial, before: int) -> list[UnknownRow]:
    """Move the unknown level tokens out of ``partial`` (the lines of one source), as rows whose
    line indexes count ``before`` lines ahead of the partial's first segment."""
    if not partial.unknown_levels:
        return []
    (path, generation), segments = _one_source(partial)
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


def take_future(partial: Partial, before: int) -> list[FutureRow]:
    """Move the future-stamped lines out of ``partial``'s segments (one source), as rows."""
    if not any(s.future_lines for segments in partial.segments.values() for s in segments):
        return []
    (path, generation), segments = _one_source(partial)
    rows: list[FutureRow] = []
    shift = before
    for segment in segments:
        rows += [(path, generation, line + shift, ts, text)
                 for line, ts, text in segment.future_lines or []]
        if segment.future_lines:
            segment.future_lines = []  # a scanner that flushed goes on adding to it
        shift += segment.newlines
    return rows


def _first_examples(mine: bytes, theirs: bytes) -> bytes:
    joined = sorted(map(tuple, orjson.loads(mine) + orjson.loads(theirs)))
    return orjson.dumps(joined[:MAX_EXAMPLES])


@dataclass
class Report:
    """What the outputs show of these facts."""

    counts: dict[bytes, int]
    """The tokens ``run`` reports, and their lines."""
    examples: dict[Source, dict[bytes, list[Example]]]
    """Per file, the examples of those tokens."""
    future: dict[Source, tuple[int, list[Example]]]
    """Per file, the future-stamped lines now (count and first examples)."""


class LineStore:
    """The ``unknown`` and ``future`` tables of ``db`` (a connection the checkpoint owns)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.report: Report | None = None
        """Kept until the tables change."""

    @staticmethod
    def create(db: sqlite3.Connection) -> None:
        db.executescript(SCHEMA)

    def attach(self) -> None:
        self.db.create_function("first_examples", 2, _first_examples, deterministic=True)

    # --- changes, inside the caller's transaction ------------------------------------------------

    def apply(self, changes: Iterable[LineChange]) -> None:
        """Carry out, in order, what ``State`` noted."""
        for change in changes:
            self.report = None
            match change:
                case AddTokens(owner, rows):
                    self._tokens(owner, rows)
                case AddFuture(owner, rows):
                    self._future(owner, rows)
                case DropTail(owner):
                    self._drop(owner)
                case KeepTail(owner):
                    self._keep(owner)
                case Rekey(old, new):
                    self._rekey(old, new)
                case Prune(source, after):
                    self._prune(source, after)

    def _tokens(self, owner: int, rows: list[UnknownRow]) -> None:
        self.db.executemany(
            f"INSERT INTO unknown VALUES (?, ?, ?, ?, ?, ?, ?) {_MERGE}",
            ((owner, os.fsencode(path), generation, token, first, n, orjson.dumps(examples))
             for path, generation, token, first, n, examples in rows),
        )

    def _future(self, owner: int, rows: list[FutureRow]) -> None:
        self.db.executemany(
            "INSERT INTO future VALUES (?, ?, ?, ?, ?, ?)",
            ((os.fsencode(path), generation, line, owner, _stamp(ts), text)
             for path, generation, line, ts, text in rows),
        )

    def _drop(self, owner: int) -> None:
        self.db.execute("DELETE FROM unknown WHERE owner = ?", (owner,))
        self.db.execute("DELETE FROM future WHERE owner = ?", (owner,))

    def _keep(self, owner: int) -> None:
        self.db.execute(
            f"INSERT INTO unknown SELECT {COUNTED}, path, generation, token, first, n, examples "
            f"FROM unknown WHERE owner = ? ORDER BY path, generation, token {_MERGE}", (owner,))
        self.db.execute("DELETE FROM unknown WHERE owner = ?", (owner,))
        self.db.execute(f"UPDATE future SET owner = {COUNTED} WHERE owner = ?", (owner,))

    def _rekey(self, old: Source, new: Source) -> None:
        for table in ("unknown", "future"):
            self.db.execute(
                f"UPDATE {table} SET path = ?, generation = ? WHERE path = ? AND generation = ?",
                (os.fsencode(new[0]), new[1], os.fsencode(old[0]), old[1]))

    def _prune(self, source: Source, after: int) -> None:
        self.db.execute(
            "DELETE FROM future WHERE path = ? AND generation = ? AND stamp <= ?",
            (os.fsencode(source[0]), source[1], _stamp(after)))

    # --- reading ---------------------------------------------------------------------------------

    def token_lines(self) -> int:
        """Lines the token rows count (for the checkpoint's check)."""
        return int(self.db.execute("SELECT total(n) FROM unknown").fetchone()[0])

    def reported(self, future_after: Mapping[Source, int]) -> Report:
        """The report, given for each file the stamp past which its lines are in the future
        (cached: the caller must ask again after changing ``future_after``, see ``forget``)."""
        if self.report is None:
            counts, examples = self._tokens_reported()
            self.report = Report(counts, examples, self._future_reported(future_after))
        return self.report

    def forget(self) -> None:
        self.report = None

    def _sources(self, table: str) -> list[Source]:
        return sorted((os.fsdecode(path), generation) for path, generation in self.db.execute(
            f"SELECT DISTINCT path, generation FROM {table}"))

    def _tokens_reported(self) -> tuple[dict[bytes, int], dict[Source, dict[bytes, list[Example]]]]:
        """The first ``limits().unknown_levels`` distinct tokens in input order, with every line of them."""
        db = self.db
        first: dict[bytes, None] = {}
        for path, generation in self._sources("unknown"):
            rows = db.execute(
                "SELECT token FROM unknown WHERE path = ? AND generation = ? ORDER BY first",
                (os.fsencode(path), generation))
            for (token,) in rows:
                first.setdefault(token)
                if len(first) == limits().unknown_levels:
                    break
            rows.close()
            if len(first) == limits().unknown_levels:
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
        return counts, examples

    def _future_reported(self, future_after: Mapping[Source, int]) -> dict[Source, tuple[int, list[Example]]]:
        out: dict[Source, tuple[int, list[Example]]] = {}
        for source in self._sources("future"):
            # A file with no mtime known is judged as its lines were when read.
            after = future_after.get(source, -STAMP_BIAS)
            key = (os.fsencode(source[0]), source[1], _stamp(after))
            (count,) = self.db.execute(
                "SELECT count(*) FROM future WHERE path = ? AND generation = ? AND stamp > ?", key
            ).fetchone()
            if count:
                found = self.db.execute(
                    "SELECT line, text FROM future WHERE path = ? AND generation = ? AND stamp > ? "
                    f"ORDER BY line LIMIT {MAX_EXAMPLES}", key).fetchall()
                out[source] = (count, [(line, text) for line, text in found])
        return out


def with_reported(view: Partial, report: Report) -> Partial:
    """``view`` (which holds no tokens, and future counts as they were when lines were read)
    with what ``report`` says: the reported tokens with their counts, and each file's future
    lines now; examples go in the first segment of each file (line indexes from the file's
    start). Shares what it does not change."""
    segments = dict(view.segments)
    for source, mine in view.segments.items():
        tokens = report.examples.get(source)
        future, future_examples = report.future.get(source, (0, []))
        if not tokens and not future and not any(s.future for s in mine):
            continue
        if not mine:
            raise ValueError(f"line facts of {source} but no counted lines")
        first = replace(
            mine[0],
            unknown_examples={t: e[:MAX_EXAMPLES] for t, e in (tokens or {}).items()},
            future=future,
            future_examples=future_examples,
        )
        segments[source] = [first, *(replace(s, future=0, future_examples=[]) for s in mine[1:])]
    return replace(view, unknown_levels=Counter(report.counts), segments=segments)
