"""The watcher's checkpoint: one SQLite database, one transaction per update.

``OUT/.watch/state.sqlite`` (write-ahead log, ``synchronous=FULL``) holds::

    meta(key, value)                  format, what the state depends on, commit number, and
                                      the small totals with the store's caches (one piece)
    files(rid, record)                one FileRecord per file
    segments(path, generation, ...)   line-order facts, one row per source
    tails(rid, partial)               the small part of each provisional tail
    windows(window, n)                valid lines per window, counted for good
    + the high-cardinality counters of ``store`` and the line facts of ``lines``

A commit is ``BEGIN IMMEDIATE``, the rows that changed, ``COMMIT``: the counters, the file
offsets and everything the outputs are built from change together or not at all, and a
``kill -9`` at any instant leaves the last commit. An update writes what it changed (the rows of
the users, windows and files it touched), never the whole state. The outputs are rewritten from
the committed state after each commit and when the watcher starts.

Loading trusts nothing it has not checked: SQLite's ``quick_check`` of every page, the format
and what the state depends on (folder, window, clock skew, --tz, --since, --until), a SHA-256
of every pickled piece, and that every counter table adds up to the valid lines counted. Any
failure means the checkpoint is not trusted: the caller is told why and starts again from the
files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sqlite3
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import CheckpointError, StoreError
from ..model.digest import Digest
from ..model.partial import Partial, Source
from ..model.windows import WindowLines
from ..settings import Settings, limits
from .lines import with_reported
from .pieces import PIECE_PREFIX, remove_pieces
from .state import FileRecord, State
from .store import CountStore

FORMAT = 8
DATABASE = "state.sqlite"
WAL_KEPT = 64 << 20
"""Bytes of write-ahead log left on disk after it is copied into the database."""
CACHE_SHARE = 0.08
"""Share of ``--memory-mb`` for SQLite's page cache (the OS caches the rest of the file)."""

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE files(rid INTEGER PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE segments(
    path BLOB NOT NULL, generation INTEGER NOT NULL, segments BLOB NOT NULL,
    PRIMARY KEY (path, generation));
CREATE TABLE tails(rid INTEGER PRIMARY KEY, partial BLOB NOT NULL);
CREATE TABLE windows(window INTEGER PRIMARY KEY, n INTEGER NOT NULL);
"""



def _sealed(value: object) -> bytes:
    """``value`` pickled, after a SHA-256 of the pickle."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return hashlib.sha256(data).digest() + data


def _opened(blob: bytes, what: str) -> Any:
    digest, data = bytes(blob[:32]), bytes(blob[32:])
    if hashlib.sha256(data).digest() != digest:
        raise CheckpointError(f"damaged {what} (its SHA-256 differs)")
    try:
        return pickle.loads(data)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "damaged"
        raise CheckpointError(f"{what} cannot be read back: {err!r}") from None


class Checkpoint:
    """The committed state of one watcher, in ``folder``. ``meta`` is what the state depends on."""

    def __init__(self, folder: str, meta: dict[str, Any], settings: Settings,
                 top_size: int | None = None) -> None:
        self.folder = folder
        self.path = os.path.join(folder, DATABASE)
        self.meta = meta
        self.settings = settings
        self.top_size = top_size
        self.seq = 0
        self.db: sqlite3.Connection | None = None
        self.store: CountStore | None = None

    # --- opening -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            kib = max(2048, int(self.settings.memory_mb * 1000 * CACHE_SHARE))
            db.execute(f"PRAGMA cache_size = -{kib}")
            db.execute("PRAGMA mmap_size = 0")
            # The write-ahead log is copied into the database by ``settle()``, after the
            # outputs are written, rather than inside the commit that the outputs wait for.
            db.execute("PRAGMA wal_autocheckpoint = 0")
            db.execute(f"PRAGMA journal_size_limit = {WAL_KEPT}")
        except BaseException:
            db.close()
            raise
        return db

    def _new_store(self, db: sqlite3.Connection) -> CountStore:
        if self.top_size is None:
            return CountStore(db, self.settings)
        return CountStore(db, self.settings, self.top_size)

    def load(self) -> State:
        """The committed state. Raises CheckpointError when it is missing, damaged or foreign.

        Piece files left by an update that never committed are removed."""
        self.close()
        self.remove_pieces()
        if not os.path.exists(self.path):
            raise CheckpointError(f"{self.path}: missing")
        if os.path.getsize(self.path) == 0:
            raise CheckpointError(f"{self.path}: empty")
        try:
            db = self._connect()
        except sqlite3.Error as err:
            raise CheckpointError(f"{self.path}: {err}") from None
        try:
            state = self._load(db)
        except (sqlite3.Error, StoreError, CheckpointError) as err:
            db.close()
            raise CheckpointError(f"{self.path}: {err}") from None
        return state

    def _load(self, db: sqlite3.Connection) -> State:
        problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise CheckpointError(f"damaged pages: {'; '.join(problems)}")
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:
            raise CheckpointError("no watch state in it") from None
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"not a checkpoint of format {FORMAT}")
        if "small" not in meta or "meta" not in meta:
            raise CheckpointError("never committed")
        saved_meta = _opened(meta["meta"], "description")
        if saved_meta != self.meta:
            if not isinstance(saved_meta, dict):
                raise CheckpointError(f"made for {saved_meta!r}")
            changed = ", ".join(
                f"{key} {saved_meta.get(key)!r} (now {self.meta.get(key)!r})"
                for key in sorted(saved_meta.keys() | self.meta.keys(), key=str)
                if saved_meta.get(key) != self.meta.get(key))
            raise CheckpointError(f"made with other settings: {changed}")
        small = _opened(meta["small"], "totals")
        records = [_opened(blob, f"file record {rid}")
                   for rid, blob in db.execute("SELECT rid, record FROM files")]
        segments: dict[Source, list[Any]] = {}
        for path, generation, blob in db.execute("SELECT path, generation, segments FROM segments"):
            segments[(os.fsdecode(path), generation)] = _opened(blob, f"segments of {path!r}")
        tails = {rid: _opened(blob, f"tail {rid}")
                 for rid, blob in db.execute("SELECT rid, partial FROM tails")}
        window_lines = _windows(db)
        if not all(isinstance(r, FileRecord) for r in records) or not all(
            isinstance(t, Partial) for t in tails.values()
        ):
            raise CheckpointError("records or tails of another kind")
        state = State.rebuilt(self.settings.clock_skew_ns, small["state"], window_lines,
                              segments, records, tails)
        if sum(window_lines.values()) != state.partial.valid:
            raise CheckpointError("the lines per window do not add up")
        if state.shape() != tuple(small["state"]["shape"]):
            raise CheckpointError("its files, segments or tails are not all there")
        store = self._new_store(db)
        store.attach()
        store.restore(small["store"])
        store.check(state.partial.valid + sum(t.valid for t in tails.values()))
        unknown = sum(p.malformed.get("unknown_level", 0) for p in (state.partial, *tails.values()))
        if store.lines.token_lines() != unknown:
            raise CheckpointError("its unknown level tokens do not add up")
        self.seq = int(meta["seq"])
        self.db, self.store = db, store
        return state

    def reset(self, clock_skew_ns: int) -> State:
        """Throw away whatever is on disk and commit an empty state."""
        self.close()
        os.makedirs(self.folder, exist_ok=True)
        for name in os.listdir(self.folder):
            if name.startswith((DATABASE, PIECE_PREFIX)) or name.endswith((".pickle", ".json", ".tmp")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.folder, name))
        db = self._connect()
        db.executescript(SCHEMA)
        CountStore.create(db)
        db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
        db.execute("INSERT INTO meta VALUES ('meta', ?)", (_sealed(self.meta),))
        store = self._new_store(db)
        store.attach()
        self.db, self.store, self.seq = db, store, 0
        state = State(clock_skew_ns)
        state.pending.small = True
        self.commit(state)
        return state

    def remove_pieces(self) -> None:
        """Remove every piece file left in the folder."""
        with contextlib.suppress(FileNotFoundError):
            remove_pieces(os.path.join(self.folder, name) for name in os.listdir(self.folder)
                          if name.startswith(PIECE_PREFIX))

    def close(self) -> None:
        db, self.db, self.store = self.db, None, None
        if db is not None:
            db.close()

    # --- committing ------------------------------------------------------------------------------

    def commit(self, state: State) -> None:
        """Write what changed in ``state`` since the last commit, atomically."""
        db, store = self.db, self.store
        assert db is not None and store is not None, "the checkpoint is not open"
        p = state.pending
        db.execute("BEGIN IMMEDIATE")
        try:
            store.lines.apply(p.lines)
            store.apply(p.counts, sorted(p.dropped_tails), sorted(p.kept_tails), p.new_tails,
                        p.tail_pieces, p.count_pieces)
            _upsert(db, "INSERT INTO windows VALUES (?, ?) ON CONFLICT DO UPDATE "
                        "SET n = n + excluded.n", sorted(p.windows.items()))
            for rid in sorted(p.records):
                _put(db, "files", (rid,), state.records.get(rid))
            for path, generation in sorted(p.sources):
                _put(db, "segments", (os.fsencode(path), generation),
                     state.partial.segments.get((path, generation)))
            for rid in sorted(p.tails):
                _put(db, "tails", (rid,), state.tails.get(rid))
            small = {"state": state.small(), "store": store.saved()}
            db.execute("INSERT OR REPLACE INTO meta VALUES ('small', ?)", (_sealed(small),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (self.seq + 1,))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self.seq += 1
        remove_pieces(state.pieces())
        state.committed()

    def with_lines(self, view: Partial, future_after: Mapping[Source, int]) -> Partial:
        """``view`` with the unknown level tokens and future-stamped lines the report shows,
        given each file's newest mtime plus the skew (see ``lines``)."""
        assert self.store is not None, "the checkpoint is not open"
        return with_reported(view, self.store.lines.reported(future_after))

    def digest(self, window_lines: Mapping[int, int], anomalies: bool = True) -> Digest:
        """What the report needs from the counters on disk (see ``CountStore.digest``)."""
        assert self.store is not None, "the checkpoint is not open"
        return self.store.digest(window_lines, anomalies)

    def settle(self) -> None:
        """Copy the write-ahead log into the database (it is truncated to WAL_KEPT bytes)."""
        if self.db is not None:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def size(self) -> int:
        """Bytes the checkpoint takes on disk (database and write-ahead log)."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(self.path + suffix)
        return total


_KEYS = {"files": ("rid",), "segments": ("path", "generation"), "tails": ("rid",)}
"""The key columns of the tables of pieces that ``_put`` writes."""


def _put(db: sqlite3.Connection, table: str, key: tuple[Any, ...], value: object | None) -> None:
    """Row ``key`` of ``table`` holds ``value`` sealed, or is gone when ``value`` is None."""
    if value is None:
        where = " AND ".join(f"{column} = ?" for column in _KEYS[table])
        db.execute(f"DELETE FROM {table} WHERE {where}", key)
    else:
        marks = ", ".join("?" * (len(key) + 1))
        db.execute(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", (*key, _sealed(value)))


def _windows(db: sqlite3.Connection) -> Mapping[int, int]:
    """The lines per window saved: a dict, or sorted arrays past ``limits().window_buffer`` windows."""
    (count,) = db.execute("SELECT count(*) FROM windows").fetchone()
    if count <= limits().window_buffer:
        return dict(db.execute("SELECT window, n FROM windows").fetchall())
    keys, values = array("q"), array("q")
    for window, n in db.execute("SELECT window, n FROM windows ORDER BY window"):
        keys.append(window)
        values.append(n)
    return WindowLines(keys, values)


def _upsert(db: sqlite3.Connection, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
    rows = list(rows)
    if rows:
        db.executemany(sql, rows)


def committed_seq(folder: str) -> int:
    """The number of the last commit in the checkpoint ``folder`` (0 when none can be read);
    for tests and benchmarks watching a running watcher from outside."""
    path = os.path.join(folder, DATABASE)
    if not os.path.exists(path):
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0

