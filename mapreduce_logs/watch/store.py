"""The watcher's counters that grow with cardinality, on disk, and what the report needs of them.

The per-user and per-(subject, window) counts live in SQLite tables, in the checkpoint's database
and inside its transaction (``checkpoint``), so an update writes only the rows it changes::

    users(user, n)                                  valid lines per user
    user_windows(user, window, n)                   valid lines per (user, window)
    services(service, n)                            valid lines per service
    service_windows(service, window, errors, others)
    user_errors(user, n)                            ERROR, CRITICAL and FATAL lines per user
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

- The busiest trimmed share S (see ``rules``) goes down the top users and stops as soon as
  no later user can beat the best share so far: a user's share is at most
  ``(total - drop) / (all lines - the drop busiest windows' lines)``. Only when the top list
  is exhausted first does it read every user's windows (streamed in key order, one user at a
  time).
- ``user_burst`` candidates come from a partial index of the (user, window) counts of at least
  ``--burst-min-lines``; the bound that S alone puts on the threshold leaves few of them, and
  only their users' windows are read back for their usual rate.

The outputs are the same bytes as a batch run: the same functions of ``rules`` and ``spill``
judge the same counts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..detect.rules import SPIKE_RULE_VERSION
from ..errors import StoreError
from ..model.digest import Found, Key
from ..settings import Settings
from .judgments import Judgments
from .lines import COUNTED, AddFuture, AddTokens, LineStore
from .pieces import PIECE_ROWS, Counts, read_piece
from .toplist import TopList

TOP_LIST_SIZE = 1024
"""Entries of the user and service top lists: enough for any --top up to it, and for the
busiest share to stop early on traffic with thousands of similar users."""


SCHEMA = """
CREATE TABLE users(user BLOB PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE user_windows(
    user BLOB NOT NULL, window INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (user, window)) WITHOUT ROWID;
CREATE TABLE services(service BLOB PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE service_windows(
    service BLOB NOT NULL, window INTEGER NOT NULL, errors INTEGER NOT NULL,
    others INTEGER NOT NULL, PRIMARY KEY (service, window)) WITHOUT ROWID;
CREATE TABLE user_errors(user BLOB PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE tail_rows(
    rid INTEGER NOT NULL, kind INTEGER NOT NULL, subject BLOB NOT NULL,
    window INTEGER NOT NULL, n INTEGER NOT NULL);
CREATE INDEX tail_rows_by_rid ON tail_rows(rid);
CREATE INDEX user_windows_by_window ON user_windows(window);
"""

TEMP_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS d_users(user BLOB, n INTEGER);
CREATE TEMP TABLE IF NOT EXISTS d_user_errors(user BLOB, n INTEGER);
CREATE TEMP TABLE IF NOT EXISTS d_services(service BLOB, n INTEGER);
CREATE TEMP TABLE IF NOT EXISTS d_user_windows(user BLOB, window INTEGER, n INTEGER);
CREATE TEMP TABLE IF NOT EXISTS d_service_windows(
    service BLOB, window INTEGER, errors INTEGER, others INTEGER);
CREATE TEMP TABLE IF NOT EXISTS quiet(window INTEGER PRIMARY KEY, cut INTEGER);
"""
"""What an update adds, before it is upserted in key order (one statement per table)."""

HOT_INDEX = "hot_user_windows"


class CountStore(Judgments):
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
        error_total, service_errors = db.execute(
            "SELECT total(errors) + total(others), total(errors) FROM service_windows").fetchone()
        (user_errors,) = db.execute("SELECT total(n) FROM user_errors").fetchone()
        found = (users, services, user_total, service_total, window_total, error_total, user_errors)
        want = (self.distinct_users, self.distinct_services, valid, valid, valid, valid,
                int(service_errors))
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
                self.lines.apply([AddTokens(rid, tokens), AddFuture(rid, future)])
        for path in count_pieces:
            piece, tokens, future = read_piece(path)
            touched |= self._add(piece)
            self.lines.apply([AddTokens(COUNTED, tokens), AddFuture(COUNTED, future)])
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
        self._add_user_errors(counts.user_errors)
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
            tables = counts.windowed()
            totals = (counts.users, counts.services, counts.services, None)
            for kind, subject, window, n in rows:
                key = (subject, window)
                tables[kind][key] = tables[kind].get(key, 0) + n
                if (total := totals[kind]) is not None:
                    total[subject] = total.get(subject, 0) + n
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

    def _add_user_errors(self, delta: Mapping[Key, int]) -> None:
        """Add the error lines of (user, window) to their users' totals (a user whose total
        falls to 0 is removed)."""
        per_user: dict[bytes, int] = {}
        for (user, _), n in delta.items():
            per_user[user] = per_user.get(user, 0) + n
        rows = [(u, n) for u, n in per_user.items() if n]
        if not rows:
            return
        db = self.db
        db.executemany("INSERT INTO temp.d_user_errors VALUES (?, ?)", rows)
        db.execute(
            "INSERT INTO main.user_errors SELECT * FROM temp.d_user_errors WHERE true "
            "ORDER BY 1 ON CONFLICT DO UPDATE SET n = n + excluded.n"
        )
        if any(n < 0 for _, n in rows):
            db.execute("DELETE FROM main.user_errors WHERE n <= 0 AND user IN "
                       "(SELECT user FROM temp.d_user_errors WHERE n < 0)")
        db.execute("DELETE FROM temp.d_user_errors")

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

def _spike_rules(settings: Settings) -> tuple[int, int, float, int]:
    """What the saved error spikes depend on besides the counts."""
    return SPIKE_RULE_VERSION, settings.window, settings.spike_factor, settings.spike_min_errors


def _hot_index_sql(least: int) -> str:
    return (f"CREATE INDEX {HOT_INDEX} ON user_windows(user, window, n) WHERE n >= {least}")
