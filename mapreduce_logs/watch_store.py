"""The watcher's counters that grow with cardinality, on disk, and what the report needs of them.

The per-user and per-(subject, window) counts live in SQLite tables, in the checkpoint's database
and inside its transaction (``watch_checkpoint``), so an update writes only the rows it changes::

    users(user, n)                                  valid lines per user
    user_windows(user, window, n)                   valid lines per (user, window)
    services(service, n)                            valid lines per service
    service_windows(service, window, errors, others)
    tail_rows(rid, kind, subject, window, n)        what a provisional tail added, to take back

What is kept incrementally, exactly:

- Totals go in with an upsert that returns the new total of every subject it touched. Counts
  only grow, except when a provisional tail is taken back, so the top lists (``TopList``) are
  the top of (old list + touched subjects); after a total fell, the list keeps only the entries
  it can still vouch for, and is rebuilt by one ``ORDER BY ... LIMIT`` query when it runs short.
- The distinct counts: rows the upsert created, less rows that fell to zero.
- ``error_spike``: a service is judged on its own windows only, so only the services an update
  touched are judged again, from their windows read back.

What takes a pass at every update, reading only:

- The busiest trimmed share S (see ``anomalies``) goes down the top users and stops as soon as
  no later user can beat the best share so far: a user's share is at most
  ``(total - drop) / (all lines - the drop busiest windows' lines)``. Only when the top list
  is exhausted first does it read every user's windows (streamed in key order, one user at a
  time).
- ``user_burst`` candidates come from a partial index of the (user, window) counts of at least
  ``--burst-min-lines``; the bound that S alone puts on the threshold leaves few of them, and
  only their users' windows are read back for their usual rate.

The outputs are the same bytes as a batch run: the same functions of ``anomalies`` and ``spill``
judge the same counts.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import pickle
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from typing import Any, NamedTuple

from . import heavy
from .anomalies import (
    MAX_SHARE,
    SPIKE_RULE_VERSION,
    BurstCandidate,
    Found,
    UserRate,
    WindowTable,
    spikes,
    user_rate,
)
from .partial import Partial, add_counts
from .settings import Settings
from .spill import Digest, PartDigest, finish, top_of
from .watch_lines import COUNTED, FutureRow, LineStore, UnknownRow

ARRAYS_FROM = 20_000
"""A user or service with more windows than this is judged from numpy arrays (``heavy``), not
dicts: a service that logs every minute of a year has 525,600 of them."""

TOP_LIST_SIZE = 1024
"""Entries of the user and service top lists: enough for any --top up to it, and for the
busiest share to stop early on traffic with thousands of similar users."""

PIECE_ROWS = 200_000
"""Rows of a provisional tail read back at a time when it is taken back."""
PIECE_PREFIX = "piece-"
"""Piece files: the counters a worker wrote while it read a big ``.gz``, until they commit."""

USER_LINES, SERVICE_ERRORS, SERVICE_OTHERS = 0, 1, 2
"""``tail_rows.kind``."""

SCHEMA = """
CREATE TABLE users(user BLOB PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE user_windows(
    user BLOB NOT NULL, window INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (user, window)) WITHOUT ROWID;
CREATE TABLE services(service BLOB PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE service_windows(
    service BLOB NOT NULL, window INTEGER NOT NULL, errors INTEGER NOT NULL,
    others INTEGER NOT NULL, PRIMARY KEY (service, window)) WITHOUT ROWID;
CREATE TABLE tail_rows(
    rid INTEGER NOT NULL, kind INTEGER NOT NULL, subject BLOB NOT NULL,
    window INTEGER NOT NULL, n INTEGER NOT NULL);
CREATE INDEX tail_rows_by_rid ON tail_rows(rid);
CREATE INDEX user_windows_by_window ON user_windows(window);
"""

TEMP_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS d_users(user BLOB, n INTEGER);
CREATE TEMP TABLE IF NOT EXISTS d_services(service BLOB, n INTEGER);
CREATE TEMP TABLE IF NOT EXISTS d_user_windows(user BLOB, window INTEGER, n INTEGER);
CREATE TEMP TABLE IF NOT EXISTS d_service_windows(
    service BLOB, window INTEGER, errors INTEGER, others INTEGER);
CREATE TEMP TABLE IF NOT EXISTS quiet(window INTEGER PRIMARY KEY, cut INTEGER);
"""
"""What an update adds, before it is upserted in key order (one statement per table)."""

HOT_INDEX = "hot_user_windows"


class StoreError(Exception):
    """The counters on disk contradict themselves (a damaged checkpoint)."""


Key = tuple[bytes, int]


class Counts(NamedTuple):
    """The counters of a Partial that grow with the number of users and services."""

    users: dict[bytes, int]
    services: dict[bytes, int]
    user_lines: dict[Key, int]
    service_errors: dict[Key, int]
    service_others: dict[Key, int]

    @classmethod
    def empty(cls) -> Counts:
        return cls({}, {}, {}, {}, {})

    def _pairs(self, other: Counts) -> Iterator[tuple[dict[Any, int], dict[Any, int]]]:
        yield self.users, other.users
        yield self.services, other.services
        yield self.user_lines, other.user_lines
        yield self.service_errors, other.service_errors
        yield self.service_others, other.service_others

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

    def rows(self) -> Iterator[tuple[int, bytes, int, int]]:
        """(kind, subject, window, n) of every (subject, window) count."""
        for kind, table in enumerate((self.user_lines, self.service_errors, self.service_others)):
            for (subject, window), n in table.items():
                yield kind, subject, window, n


def take_counts(partial: Partial) -> Counts:
    """Move the high-cardinality counters out of ``partial``, leaving it empty ones."""
    counts = Counts(partial.users, partial.services, partial.user_lines,
                    partial.service_errors, partial.service_others)
    partial.users, partial.services = type(partial.users)(), type(partial.services)()
    partial.user_lines = type(partial.user_lines)()
    partial.service_errors = type(partial.service_errors)()
    partial.service_others = type(partial.service_others)()
    return counts


Piece = tuple[Counts, list[UnknownRow], list[FutureRow]]


def write_piece(folder: str, counts: Counts, unknown: list[UnknownRow], future: list[FutureRow]) -> str:
    """Save ``counts`` and line facts (``watch_lines``) as a new piece file in ``folder``; its path."""
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


def _rank(item: tuple[bytes, int]) -> tuple[int, bytes]:
    return -item[1], item[0]


@dataclass
class TopList:
    """The largest totals, by count descending then key: exact for its ``len(items)`` entries.

    ``complete`` means it holds every subject. Otherwise every subject not in it ranks after
    its last entry, which is what lets an update need only the subjects it touched.
    """

    size: int
    items: list[tuple[bytes, int]] = field(default_factory=list)
    complete: bool = True

    def update(self, changed: Mapping[bytes, int]) -> None:
        """Take the new totals of the subjects an update changed (0: the subject is gone)."""
        if not changed:
            return
        if self.complete:
            merged = dict(self.items)
            merged.update(changed)
            live = {k: n for k, n in merged.items() if n > 0}
        elif self.items:
            # A subject outside the list may rank anywhere after its last entry, so only what
            # ranks no later than that entry is known to be in place.
            bound = _rank(self.items[-1])
            live = {k: n for k, n in self.items if k not in changed}
            live.update((k, n) for k, n in changed.items() if n > 0 and (-n, k) <= bound)
        else:
            return
        if len(live) > self.size:
            self.complete = False
            self.items = top_of(live, self.size)
        else:
            self.items = sorted(live.items(), key=_rank)

    def short(self, need: int) -> bool:
        """Whether fewer than ``need`` of the top entries are known."""
        return not self.complete and len(self.items) < need


@dataclass
class Pass:
    """One reading pass: the windows with traffic as ``anomalies`` judges users against them,
    and the users' rates read so far."""

    window_lines: Mapping[int, int]
    table: WindowTable
    rates: dict[bytes, UserRate | None] = field(default_factory=dict)
    _arrays: heavy.Table | None = None

    def arrays(self) -> heavy.Table:
        """The table as ``heavy.Table`` (made once, when a subject with many windows needs it)."""
        if self._arrays is None:
            self._arrays = heavy.Table.of(self.window_lines)
        return self._arrays


class CountStore:
    """The high-cardinality counters in ``db`` (a connection the checkpoint owns) and the caches
    kept from them. Writes happen inside the checkpoint's transaction."""

    def __init__(self, db: sqlite3.Connection, settings: Settings,
                 top_size: int = TOP_LIST_SIZE) -> None:
        self.db = db
        self.settings = settings
        self.lines = LineStore(db)
        self.top_size = max(top_size, settings.top, 1)
        self.users = TopList(self.top_size)
        self.services = TopList(self.top_size)
        self.distinct_users = 0
        self.distinct_services = 0
        self.spikes: dict[bytes, list[Found]] = {}
        """Each service's error spikes, for the services that have some."""
        self.unjudged: set[bytes] = set()
        """Services whose windows changed since they were last judged: judged when the
        anomalies are next needed (a judgment reads all of a service's windows), and saved
        with the checkpoint until then."""
        self.spike_rules = _spike_rules(settings)
        self.full_passes = 0
        """Passes that read every row of a table (figures and tests)."""

    @staticmethod
    def create(db: sqlite3.Connection) -> None:
        db.executescript(SCHEMA)
        LineStore.create(db)

    # --- the caches, saved with the checkpoint ------------------------------------------------

    def saved(self) -> dict[str, Any]:
        return {
            "users": (self.users.size, self.users.items, self.users.complete),
            "services": (self.services.size, self.services.items, self.services.complete),
            "distinct_users": self.distinct_users,
            "distinct_services": self.distinct_services,
            "spikes": self.spikes,
            "spike_rules": self.spike_rules,
            "unjudged": sorted(self.unjudged),
        }

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Take saved caches back; what other settings make stale is computed again."""
        self.distinct_users = saved["distinct_users"]
        self.distinct_services = saved["distinct_services"]
        for name in ("users", "services"):
            size, items, complete = saved[name]
            top = TopList(size, list(items), complete)
            if size != self.top_size or top.short(self.settings.top):
                top = self._top_from_table(name)
            setattr(self, name, top)
        if saved["spike_rules"] == self.spike_rules:
            self.spikes = saved["spikes"]
            self.unjudged = set(saved.get("unjudged", ()))
        else:
            self._judge_all_services()

    def attach(self) -> None:
        """Make this connection's scratch tables and the index of busy (user, window) counts
        for the current --burst-min-lines (rebuilt when it changed)."""
        self.db.executescript(TEMP_SCHEMA)
        self.lines.attach()
        least = int(self.settings.burst_min_lines)
        row = self.db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (HOT_INDEX,)
        ).fetchone()
        wanted = _hot_index_sql(least)
        if row is None or row[0] != wanted:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(f"DROP INDEX IF EXISTS {HOT_INDEX}")
                self.db.execute(wanted)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def check(self, valid: int) -> None:
        """Raise StoreError unless every table adds up to ``valid`` lines and the distinct
        counts match: a damaged checkpoint is never trusted. Reads every row once."""
        db = self.db
        self.full_passes += 1
        users, user_total = db.execute("SELECT count(*), total(n) FROM users").fetchone()
        services, service_total = db.execute("SELECT count(*), total(n) FROM services").fetchone()
        (window_total,) = db.execute("SELECT total(n) FROM user_windows").fetchone()
        (error_total,) = db.execute(
            "SELECT total(errors) + total(others) FROM service_windows").fetchone()
        found = (users, services, user_total, service_total, window_total, error_total)
        want = (self.distinct_users, self.distinct_services, valid, valid, valid, valid)
        if tuple(map(int, found)) != want:
            raise StoreError(f"its counters do not add up: {found} instead of {want}")

    # --- one update ----------------------------------------------------------------------------

    def apply(
        self,
        counts: Counts,
        dropped_tails: Iterable[int] = (),
        kept_tails: Iterable[int] = (),
        new_tails: Mapping[int, Counts] | None = None,
        tail_pieces: Mapping[int, list[str]] | None = None,
        count_pieces: Iterable[str] = (),
    ) -> None:
        """Write an update inside the caller's transaction: take back the provisional tails
        ``dropped_tails``, count ``kept_tails`` for good, add ``counts`` and the new tails.

        A big tail (a ``.gz``) comes partly as pieces on disk (``tail_pieces``: rid -> piece
        files; ``count_pieces``: pieces counted for good), and a big tail taken back is read back
        in pieces: each piece is applied on its own, so memory holds one at a time."""
        db = self.db
        touched: set[bytes] = set()
        net = counts
        for rid in dropped_tails:
            for piece, whole in self._tail_counts(rid):
                if whole:
                    net.subtract(piece)
                else:
                    piece.negate()
                    touched |= self._add(piece)
            db.execute("DELETE FROM tail_rows WHERE rid = ?", (rid,))
        for rid in kept_tails:
            db.execute("DELETE FROM tail_rows WHERE rid = ?", (rid,))
        for rid, tail in (new_tails or {}).items():
            net.add(tail)
            self._insert_tail_rows(rid, tail)
        touched |= self._add(net)
        for rid, paths in (tail_pieces or {}).items():
            for path in paths:
                piece, tokens, future = read_piece(path)
                self._insert_tail_rows(rid, piece)
                touched |= self._add(piece)
                self.lines.apply([("tokens", rid, tokens), ("future", rid, future)])
        for path in count_pieces:
            piece, tokens, future = read_piece(path)
            touched |= self._add(piece)
            self.lines.apply([("tokens", COUNTED, tokens), ("future", COUNTED, future)])
        if self.users.short(self.settings.top):
            self.users = self._top_from_table("users")
        if self.services.short(self.settings.top):
            self.services = self._top_from_table("services")
        self.unjudged |= touched

    def _add(self, counts: Counts) -> set[bytes]:
        """Add ``counts`` to the tables and the caches; the services whose windows changed."""
        users, new_users = self._add_totals("users", "user", counts.users)
        services, new_services = self._add_totals("services", "service", counts.services)
        self.distinct_users += new_users
        self.distinct_services += new_services
        self._add_user_windows(counts.user_lines)
        touched = self._add_service_windows(counts.service_errors, counts.service_others)
        self.users.update(users)
        self.services.update(services)
        return touched

    def _insert_tail_rows(self, rid: int, counts: Counts) -> None:
        self.db.executemany("INSERT INTO tail_rows VALUES (?, ?, ?, ?, ?)",
                            ((rid, *row) for row in counts.rows()))

    def _tail_counts(self, rid: int) -> Iterator[tuple[Counts, bool]]:
        """What tail ``rid`` added, in pieces of at most PIECE_ROWS rows; True with the piece
        when it is the whole tail."""
        cursor = self.db.execute(
            "SELECT kind, subject, window, n FROM tail_rows WHERE rid = ?", (rid,))
        first = True
        while rows := cursor.fetchmany(PIECE_ROWS):
            counts = Counts.empty()
            tables = (counts.user_lines, counts.service_errors, counts.service_others)
            totals = (counts.users, counts.services, counts.services)
            for kind, subject, window, n in rows:
                key = (subject, window)
                tables[kind][key] = tables[kind].get(key, 0) + n
                totals[kind][subject] = totals[kind].get(subject, 0) + n
            yield counts, first and len(rows) < PIECE_ROWS
            first = False

    def _add_totals(self, table: str, key: str, delta: Mapping[bytes, int]) -> tuple[dict[bytes, int], int]:
        """Add ``delta`` to a totals table; the new total of every subject it changed (0 for one
        now gone) and how many more subjects there are."""
        items = [(k, n) for k, n in delta.items() if n]
        if not items:
            return {}, 0
        db = self.db
        db.executemany(f"INSERT INTO temp.d_{table} VALUES (?, ?)", items)
        rows = db.execute(
            f"INSERT INTO main.{table} SELECT * FROM temp.d_{table} WHERE true ORDER BY 1 "
            f"ON CONFLICT DO UPDATE SET n = n + excluded.n RETURNING {key}, n"
        ).fetchall()
        more = 0
        for subject, n in rows:
            if n < 0:
                raise StoreError(f"{table}: a total fell below zero")
            if n == delta[subject]:
                more += 1  # it was not there
            elif n == 0:
                more -= 1
        if any(n < 0 for _, n in items):
            db.execute(f"DELETE FROM main.{table} WHERE n = 0 AND {key} IN "
                       f"(SELECT {key} FROM temp.d_{table} WHERE n < 0)")
        db.execute(f"DELETE FROM temp.d_{table}")
        return dict(rows), more

    def _add_user_windows(self, delta: Mapping[Key, int]) -> None:
        rows = [(u, w, n) for (u, w), n in delta.items() if n]
        if not rows:
            return
        db = self.db
        db.executemany("INSERT INTO temp.d_user_windows VALUES (?, ?, ?)", rows)
        db.execute(
            "INSERT INTO main.user_windows SELECT * FROM temp.d_user_windows WHERE true "
            "ORDER BY 1, 2 ON CONFLICT DO UPDATE SET n = n + excluded.n"
        )
        if any(n < 0 for _, _, n in rows):
            db.execute(
                "DELETE FROM main.user_windows WHERE n <= 0 AND (user, window) IN "
                "(SELECT user, window FROM temp.d_user_windows WHERE n < 0)"
            )
        db.execute("DELETE FROM temp.d_user_windows")

    def _add_service_windows(self, errors: Mapping[Key, int], others: Mapping[Key, int]) -> set[bytes]:
        """Add the (service, window) counts; the services whose windows changed."""
        keys = {k for k, n in errors.items() if n}
        keys.update(k for k, n in others.items() if n)
        if not keys:
            return set()
        rows = [(s, w, errors.get((s, w), 0), others.get((s, w), 0)) for s, w in keys]
        db = self.db
        db.executemany("INSERT INTO temp.d_service_windows VALUES (?, ?, ?, ?)", rows)
        db.execute(
            "INSERT INTO main.service_windows SELECT * FROM temp.d_service_windows WHERE true "
            "ORDER BY 1, 2 ON CONFLICT DO UPDATE SET errors = errors + excluded.errors, "
            "others = others + excluded.others"
        )
        if any(e < 0 or o < 0 for _, _, e, o in rows):
            db.execute(
                "DELETE FROM main.service_windows WHERE errors = 0 AND others = 0 AND "
                "(service, window) IN (SELECT service, window FROM temp.d_service_windows "
                "WHERE errors < 0 OR others < 0)"
            )
        db.execute("DELETE FROM temp.d_service_windows")
        return {s for s, _ in keys}

    # --- reading ---------------------------------------------------------------------------------

    def _top_from_table(self, table: str) -> TopList:
        """A top list from every total (SQLite's bounded top-N sort)."""
        self.full_passes += 1
        key = "user" if table == "users" else "service"
        rows = self.db.execute(
            f"SELECT {key}, n FROM main.{table} ORDER BY n DESC, {key} LIMIT ?",
            (self.top_size + 1,),
        ).fetchall()
        complete = len(rows) <= self.top_size
        return TopList(self.top_size, rows[: self.top_size], complete)

    def _judge(self, service: bytes) -> None:
        rows = self.db.execute(
            "SELECT window, errors, others FROM service_windows WHERE service = ? ORDER BY window",
            (service,))
        self._judged(service, rows)

    def _judged(self, service: bytes, rows: Iterable[tuple[int, int, int]]) -> None:
        """Judge ``service`` from its (window, errors, others) rows, ascending by window."""
        columns = heavy.columns(rows, 3)
        if len(columns[0]) > ARRAYS_FROM:
            found = heavy.spikes(heavy.service(service, *columns), self.settings)
        else:
            errors: dict[Key, int] = {}
            others: dict[Key, int] = {}
            for window, e, o in zip(*(c.tolist() for c in columns), strict=True):
                if e:
                    errors[(service, window)] = e
                if o:
                    others[(service, window)] = o
            found = spikes(errors, others, self.settings)
        if found:
            self.spikes[service] = found
        else:
            self.spikes.pop(service, None)

    def _judge_all_services(self) -> None:
        self.full_passes += 1
        self.spikes = {}
        self.unjudged.clear()
        rows = self.db.execute(
            "SELECT service, window, errors, others FROM service_windows ORDER BY service, window")
        for service, group in itertools.groupby(rows, key=itemgetter(0)):
            self._judged(service, ((w, e, o) for _, w, e, o in group))

    def _windows_of(self, user: bytes) -> sqlite3.Cursor:
        """(window, lines) of ``user``, ascending by window."""
        return self.db.execute(
            "SELECT window, n FROM user_windows WHERE user = ? ORDER BY window", (user,))

    def _rate(self, user: bytes, p: Pass) -> UserRate | None:
        if user not in p.rates:
            p.rates[user] = self._rate_from(user, self._windows_of(user), p)
        return p.rates[user]

    def _rate_from(self, user: bytes, rows: Iterable[tuple[int, int]], p: Pass) -> UserRate | None:
        """``anomalies.user_rate`` of ``user`` from its (window, lines) rows, ascending; from
        arrays when they are many."""
        windows, counts = heavy.columns(rows, 2)
        if len(windows) <= p.table.drop:
            return None  # seen in at most a tenth of the windows
        if len(windows) > ARRAYS_FROM:
            return heavy.user_rate(heavy.user(user, windows, counts), p.arrays(), self.settings)
        return user_rate(dict(zip(windows.tolist(), counts.tolist(), strict=True)), p.table,
                         self.settings)

    def busiest_share(self, p: Pass) -> float:
        """The largest share of any user (``anomalies.user_share`` over every user)."""
        table = p.table
        if not table.order:
            return 0.0
        floor = table.all_lines - sum(heapq.nlargest(table.drop, table.lines.values()))
        best = 0.0
        for user, total in self.users.items:
            # A user's share is at most its plain trimmed share, whose lines are at most
            # total - drop and whose lines of all at least ``floor``. No user after this one
            # has a larger total, so none can beat this bound.
            if max(0, total - table.drop) / floor <= best:
                return best
            rate = self._rate(user, p)
            if rate is not None:
                best = max(best, rate.share)
        if self.users.complete:
            return best
        if self.users.items and max(0, self.users.items[-1][1] - table.drop) / floor <= best:
            return best
        return self._share_of_everyone(p)

    def _share_of_everyone(self, p: Pass) -> float:
        """The busiest share from every user's windows, one user at a time."""
        self.full_passes += 1
        best = 0.0
        rows = self.db.execute("SELECT user, window, n FROM user_windows ORDER BY user, window")
        for user, group in itertools.groupby(rows, key=itemgetter(0)):
            rate = self._rate_from(user, ((w, n) for _, w, n in group), p)
            if rate is not None and rate.share > best:
                best = rate.share
        return best

    def burst_candidates(self, p: Pass, share: float) -> list[BurstCandidate]:
        """Every window of every run that ``anomalies.bursts`` can report under ``share`` (and
        some it will not), each with its user's usual rate.

        A window is flagged only if its lines reach its *cut*, the threshold with a usual rate
        of 0 (the lowest), and a run of flagged windows is reported only if its lines add up to
        ``--burst-min-lines`` (``least``). So only the windows reaching their cut matter: those
        with ``least`` lines or more come from the partial index of busy counts; those with
        fewer can only be in *quiet* windows, whose cut is under ``least``, and are read by
        window, or through the users with ``least`` lines in all when the top list names them
        all and that reads less. Of all these, the runs of adjacent windows of one user with
        ``least`` lines in all are kept, streamed in (user, window) order.
        """
        settings = self.settings
        least = int(settings.burst_min_lines)
        fs = settings.burst_factor * min(share, MAX_SHARE)

        def cut(lines_there: int) -> int:
            # lines >= fs * (lines_there - lines)  <=>  lines >= fs * lines_there / (1 + fs),
            # lowered a hair so that float rounding cannot drop a window the exact test keeps.
            return max(1, math.ceil(fs * lines_there / (1 + fs) * (1 - 1e-9)))

        wl = p.table.lines
        busy = (
            ((user, window), n)
            for user, window, n in self.db.execute(
                # The partial index's own condition, so that it is used; in its order.
                f"SELECT user, window, n FROM user_windows WHERE n >= {least} "
                "ORDER BY user, window")
            if n >= cut(wl[window])
        )
        # A quiet window is one whose cut is under ``least``; the cut grows with the window's
        # lines, so the quiet ones are those with fewer lines than some ``limit``: found once,
        # then the windows are filtered in C, never gathered (they may be millions).
        limit: float
        if fs == 0:
            limit = 0 if least <= 1 else math.inf  # every cut is 1
        else:
            # cut(lines) >= least once lines >= least * (1 + fs) / fs: the search stops there.
            below = least * (1 + fs) / fs * (1 + 1e-6) + 1
            limit = _first_at_least(lambda lines: cut(lines) >= least, math.ceil(below))
        values = wl.values()
        is_quiet = list(map(limit.__gt__, values))
        quiet = sum(is_quiet)
        by_window = sum(compress(values, is_quiet))
        del is_quiet
        entries = (heapq.merge(busy, self._quiet_entries(limit, cut, quiet, by_window, least, p, fs))
                   if quiet else busy)
        kept = list(_long_runs(entries, least))
        usual: dict[bytes, float] = {}
        out: list[BurstCandidate] = []
        for (user, window), n in kept:
            if user not in usual:
                rate = self._rate(user, p)
                usual[user] = rate.usual if rate is not None else 0.0
            out.append((user, window, n, usual[user]))
        return out

    def _quiet_entries(
        self,
        limit: float,
        cut: Callable[[int], int],
        quiet: int,
        by_window: int,
        least: int,
        p: Pass,
        fs: float,
    ) -> Iterator[tuple[Key, int]]:
        """The (user, window) counts under ``least`` that reach their quiet window's cut, in
        (user, window) order. Quiet windows: those with fewer than ``limit`` lines (``quiet``
        of them, ``by_window`` lines in all)."""
        window_lines = p.window_lines
        busy_users: list[tuple[bytes, int]] | None = None
        if self.users.complete or (self.users.items and self.users.items[-1][1] < least):
            busy_users = [(u, n) for u, n in self.users.items if n >= least]
        if busy_users is not None and sum(n for _, n in busy_users) <= by_window:
            for user, _ in sorted(busy_users):
                windows, counts = heavy.columns(self._windows_of(user), 2)
                if len(windows) > min(ARRAYS_FROM, 64):  # a few lookups cost less in Python
                    chosen = heavy.quiet_entries(windows, counts, p.arrays(), fs, least, limit)
                    for window, n in zip(*chosen, strict=True):
                        yield (user, window), n
                    continue
                for window, n in zip(windows.tolist(), counts.tolist(), strict=True):
                    if n < least and (there := window_lines[window]) < limit and n >= cut(there):
                        yield (user, window), n
            return
        if quiet == len(window_lines):
            self.full_passes += 1
        db = self.db
        db.execute("DELETE FROM temp.quiet")
        db.executemany("INSERT INTO temp.quiet VALUES (?, ?)",
                       ((w, cut(lines)) for w, lines in window_lines.items() if lines < limit))
        rows = db.execute(
            "SELECT uw.user, uw.window, uw.n FROM temp.quiet q CROSS JOIN main.user_windows uw "
            f"ON uw.window = q.window WHERE uw.n >= q.cut AND uw.n < {least} "
            "ORDER BY uw.user, uw.window"
        )
        for user, window, n in rows:
            yield (user, window), n

    def digest(self, window_lines: Mapping[int, int], anomalies: bool = True) -> Digest:
        """What the report needs from these counters, given every window's valid lines.

        Without ``anomalies``, only what the summary needs (no pass over the counters; the
        digest then holds no spikes or bursts)."""
        for name in ("users", "services"):
            if getattr(self, name).short(self.settings.top):
                setattr(self, name, self._top_from_table(name))
        top = self.settings.top
        part = PartDigest(
            top_services=self.services.items[:top],
            top_users=self.users.items[:top],
            distinct_services=self.distinct_services,
            distinct_users=self.distinct_users,
            spikes=[],
            share=0.0,
        )
        if not anomalies:
            return finish(part, [], window_lines, self.settings)
        part = part._replace(service_errors={
            service: int(self.db.execute(
                "SELECT total(errors) FROM service_windows WHERE service = ?", (service,)).fetchone()[0])
            for service, _ in part.top_services})
        for service in sorted(self.unjudged):
            self._judge(service)
        self.unjudged.clear()
        p = Pass(window_lines, WindowTable.of(window_lines))
        share = self.busiest_share(p)
        part = part._replace(
            spikes=[found for service in sorted(self.spikes) for found in self.spikes[service]],
            share=share,
        )
        return finish(part, [self.burst_candidates(p, share)], window_lines, self.settings)


def _first_at_least(reached: Callable[[int], bool], high: int) -> int:
    """The smallest n >= 0 with ``reached(n)`` (monotone), or ``high`` if none below it."""
    low = 0
    while low < high:
        mid = (low + high) // 2
        if reached(mid):
            high = mid
        else:
            low = mid + 1
    return low


def _long_runs(entries: Iterable[tuple[Key, int]], least: int) -> Iterator[tuple[Key, int]]:
    """The entries (sorted by user, then window) that belong to a run of adjacent windows of
    one user whose counts add up to at least ``least``."""
    run: list[tuple[Key, int]] = []
    total = 0
    for entry in entries:
        (user, window), n = entry
        if run and (window != run[-1][0][1] + 1 or user != run[-1][0][0]):
            if total >= least:
                yield from run
            run, total = [], 0
        run.append(entry)
        total += n
    if total >= least:
        yield from run


def _spike_rules(settings: Settings) -> tuple[int, int, float, int]:
    """What the saved error spikes depend on besides the counts."""
    return SPIKE_RULE_VERSION, settings.window, settings.spike_factor, settings.spike_min_errors


def _hot_index_sql(least: int) -> str:
    return (f"CREATE INDEX {HOT_INDEX} ON user_windows(user, window, n) WHERE n >= {least}")
