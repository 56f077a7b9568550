"""watch DIR: count what is in DIR, then keep the outputs current as files arrive or grow.

The loop: paths to look at come from file notifications (a bounded set, see ``watch_events``),
from a full rescan every ``rescan_seconds`` (so a missed event never loses a file), and from
unterminated last lines whose settle time has come. Each step looks at some of them, cuts the new
bytes with ``split_file``, maps them with ``map_split`` on the same executor as ``run``, merges
the results, commits the checkpoint, then rewrites the outputs from the committed state.

Choices (SPEC.md section 6 leaves them open):
- A file is (device, inode, digest of its first counted bytes, up to 1 KiB). A renamed file keeps
  its counts and goes on where it left off; examples and per-file anomalies then show its new
  path, as ``run`` would. A deleted file's counts stay, under the path it had last.
- A file whose size fell below what was counted, or whose first counted bytes changed, or a new
  inode at a known path, is a new generation read from 0; what the old one counted stays.
- ``totals.files`` counts every generation seen (an empty file too, as ``run`` does); a file that
  left before any of its bytes was counted leaves no trace.
- An unterminated last line is counted, provisionally, once the file has not changed for
  ``settle`` seconds; if the file then grows, it is counted again with what follows (once), so a
  settled folder gives exactly what ``run`` gives. A ``.gz`` file is read whole once settled, and
  again whole if it changes.
- ``future_timestamp`` keeps every line flagged when it was read and reports those stamped
  after the file's newest modification time (plus the skew), as ``run`` would judge them now.
  A file whose modification time goes back (``touch -d``) is not read again for lines that the
  older time would flag.
- A second name of the same inode (a hard link) is counted once, under the first name seen.
  Files under the output folder are never input. The checkpoint is tied to DIR as spelled on
  the command line and to ``--window`` and ``--clock-skew``: with others it is reported and the
  files are counted again from the start.

Memory: the work in flight is bounded (a bounded set of paths, batches of at most
``--memory-mb``/25 bytes), and so is the state in memory: the counters that grow with users and
services live in the checkpoint's SQLite database (``watch_store``), and only what stays small
(totals, lines per window, per-file facts) is held here.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import signal
import sqlite3
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import FrameType

from watchdog.observers.api import BaseObserver

from .engine import (
    CancelledError,
    Executor,
    PoolExecutor,
    SerialExecutor,
    uncompressed_size,
    workers_within,
)
from .metrics import Clock, MemorySampler, give_back_free_memory, run_metrics
from .partial import Partial
from .report import build_anomalies, build_summary, to_json, write_atomic
from .scan import map_split
from .settings import Settings
from .split import InputError, Split, discover, is_compressed, split_file
from .watch_checkpoint import Checkpoint, CheckpointError
from .watch_events import PendingPaths, start_observer
from .watch_lines import take_future, take_unknown
from .watch_state import FINGERPRINT_BYTES, FileRecord, State
from .watch_store import StoreError, remove_pieces, take_counts, write_piece

CHECKPOINT_FOLDER = ".watch"
RESCAN_SECONDS = 30.0
PENDING_LIMIT = 4096
BATCH_BYTES_PER_WORKER = 16 << 20
"""Bytes mapped between two commits, per worker: about a second of work, so a stop is quick."""
BATCH_SHARE_OF_MEMORY = 25
"""A batch maps at most ``--memory-mb`` / this: its Partials, pickled and not, take ~3-16 times
its bytes (5 for typical logs), so a batch holds about a fifth of the budget."""
MIN_BATCH = 1 << 20
HIGH_WATER = 0.75
"""Share of ``--memory-mb`` past which the batches are made smaller."""
GROW_BELOW = 0.5
"""Share of ``--memory-mb`` under which the first batches double, up to the full batch."""
MIN_CHUNK = 256 << 10
"""Below this a chunk costs more to ship than to count, unless --chunk-size asks for less."""
MAX_SPLITS = 4096
"""Splits in one batch, whatever the chunk size (``--chunk-size 1`` must not hold millions)."""
BACKWARD_BLOCK = 64 * 1024
RETRY_SECONDS = 1.0
"""A file that failed to read is tried again after this long (or on its next event)."""
ANOMALIES_EVERY = 10.0
"""While a backlog is counted, anomalies.json (a pass over every counter: seconds with years
of windows) is written again at most this often; summary.json after every batch, and both
once the backlog is done."""

LINES, TAIL, WHOLE = "lines", "tail", "whole"


@dataclass
class Job:
    """Bytes ``[start, end)`` of one file to count in this batch.

    ``LINES``: complete lines, counted for good. ``TAIL``: the settled unterminated last line.
    ``WHOLE``: a ``.gz`` file, read whole (``end`` is its size on disk).
    """

    kind: str
    record: FileRecord
    start: int
    end: int
    sig: tuple[int, int]
    splits: list[Split] = field(default_factory=list)
    partial: Partial | None = None
    pieces: list[str] = field(default_factory=list)
    """Piece files of a big ``.gz`` (see ``map_tagged``), until the state takes them."""
    failure: str | None = None


def map_tagged(
    item: tuple[int, Split],
    settings: Settings,
    pieces: str | None = None,
    flush_bytes: int = 0,
    cancel: Callable[[], bool] | None = None,
) -> tuple[int, Split, Partial, list[str]]:
    """What the pool runs: ``map_split``, with the job it belongs to.

    ``files`` is left at 0: the watcher counts files itself (a file's first bytes may be read
    more than once, as a provisional tail). A ``.gz`` (one split, however big) holding more than
    ``flush_bytes`` writes its counters that grow with users and services to piece files in the
    folder ``pieces`` every ``flush_bytes`` it reads, so its worker holds that much at a time;
    the piece files come back with the Partial (what was read after the last piece). ``cancel``
    is asked at each piece: True raises CancelledError (the pieces written are removed)."""
    index, split = item
    written: list[str] = []
    if pieces is not None and flush_bytes > 0 and split.compressed and (
        uncompressed_size(split.path) > flush_bytes
    ):

        def flush(part: Partial) -> None:
            if cancel is not None and cancel():
                raise CancelledError
            written.append(write_piece(pieces, take_counts(part), take_unknown(part, 0),
                                       take_future(part, 0)))

        try:
            partial = map_split(split, settings, flush=flush, flush_bytes=flush_bytes, trim=False,
                                future_lines=True)
        except BaseException:
            remove_pieces(written)
            raise
    else:
        partial = map_split(split, settings, future_lines=True)
    partial.files = 0
    return index, split, partial, written


def _regular(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


class Watcher:
    """Keeps ``out``'s summary.json and anomalies.json current with the files of ``folder``.

    Usable in-process: ``open()``, then ``step()`` (one batch; False when idle) or ``run()``
    (until ``request_stop()``), then ``close()``. ``clock`` gives the time settle delays and
    rescans are measured with; tests pass a fake one.
    """

    def __init__(
        self,
        folder: str,
        out: str,
        settings: Settings,
        executor: Executor,
        *,
        settle: float = 2.0,
        recursive: bool = False,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] | None = None,
        tell: Callable[[str], None] | None = None,
        rescan_seconds: float = RESCAN_SECONDS,
        memory: Callable[[], int] | None = None,
        manage_gc: bool = False,
        pending_limit: int = PENDING_LIMIT,
        batch_bytes: int | None = None,
        top_size: int | None = None,
        gz_flush_bytes: int | None = None,
    ) -> None:
        self.folder = folder
        self.out = out
        self.settings = settings
        self.executor = executor
        self.settle = settle
        self.recursive = recursive
        self.clock = clock
        self.say = say or (lambda message: None)
        """Problems (always shown)."""
        self.tell = tell or (lambda message: None)
        """One line per file per update (off with --quiet)."""
        self.rescan_seconds = rescan_seconds
        self.memory = memory
        self.manage_gc = manage_gc
        """Pause cycle collection during a step and freeze what survives it (a process of its
        own: the objects of a caller would be frozen too)."""
        """The sampled peak memory of the process tree, in bytes, if known."""
        self.pending = PendingPaths(pending_limit)
        self.workers = workers = max(1, int(getattr(executor, "workers", 1)))
        self.batch_limit = batch_bytes or max(
            MIN_BATCH,
            min(BATCH_BYTES_PER_WORKER * workers, settings.memory_mb * 1_000_000 // BATCH_SHARE_OF_MEMORY),
        )
        self.batch_bytes = self.batch_limit
        if memory is not None and batch_bytes is None:
            # A slow start: lines can take far more room than a batch assumes (a new window,
            # user or token on each), so the first batch is a quarter, doubled while memory
            # stays under GROW_BELOW of the budget.
            self.batch_bytes = max(MIN_BATCH, self.batch_limit // 4)
        self.chunk_size = max(1, min(settings.chunk_size, self.batch_limit))
        self.shrunk_at = 0
        """The peak memory at which the batch was last made smaller."""
        self.gz_flush_bytes = gz_flush_bytes or max(MIN_CHUNK, self.batch_limit // workers)
        """A ``.gz`` holding more than this is counted in pieces of this many bytes."""
        self.stop = threading.Event()
        self.out_prefix = os.path.join(os.path.abspath(out), "")
        meta = {"folder": os.path.abspath(folder), "spelled": folder,
                "window": settings.window, "clock_skew": settings.clock_skew}
        self.checkpoint = Checkpoint(os.path.join(out, CHECKPOINT_FOLDER), meta, settings,
                                     top_size)
        """``top_size``: entries of the store's top lists (tests make it tiny)."""
        self.state = State(settings.clock_skew_ns)
        self.anomaly_counts: dict[str, int] = {}
        self.observer: BaseObserver | None = None
        self.next_rescan = float("-inf")
        self.todo: deque[str] = deque()
        self.todo_set: set[str] = set()
        self.seen: dict[int, tuple[int, int]] = {}
        """rid -> (size, mtime_ns) when last looked at."""
        self.changed_at: dict[int, float] = {}
        """rid -> clock time when that signature was first seen."""
        self.unsettled: dict[int, float] = {}
        """rid -> clock time to look at it again (its last line settles, or a retry)."""
        self.no_newline: dict[int, tuple[int, int]] = {}
        """rid -> (offset, end): bytes [offset, end) of the file hold no newline."""
        self.problems: dict[str, str] = {}
        self.updates = 0
        self.anomalies_due = 0.0
        """When anomalies.json may be written again while a backlog waits (monotonic clock)."""
        self.anomalies_stale = False
        """Whether anomalies.json is behind the last commit."""
        self.rescans = 0
        self.chunks = 0
        self.bytes_read = 0
        """Bytes this watcher read and counted (the run figures of a session)."""
        self.lines_read = 0
        self.largest_batch = 0

    # --- life cycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Load the checkpoint (or start afresh), write the outputs it implies, plan a full scan."""
        os.makedirs(self.out, exist_ok=True)
        if os.path.isdir(self.checkpoint.folder):
            try:
                self.state = self.checkpoint.load()
            except CheckpointError as err:
                self._start_again(f"checkpoint not used: {err}")
        else:
            self.state = self.checkpoint.reset(self.settings.clock_skew_ns)
        self._write_outputs()
        self.request_rescan()

    def _start_again(self, why: str) -> None:
        self.say(f"watch: {why}; counting again from the files in {self.folder}")
        self.state = self.checkpoint.reset(self.settings.clock_skew_ns)
        for transient in (self.seen, self.changed_at, self.unsettled, self.no_newline):
            transient.clear()
        self.request_rescan()

    def start_events(self, poll: float | None = None) -> None:
        """File notifications, or with ``poll`` a full rescan every ``poll`` seconds instead."""
        if poll is not None:
            self.rescan_seconds = poll
            return
        self.observer = start_observer(self.folder, self.recursive, self.pending, self.say)
        if self.observer is None:
            self.rescan_seconds = min(self.rescan_seconds, 1.0)

    def close(self) -> None:
        """Stop the notifications and close the checkpoint. Every step ends with a commit, so
        nothing is left to write; changes still pending come from a step an exception
        interrupted, and are not committed."""
        observer, self.observer = self.observer, None
        if observer is not None:
            observer.stop()
            observer.join()
        self.checkpoint.close()
        self.checkpoint.remove_pieces()  # of a batch a stop cut short in a worker

    def request_stop(self) -> None:
        """Ask ``run`` to return after the current batch (safe from a signal handler)."""
        self.stop.set()
        self.pending.wake.set()

    def request_rescan(self) -> None:
        self.next_rescan = float("-inf")

    def run(self) -> None:
        """Step until ``request_stop()``, sleeping while there is nothing to do."""
        while not self.stop.is_set():
            if not self.step():
                self.pending.wake.wait(self._idle_seconds())

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Step until ``done()`` or ``timeout`` seconds have passed; returns ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return done()
            if not self.step():
                self.pending.wake.wait(min(self._idle_seconds(), left))
        return True

    def drain(self) -> None:
        """Rescan, then step until there is nothing left to do at the current clock time."""
        self.request_rescan()
        while self.step():
            pass

    def _idle_seconds(self) -> float:
        due = min([self.next_rescan, *self.unsettled.values()])
        return min(1.0, max(0.01, due - self.clock()))

    # --- one step --------------------------------------------------------------------------------

    def step(self) -> bool:
        """Look at what is waiting, count one batch, commit, write the outputs. False if idle."""
        if not self.manage_gc:
            return self._step()
        # The state is millions of small acyclic objects: cycle collection would only rescan
        # them, so it is off during a step, and what a step leaves behind is frozen.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._step()
        finally:
            if collecting:
                gc.enable()
                gc.freeze()

    def _step(self) -> bool:
        self._gather(self.clock())
        if not self.todo:
            if self.anomalies_stale:
                self._write_anomalies()  # the backlog is done
                give_back_free_memory()
                return True
            return False
        started = time.perf_counter()
        jobs = self._plan_batch()
        added: dict[str, int] = {}
        try:
            if jobs:
                self._run(jobs)
            for job in jobs:
                lines = self._finish(job)
                if lines is not None:
                    added[job.record.path] = added.get(job.record.path, 0) + lines
        except CancelledError:
            # A stop was asked while the batch was mapped (a big .gz takes long): nothing of it
            # is committed, and a restart reads it again, as after a crash.
            return True
        finally:
            for job in jobs:
                remove_pieces(job.pieces)  # those of jobs not applied
        if self.state.changed():
            committing = time.perf_counter()
            try:
                self.checkpoint.commit(self.state)
                self._write_outputs(anomalies=self._anomalies_now())
            except (StoreError, sqlite3.DatabaseError) as err:
                if isinstance(err, sqlite3.OperationalError):
                    raise  # a full disk or an I/O error: not a damaged checkpoint
                self._start_again(f"checkpoint damaged: {err}")
                self._write_outputs()
                return True
            self.updates += 1
            now = time.perf_counter()
            for path, lines in added.items():
                self.tell(f"watch: {path}: {lines:+,} lines in {now - started:.2f} s "
                          f"(commit and outputs {now - committing:.2f} s)")
            self.checkpoint.settle()
            give_back_free_memory()
            self._check_memory()
        return True

    def _check_memory(self) -> None:
        """Halve the batch when memory passes HIGH_WATER of the budget (once per new peak): the
        lines take more room than a batch assumes (say, a new unknown level token each)."""
        peak = self.memory() if self.memory is not None else 0
        budget = self.settings.memory_mb * 1_000_000
        if peak > HIGH_WATER * budget and peak > self.shrunk_at and self.batch_bytes > MIN_BATCH:
            self.shrunk_at = peak
            self.batch_bytes = max(MIN_BATCH, self.batch_bytes // 2)
            self.chunk_size = min(self.chunk_size, self.batch_bytes)
        elif peak < GROW_BELOW * budget and not self.shrunk_at:
            self.batch_bytes = min(self.batch_limit, self.batch_bytes * 2)
        if peak > budget and "memory" not in self.problems:
            self.problems["memory"] = "over"
            self.say(f"watch: memory {peak / 1e6:,.0f} MB is over --memory-mb "
                     f"{self.settings.memory_mb}")

    def _gather(self, now: float) -> None:
        paths, overflowed = self.pending.take()
        if overflowed or now >= self.next_rescan:
            self.next_rescan = now + self.rescan_seconds
            self._rescan()
        for path in paths:
            self._want(path)
        for rid, due in list(self.unsettled.items()):
            if due <= now:
                del self.unsettled[rid]
                record = self.state.records.get(rid)
                if record is not None and record.live:
                    self._want(record.path)

    def _rescan(self) -> None:
        self.rescans += 1
        try:
            listed = discover([self.folder], recursive=self.recursive)
        except (InputError, OSError) as err:
            self._problem(self.folder, f"cannot list: {err}")
            return
        self.problems.pop(self.folder, None)
        for path in listed:
            self._want(path)
        for path in set(self.state.by_path) - set(listed):
            self._want(path)

    def _want(self, path: str, first: bool = False) -> None:
        if path not in self.todo_set and not self._excluded(path):
            self.todo_set.add(path)
            if first:
                self.todo.appendleft(path)
            else:
                self.todo.append(path)

    def _excluded(self, path: str) -> bool:
        """Files under the output folder (``--out`` inside a watched tree) are never input."""
        return os.path.abspath(path).startswith(self.out_prefix)

    def _plan_batch(self) -> list[Job]:
        """Look at waiting paths and cut their new bytes into splits, up to the batch budget."""
        budget = self.batch_bytes
        splits = MAX_SPLITS
        jobs: list[Job] = []
        while self.todo and budget > 0 and splits > 0 and not self.stop.is_set():
            path = self.todo.popleft()
            self.todo_set.discard(path)
            for job in self._examine(path):
                try:
                    whole = self._cut(job, budget, splits)
                except OSError:
                    self._want(path)
                    break
                jobs.append(job)
                budget -= sum(s.end - s.start if s.end is not None else job.end for s in job.splits)
                splits -= len(job.splits)
                if not whole:
                    self._want(path, first=True)
                    break
        self.largest_batch = max(self.largest_batch, self.batch_bytes - budget)
        return jobs

    def _cut(self, job: Job, budget: int, most: int) -> bool:
        """Fill ``job.splits``; False when the budget cut it short (``job.end`` moved back).

        About one chunk per worker (never more than ``--chunk-size``), so a new file keeps every
        worker busy for the same time.
        """
        rec = job.record
        share = -(-min(job.end - job.start, budget) // self.workers)
        chunk = max(1, min(self.chunk_size, max(share, MIN_CHUNK)))
        for split in split_file(rec.path, chunk, job.start, job.end, rec.generation):
            job.splits.append(split)
            if split.end is None:
                break
            budget -= split.end - split.start
            if (budget <= 0 or len(job.splits) >= most) and split.end < job.end:
                job.end = split.end
                return False
        return True

    def _run(self, jobs: list[Job]) -> None:
        items = [(i, split) for i, job in enumerate(jobs) for split in job.splits]
        self.chunks += len(items)
        for job in jobs:
            job.partial = Partial(clock_skew_ns=self.settings.clock_skew_ns)
        # In this process, a long split can only stop itself: it asks at each flush.
        serial = isinstance(self.executor, SerialExecutor)
        mapper = functools.partial(map_tagged, settings=self.settings,
                                   pieces=self.checkpoint.folder, flush_bytes=self.gz_flush_bytes,
                                   cancel=self.stop.is_set if serial else None)
        for index, split, result, pieces in self.executor.imap(mapper, items, self.stop.is_set):
            job = jobs[index]
            job.pieces += pieces
            problem = _incomplete(split, result)
            if problem is not None:
                job.failure = job.failure or problem
            elif job.failure is None:
                assert job.partial is not None
                job.partial.update(result)
            del result

    # --- what a path holds now -------------------------------------------------------------------

    def _examine(self, path: str) -> list[Job]:
        """Settle who the file at ``path`` is (new, renamed, replaced, gone); its jobs if any."""
        state = self.state
        st = _regular(path)
        rid = state.by_path.get(path)
        rec = state.records[rid] if rid is not None else None
        if st is None:
            if rec is not None:
                self._gone(rec)
            return []
        key = (st.st_dev, st.st_ino)
        sig = (st.st_size, st.st_mtime_ns)
        if rec is not None and rec.key == key and self.seen.get(rec.rid) == sig and _done(rec, sig):
            return []
        if rec is not None and rec.key != key:
            self._gone(rec)
            rec = None
        cand_rid = state.by_key.get(key)
        cand = state.records.get(cand_rid) if cand_rid is not None else None
        if cand is not None and cand.live and cand.path != path:
            there = _regular(cand.path)
            if there is not None and (there.st_dev, there.st_ino) == key:
                self._problem(path, f"same file as {cand.path} (a hard link): counted once, "
                                    f"as {cand.path}")
                return []
        got = self._head(path)
        if got is None:
            return []
        head, st = got
        if (st.st_dev, st.st_ino) != key:
            self._want(path)
            return []
        sig = (st.st_size, st.st_mtime_ns)
        rec = None
        if cand is not None:
            if cand.matches(st.st_size, head):
                rec = self._move(cand, path)
            else:
                self._retire(cand)
        if rec is None:
            rec = self._new(path, st)
        now = self.clock()
        if self.seen.get(rec.rid) != sig:
            self.seen[rec.rid] = sig
            self.changed_at[rec.rid] = now
        return self._plan(rec, sig, now)

    def _head(self, path: str) -> tuple[bytes, os.stat_result] | None:
        """The first bytes of ``path`` and its status, read through one open file."""
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                head = f.read(FINGERPRINT_BYTES)
        except OSError as err:
            if not isinstance(err, FileNotFoundError):
                self._problem(path, f"cannot read: {err.strerror or err}")
            return None
        return head, st

    def _plan(self, rec: FileRecord, sig: tuple[int, int], now: float) -> list[Job]:
        if rec.counted_end:
            self.state.set_mtime(rec.source, sig[1])  # a touch moves what is in the future
        if _done(rec, sig):
            return []
        size = sig[0]
        settled = now - self.changed_at[rec.rid] >= self.settle
        if rec.compressed:
            if settled:
                return [Job(WHOLE, rec, 0, size, sig)]
            self.unsettled[rec.rid] = self.changed_at[rec.rid] + self.settle
            return []
        jobs = []
        start = rec.offset
        line_end = self._last_line_end(rec, size)
        if line_end is not None:
            jobs.append(Job(LINES, rec, rec.offset, line_end, sig))
            start = line_end
        if size > start:
            if settled:
                jobs.append(Job(TAIL, rec, start, size, sig))
            else:
                self.unsettled[rec.rid] = self.changed_at[rec.rid] + self.settle
        return jobs

    def _last_line_end(self, rec: FileRecord, size: int) -> int | None:
        """Position just after the last newline in ``[rec.offset, size)``, or None."""
        low = rec.offset
        known = self.no_newline.get(rec.rid)
        if known is not None and known[0] == rec.offset:
            low = max(low, known[1])
        try:
            with open(rec.path, "rb") as f:
                pos = size
                while pos > low:
                    begin = max(low, pos - BACKWARD_BLOCK)
                    f.seek(begin)
                    found = f.read(pos - begin).rfind(b"\n")
                    if found >= 0:
                        return begin + found + 1
                    pos = begin
        except OSError:
            return None
        self.no_newline[rec.rid] = (rec.offset, size)
        return None

    # --- identity changes ------------------------------------------------------------------------

    def _new(self, path: str, st: os.stat_result) -> FileRecord:
        state = self.state
        generation = state.next_generation.get(path, 0)
        state.set_next_generation(path, generation + 1)
        rec = FileRecord(state.next_rid, path, generation, st.st_dev, st.st_ino,
                         compressed=is_compressed(path))
        state.put(rec)
        state.add_files(1)
        return rec

    def _move(self, rec: FileRecord, path: str) -> FileRecord:
        """``rec``'s file is at ``path`` now (renamed, or back after it left)."""
        state = self.state
        if rec.path == path:
            if not rec.live:
                rec = replace(rec, live=True)
                state.put(rec)
            return rec
        generation = state.next_generation.get(path, 0)
        state.set_next_generation(path, generation + 1)
        state.rekey(rec.source, (path, generation))
        rec = replace(rec, path=path, generation=generation, live=True)
        state.put(rec)
        return rec

    def _gone(self, rec: FileRecord) -> None:
        """``rec``'s file left its path: its counts stay; one that counted nothing is forgotten."""
        self._forget_transient(rec.rid)
        if rec.counted_end == 0:
            self.state.add_files(-1)
            self.state.forget(rec.rid)
        else:
            self.state.put(replace(rec, live=False))

    def _retire(self, rec: FileRecord) -> None:
        """``rec``'s inode now holds other bytes: what it counted stays, its tail for good."""
        self._forget_transient(rec.rid)
        self.state.keep_tail(rec.rid)
        self.state.forget(rec.rid)

    def _forget_transient(self, rid: int) -> None:
        self.seen.pop(rid, None)
        self.changed_at.pop(rid, None)
        self.unsettled.pop(rid, None)
        self.no_newline.pop(rid, None)

    # --- results ---------------------------------------------------------------------------------

    def _finish(self, job: Job) -> int | None:
        """Apply a mapped job if its file is still what was planned; the net lines it added."""
        old = job.record
        rec = self.state.records.get(old.rid)
        if rec is None or rec.source != old.source or not rec.live or rec.offset != job.start:
            return None
        path = rec.path
        if job.failure is not None:
            self._problem(path, job.failure)
            self.unsettled[rec.rid] = self.clock() + RETRY_SECONDS
            return None
        got = self._head(path)
        if got is None:
            self._want(path)
            return None
        head, st = got
        if (
            (st.st_dev, st.st_ino) != rec.key
            or not rec.matches(st.st_size, head)
            or st.st_size < job.end
            or (job.kind == WHOLE and (st.st_size, st.st_mtime_ns) != job.sig)
        ):
            self._want(path)
            return None
        self.problems.pop(path, None)
        self.state.set_mtime(rec.source, st.st_mtime_ns)
        partial, job.partial = job.partial, None
        assert partial is not None
        state = self.state
        tail = state.tails.get(rec.rid)
        dropped = tail.lines if tail is not None else 0
        lines = partial.lines - dropped
        self.bytes_read += partial.bytes_read
        self.lines_read += partial.lines
        if job.kind == LINES:
            if tail is not None:
                state.set_tail(rec.rid, None)  # first: its lines come back, counted for good
            state.count(partial)
            state.put(rec.with_counted(head, offset=job.end, tail_end=None, tail_sig=None))
        else:
            pieces, job.pieces = job.pieces, []
            state.set_tail(rec.rid, partial, pieces)
            state.put(rec.with_counted(head, tail_end=job.end, tail_sig=job.sig))
        return lines

    def _problem(self, path: str, message: str) -> None:
        if self.problems.get(path) != message:
            self.problems[path] = message
            self.say(f"watch: {path}: {message}")

    def _write_outputs(self, anomalies: bool = True) -> None:
        """summary.json first: it takes no pass over the counters; then anomalies.json, which
        does (or only mark it behind)."""
        view = self.state.view()
        summary = build_summary(
            # the summary needs no lines per window (a merge over every window: not done)
            replace(view, digest=self.checkpoint.digest({}, anomalies=False)),
            self.settings,
        )
        write_atomic(os.path.join(self.out, "summary.json"), to_json(summary))
        if anomalies:
            self._write_anomalies(view)
        else:
            self.anomalies_stale = True

    def _anomalies_now(self) -> bool:
        """Whether this commit writes anomalies.json: always without a backlog; with one, at
        most every ANOMALIES_EVERY seconds from when it began."""
        if not self.todo:
            return True
        if not self.anomalies_stale:
            self.anomalies_due = time.monotonic() + ANOMALIES_EVERY  # a backlog begins
            return False
        return time.monotonic() >= self.anomalies_due

    def _write_anomalies(self, view: Partial | None = None) -> None:
        if view is None:
            view = self.state.view()
        window_lines = self.state.window_lines(view)
        self.anomalies_stale = False
        self.anomalies_due = time.monotonic() + ANOMALIES_EVERY
        view = replace(view, digest=self.checkpoint.digest(window_lines))
        view = self.checkpoint.with_lines(view, self.state.future_after())
        anomalies = build_anomalies(view, self.settings)
        self.anomaly_counts = anomalies["counts"]
        write_atomic(os.path.join(self.out, "anomalies.json"), to_json(anomalies))


def _done(rec: FileRecord, sig: tuple[int, int]) -> bool:
    """Whether a file with this (size, mtime_ns) has nothing left to count."""
    if rec.tail_sig == sig:
        return True
    return not rec.compressed and rec.tail_end is None and rec.offset == sig[0]


def _incomplete(split: Split, result: Partial) -> str | None:
    if result.failures:
        return min(result.failures.values())
    if split.end is not None and result.bytes_read != split.end - split.start:
        return "the file shrank while it was read"
    return None


# --- the command -------------------------------------------------------------------------------


@contextlib.contextmanager
def _executor(workers: int) -> Iterator[Executor]:
    if workers > 1:
        with PoolExecutor(workers) as pool:
            yield pool
    else:
        yield SerialExecutor()


def watch_main(args: argparse.Namespace, settings: Settings) -> int:
    """Run the watcher until SIGINT or SIGTERM; returns the exit status."""
    from .cli import EXIT_OK, PROG, UsageError, report_line

    if not os.path.isdir(args.dir):
        raise UsageError(f"not a folder: {args.dir}")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create output folder {args.out}: {err.strerror}") from None

    def say(message: str) -> None:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)

    fit = workers_within(settings)
    if settings.workers > fit:
        # As for run: more workers than the memory budget holds would break it.
        if not args.quiet:
            say(f"--workers {settings.workers} does not fit in {settings.memory_mb} MB; using {fit}")
        settings = replace(settings, workers=fit)

    clock = Clock()
    # Workers ignore Ctrl-C (the terminal sends it to the whole group); the watcher handles it.
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        with _executor(settings.workers) as executor, MemorySampler() as sampler:
            watcher = Watcher(args.dir, args.out, settings, executor, settle=args.settle,
                              recursive=args.recursive, say=say,
                              tell=None if args.quiet else say, memory=lambda: sampler.peak,
                              manage_gc=True)

            def on_signal(signum: int, frame: FrameType | None) -> None:
                watcher.request_stop()

            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
            watcher.open()
            watcher.start_events(args.poll)
            try:
                watcher.run()
            finally:
                watcher.close()
        metrics = run_metrics(
            clock=clock, peak_bytes=sampler.peak, workers=settings.workers, chunks=watcher.chunks,
            nbytes=watcher.bytes_read, lines=watcher.lines_read, stages={},
            executor="processes" if settings.workers > 1 else "serial",
        )
        write_atomic(os.path.join(args.out, "metrics.json"), to_json(metrics))
        if not args.quiet:
            say(report_line(metrics, watcher.anomaly_counts))
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    return EXIT_OK
