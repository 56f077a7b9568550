"""watch DIR: count what is in DIR, then keep the outputs current as files arrive or grow.

The loop: paths to look at come from file notifications (a bounded set, see ``events``),
from a full rescan every ``rescan_seconds`` (so a missed event never loses a file), and from
unterminated last lines whose settle time has come. Each step looks at some of them, cuts the new
bytes with ``split_file``, maps them with ``map_split`` on the same executor as ``run``, merges
the results, commits the checkpoint, then rewrites the outputs from the committed state.

Choices (docs/watch.md states them):
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
services live in the checkpoint's SQLite database (``store``), and only what stays small
(totals, lines per window, per-file facts) is held here.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from watchdog.observers.api import BaseObserver

from ..errors import CancelledError, CheckpointError, InputError, StoreError
from ..execute.base import Executor
from ..execute.heap import give_back_free_memory
from ..ingest.split import discover
from ..settings import Settings
from .batches import LINES, MAX_SPLITS, WHOLE, BatchSize, Job, map_jobs
from .checkpoint import Checkpoint
from .events import PendingPaths, start_observer
from .files import FileTracker
from .outputs import Outputs
from .pieces import remove_pieces
from .state import State

CHECKPOINT_FOLDER = ".watch"
RESCAN_SECONDS = 30.0
PENDING_LIMIT = 4096
RETRY_SECONDS = 1.0
"""A file that failed to read is tried again after this long (or on its next event)."""


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
        self.recursive = recursive
        self.clock = clock
        self.say = say or (lambda message: None)
        """Problems (always shown)."""
        self.tell = tell or (lambda message: None)
        """One line per file per update (off with --quiet)."""
        self.rescan_seconds = rescan_seconds
        self.memory = memory
        """The sampled peak memory of the process tree, in bytes, if known."""
        self.manage_gc = manage_gc
        """Pause cycle collection during a step and freeze what survives it (a process of its
        own: the objects of a caller would be frozen too)."""
        self.pending = PendingPaths(pending_limit)
        self.batches = BatchSize(settings, max(1, executor.workers), batch_bytes,
                                 slow_start=memory is not None, gz_flush_bytes=gz_flush_bytes)
        self.stop = threading.Event()
        self.out_prefix = os.path.join(os.path.abspath(out), "")
        meta = {"folder": os.path.abspath(folder), "spelled": folder,
                "window": settings.window, "clock_skew": settings.clock_skew,
                "tz": settings.tz, "since": settings.since_ns, "until": settings.until_ns}
        self.checkpoint = Checkpoint(os.path.join(out, CHECKPOINT_FOLDER), meta, settings,
                                     top_size)
        """``top_size``: entries of the store's top lists (tests make it tiny)."""
        self.files = FileTracker(State(settings.clock_skew_ns), settle, clock, self._want,
                                 self._problem)
        self.outputs = Outputs(out, settings, self.checkpoint, clock, figures=self._figures)
        self.observer: BaseObserver | None = None
        self.next_rescan = float("-inf")
        self.todo: deque[str] = deque()
        self.todo_set: set[str] = set()
        self.problems: dict[str, str] = {}
        self.updates = 0
        self.rescans = 0
        self.chunks = 0
        self.bytes_read = 0
        """Bytes this watcher read and counted (the run figures of a session)."""
        self.lines_read = 0
        self.largest_batch = 0

    def _figures(self) -> dict[str, Any]:
        """The run figures report.html shows: what this watcher has read so far."""
        figures: dict[str, Any] = {"workers": self.executor.workers, "chunks": self.chunks,
                                   "bytes read by this watcher": self.bytes_read,
                                   "lines read by this watcher": self.lines_read}
        if self.memory is not None:
            figures["peak_memory_mb"] = round(self.memory() / 1e6, 1)
        return figures

    @property
    def state(self) -> State:
        return self.files.state

    @property
    def anomaly_counts(self) -> dict[str, int]:
        return self.outputs.anomaly_counts

    # --- life cycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Load the checkpoint (or start afresh), write the outputs it implies, plan a full scan."""
        os.makedirs(self.out, exist_ok=True)
        if os.path.isdir(self.checkpoint.folder):
            try:
                self.files.reset(self.checkpoint.load())
            except CheckpointError as err:
                self._start_again(f"checkpoint not used: {err}")
        else:
            self.files.reset(self.checkpoint.reset(self.settings.clock_skew_ns))
        self.outputs.write(self.state)
        self.request_rescan()

    def _start_again(self, why: str) -> None:
        self.say(f"watch: {why}; counting again from the files in {self.folder}")
        self.files.reset(self.checkpoint.reset(self.settings.clock_skew_ns))
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
        due = min(self.next_rescan, self.files.next_due())
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
            if self.outputs.anomalies_stale:
                self.outputs.write_anomalies(self.state)  # the backlog is done
                give_back_free_memory()
                return True
            return False
        started = time.perf_counter()
        jobs = self._plan_batch()
        added: dict[str, int] = {}
        try:
            if jobs:
                self.chunks += map_jobs(jobs, self.executor, self.settings, self.checkpoint.folder,
                                        self.batches.gz_flush_bytes, self.stop.is_set)
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
                self.outputs.write(self.state, anomalies=self.outputs.anomalies_now(bool(self.todo)))
            except (StoreError, sqlite3.DatabaseError) as err:
                if isinstance(err, sqlite3.OperationalError):
                    raise  # a full disk or an I/O error: not a damaged checkpoint
                self._start_again(f"checkpoint damaged: {err}")
                self.outputs.write(self.state)
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
        """Fit the batch to the memory seen; say once when the budget was passed."""
        peak = self.memory() if self.memory is not None else 0
        self.batches.after_step(peak)
        if peak > self.settings.memory_mb * 1_000_000 and "memory" not in self.problems:
            self.problems["memory"] = "over"
            self.say(f"watch: memory {peak / 1e6:,.0f} MB is over --memory-mb "
                     f"{self.settings.memory_mb}")

    def _gather(self, now: float) -> None:
        paths, overflowed = self.pending.take()
        if overflowed or now >= self.next_rescan:
            self.next_rescan = now + self.rescan_seconds
            self._rescan()
        for path in [*paths, *self.files.due(now)]:
            self._want(path)

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
        budget = self.batches.bytes
        splits = MAX_SPLITS
        jobs: list[Job] = []
        while self.todo and budget > 0 and splits > 0 and not self.stop.is_set():
            path = self.todo.popleft()
            self.todo_set.discard(path)
            for job in self.files.examine(path):
                try:
                    whole = self.batches.cut(job, budget, splits)
                except OSError:
                    self._want(path)
                    break
                jobs.append(job)
                budget -= sum(s.end - s.start if s.end is not None else job.end for s in job.splits)
                splits -= len(job.splits)
                if not whole:
                    self._want(path, first=True)
                    break
        self.largest_batch = max(self.largest_batch, self.batches.bytes - budget)
        return jobs

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
            self.files.retry_later(rec.rid, self.clock() + RETRY_SECONDS)
            return None
        got = self.files.head(path)
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

