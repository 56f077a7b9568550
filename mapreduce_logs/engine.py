"""Map Splits to Partials over an executor, then reduce them into one Partial, in a memory budget.

The executor is passed in: ``SerialExecutor`` maps in this process (tests, debugging), and
``PoolExecutor`` maps on ``multiprocessing`` worker processes, one split in each at a time,
so memory does not grow with the input. Anything with the same ``imap`` fits the seam.

Memory (``--memory-mb``, the whole process tree) is shared out by ``plan``: a fixed part per
process, the chunk size (a chunk's Partial is at most CHUNK_GROWTH times its bytes, in the
worker that builds it and in the parent until it is merged, for every split in flight), and
the reducer's share, past which the (user, window) and (service, window) counters are spilled
to disk (``spill.py``); after that the workers write their chunks' counters there themselves,
and at the end the partitions are digested on the executor, one per worker at a time.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from . import storage, windows
from .anomalies import BurstCandidate
from .partial import Partial, Segment, add_counts
from .scan import MAX_UNKNOWN_LEVELS, map_split
from .settings import Settings
from .spill import (
    SpillStore,
    Tables,
    combine,
    digest_partition,
    digest_tables,
    finish,
    forget_windows,
    load_windows,
    release_process,
    remove_stale,
    removed_on_sigterm,
    save_windows,
    write_run,
    writer_name,
)
from .split import Split, is_compressed, split_files
from .windows import WINDOW_BUFFER, merge_files

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Applies a picklable function to items, yielding results in any order.

    ``cancel``, if given, is asked now and then (at least every CANCEL_POLL seconds while
    waiting on workers); once it says True, the work in flight is dropped and CancelledError raised."""

    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], cancel: Callable[[], bool] | None = None
    ) -> Iterator[R]: ...


CANCEL_POLL = 0.2


class CancelledError(Exception):
    """The caller's ``cancel`` asked to stop: the results not yet yielded are lost."""


class SerialExecutor:
    """Maps in the calling process, one item after another (``cancel`` is asked between items;
    ``fn`` may raise CancelledError itself, which passes through)."""

    workers = 1

    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], cancel: Callable[[], bool] | None = None
    ) -> Iterator[R]:
        for item in items:
            if cancel is not None and cancel():
                raise CancelledError
            try:
                result = fn(item)
            except CancelledError:
                raise
            except Exception as err:
                raise MapError(f"failed on {_name(item)}: {err!r}") from err
            yield result


class MapError(Exception):
    """A worker failed on a split; names the file and byte range."""


class PoolExecutor:
    """Maps on worker processes, each fed through a pipe of its own, one item at a time.

    Use it as a context manager: the workers start on entry (before any helper thread, since
    they are forked) and stop on exit. Each worker holds one item; the next is sent as soon as
    its result has arrived, before the result is unpickled and handed on, so a worker waits only
    for the pipe. Nothing is shared between workers: one can be killed at any instant (the OOM
    killer, a stop after a failure or Ctrl-C) without leaving a lock held that the others or
    the parent would wait on for ever. On the first failure, or when a worker dies, the
    remaining work is dropped and a MapError naming the item is raised.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.in_flight = workers
        """Items mapped at once: the memory plan counts one Partial in each worker."""
        self.reorder = REORDER * workers
        """An item is sent only while the oldest unfinished one is fewer than this many before
        it: a slow split holds the others back a little, and what waits on it (pieces of files
        that cannot be joined yet) stays bounded."""
        self._workers: list[_Worker] = []
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")

    def __enter__(self) -> PoolExecutor:
        self._workers = []
        for _ in range(self.workers):
            self._workers.append(_Worker(self._context, self._workers))
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers = []

    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], cancel: Callable[[], bool] | None = None
    ) -> Iterator[R]:
        if not self._workers:
            raise RuntimeError("PoolExecutor is used inside a with block")
        source = enumerate(items)
        exhausted = False
        submitted = 0
        oldest = 0  # every item before this one has finished
        done_ahead: set[int] = set()

        def feed(worker: _Worker) -> bool:
            """Send an idle worker the next item if the order allows; False when none is left."""
            nonlocal submitted
            if submitted >= oldest + self.reorder:
                return True
            numbered = next(source, _END)
            if numbered is _END:
                return False
            worker.send(fn, numbered)
            submitted += 1
            return True

        try:
            while True:
                for worker in self._workers:
                    if not exhausted and worker.task is None:
                        exhausted = not feed(worker)
                busy = [worker for worker in self._workers if worker.task is not None]
                if not busy:
                    return
                worker = _ready(busy, cancel)
                index, item = worker.task  # type: ignore[misc]
                ok, payload = worker.receive()
                done_ahead.add(index)
                while oldest in done_ahead:
                    done_ahead.remove(oldest)
                    oldest += 1
                if ok and not exhausted:
                    exhausted = not feed(worker)  # before unpickling: the worker goes on meanwhile
                if not ok:
                    raise MapError(f"failed on {_name(item)}: {payload}")
                result = pickle.loads(payload)
                del payload
                yield result
        finally:
            for i, worker in enumerate(self._workers):
                if worker.task is not None or not worker.process.is_alive():
                    # A result would arrive after we are gone, or it died: replace the worker.
                    worker.stop()
                    others = self._workers[:i] + self._workers[i + 1 :]
                    self._workers[i] = _Worker(self._context, others)


REORDER = 4
"""PoolExecutor.reorder as a multiple of the workers."""

_END: Any = object()


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: Any, siblings: list[_Worker]) -> None:
        self.conn, child = context.Pipe(duplex=True)
        # A forked child inherits the parent's ends of its own pipe and its siblings'; it closes
        # them, or it would wait for ever on a pipe that the death of the parent does not close.
        inherited = []
        if context.get_start_method() == "fork":
            inherited = [s.conn.fileno() for s in [*siblings, self]]
        self.process = context.Process(target=_serve, args=(child, inherited), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple[int, Any] | None = None

    def send(self, fn: Callable[[Any], Any], numbered: tuple[int, Any]) -> None:
        self.task = numbered
        with contextlib.suppress(OSError):  # it died; receive() says so
            self.conn.send((fn, numbered[1]))

    def receive(self) -> tuple[bool, Any]:
        """(True, the pickled result) or (False, the error as text); the task is done after it."""
        try:
            ok, error = self.conn.recv()
            payload = self.conn.recv_bytes() if ok else error
        except (EOFError, OSError):
            self.process.join(1)
            code = self.process.exitcode
            ok, payload = False, f"the worker process died (exit status {code})"
        self.task = None
        return ok, payload

    def stop(self) -> None:
        if self.task is None and self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        self.task = None


def _ready(busy: list[_Worker], cancel: Callable[[], bool] | None = None) -> _Worker:
    """A busy worker whose result (or death) has arrived, waiting for one; CancelledError when
    ``cancel`` says so first (the caller's ``finally`` replaces the busy workers)."""
    by_handle: dict[Any, _Worker] = {}
    for worker in busy:
        by_handle[worker.conn] = worker
        by_handle[worker.process.sentinel] = worker
    while True:
        if cancel is not None and cancel():
            raise CancelledError
        ready = multiprocessing.connection.wait(
            list(by_handle), timeout=None if cancel is None else CANCEL_POLL)
        if ready:
            return by_handle[ready[0]]


def _serve(conn: Any, inherited: list[int]) -> None:
    """A worker's life: (fn, item) in, (True, None) and the pickled result or (False, error text)
    out, until None or the parent's end closes (the parent stopped or died). Ctrl-C is left to
    the parent, which stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    # A worker in the middle of a split does not read its pipe: it learns of a parent killed
    # outright (SIGKILL, the OOM killer) from being given another parent.
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, item = task
        del task
        try:
            data = pickle.dumps(fn(item), pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # noqa: BLE001 - any failure of the item goes back to the parent
            with contextlib.suppress(OSError):
                conn.send((False, repr(err)))
            continue
        finally:
            del fn, item
        try:
            conn.send((True, None))
            conn.send_bytes(data)
        except OSError:  # the parent is gone
            return
        del data


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


ORPHAN_CHECK_SECONDS = 0.2
"""How often a worker checks that the process that started it is still there."""


def _name(item: object) -> str:
    if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], Split):
        item = item[1]
    if isinstance(item, Split):
        end = "end" if item.end is None else str(item.end)
        return f"{item.path} bytes {item.start}-{end}"
    return repr(item)


@dataclass
class RunStats:
    """Figures about how a run went (never part of summary.json)."""

    chunks: int = 0
    stages: dict[str, float] = field(default_factory=dict)


def reduce_partials(partials: Iterable[Partial], settings: Settings) -> Partial:
    """Merge partials in arrival order, in memory; ``Partial()`` is the start, so one is reduced too."""
    acc = Partial(clock_skew_ns=settings.clock_skew_ns)
    for partial in partials:
        acc.update(partial)
    return acc


# --- the memory budget --------------------------------------------------------------------------

MB = 1_000_000

PROCESS_BYTES = 25 * MB
"""The parent: interpreter, modules, the memory sampler, the small totals."""
WORKER_BYTES = 24 * MB
"""A worker: its share of the interpreter, its 1 MiB read blocks and the lists made from them."""
CHUNK_GROWTH = 16
"""Most bytes a chunk's Partial takes per input byte, its pickle included. Measured worst case:
every line a new unknown level token (lines full of new users take 6 to 9, typical logs 3)."""
ENTRY_BYTES = 240
"""One (subject, window) entry in the reducer's dicts: key tuple, bytes, int, dict slot."""
DIGEST_ENTRY_BYTES = 400
"""One entry while its partition is digested: the summed dict, totals, shares, candidates."""
HEADROOM = 0.15
"""Left free: transient peaks between samples, and freed memory a process does not give back."""
GZIP_GROWTH = 8
"""Guess of uncompressed bytes per compressed byte, only to size the first spill partitions."""
SPILL_DIR: str | None = None
"""Where spill folders are made unless ``run_files`` is told; None is the system's temporary
folder (``TMPDIR``). The command line passes its output folder."""


@dataclass(frozen=True)
class Budget:
    """How a run fits its memory budget."""

    chunk_size: int
    """Split size: ``--chunk-size`` or less, so that every chunk in flight fits."""
    spill_entries: int
    """(subject, window) entries the reducer holds in memory before it spills them."""
    partition_entries: int
    """Entries a spilled partition may have to be digested in memory; bigger ones are split."""


def plan(
    settings: Settings, workers: int, in_flight: int, task_bytes: int | None = None
) -> Budget:
    """Share ``settings.memory_mb`` out between processes, chunks in flight and the reducer.

    After a fixed part per process and HEADROOM, 40% goes to chunks (each split in flight can
    be CHUNK_GROWTH times its size, once in a worker and once in the parent) and, once the
    chunks are done, to the partitions being digested (one per worker at a time); 45% goes to
    the reducer's counters, which are spilled past it.

    ``task_bytes`` is given when the workers are not this machine's processes (a cluster): the
    memory one task may use there. The budget then counts no local worker, ``in_flight`` chunks
    held here, and sizes chunks and partitions to TASK_SHARE of ``task_bytes`` as well.
    """
    local = 0 if task_bytes is not None else workers
    free = settings.memory_mb * MB * (1 - HEADROOM) - PROCESS_BYTES - local * WORKER_BYTES
    if task_bytes is not None:
        free -= CLIENT_BYTES
    free = max(free, 8 * MB)
    chunks = 0.40 * free
    chunk_size = int(chunks / (CHUNK_GROWTH * (local + in_flight)))
    partition_entries = int(chunks / (max(1, local) * DIGEST_ENTRY_BYTES))
    if task_bytes is not None:
        chunk_size = min(chunk_size, int(TASK_SHARE * task_bytes / CHUNK_GROWTH))
        partition_entries = min(partition_entries,
                                int(TASK_SHARE * task_bytes / DIGEST_ENTRY_BYTES))
    return Budget(
        chunk_size=max(1, min(settings.chunk_size, chunk_size)),
        spill_entries=max(1, int(0.45 * free / ENTRY_BYTES)),
        partition_entries=max(1, partition_entries),
    )


CLIENT_BYTES = 35 * MB
"""A cluster's client in this process: its modules, event loop thread and connections (33 MB
of PSS measured, connected to a scheduler with one worker)."""
TASK_SHARE = 0.5
"""Of the memory a cluster worker gives a task: the rest is for the results it holds until they
are fetched, and for the worker's own bookkeeping."""


def workers_within(settings: Settings) -> int:
    """The most worker processes ``settings.memory_mb`` holds, each with as much room again for
    its work as its fixed part; at least one. More workers than this would eat the budget."""
    room = settings.memory_mb * MB * (1 - HEADROOM) - PROCESS_BYTES
    return max(1, int(room / (2 * WORKER_BYTES)))


# --- the reducer --------------------------------------------------------------------------------

class FirstTokens:
    """Finds the first ``limit`` distinct unknown level tokens in input order, as chunks arrive.

    Chunks are numbered in input order. Once every chunk before some point has arrived and the
    tokens before it number ``limit``, no later token can be among the first: from then on the
    others are dropped. Until then only the tokens of chunks past that point wait.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.admitted: dict[bytes, None] = {}
        self.full = False
        self._waiting: dict[int, list[bytes]] = {}
        self._next = 0

    def add(self, seq: int, part: Partial) -> bool:
        """Take chunk number ``seq``; True when this made the admitted tokens complete."""
        if self.full:
            return False
        self._waiting[seq] = _tokens_in_order(part)
        while self._next in self._waiting:
            for token in self._waiting.pop(self._next):
                if token not in self.admitted:
                    self.admitted[token] = None
                    if len(self.admitted) == self.limit:
                        self.full = True
                        self._waiting.clear()
                        return True
            self._next += 1
        return False


def _tokens_in_order(part: Partial) -> list[bytes]:
    """A chunk's unknown level tokens by first line (every token has at least one example)."""
    tokens: list[bytes] = []
    for source in sorted(part.segments):
        for segment in part.segments[source]:
            examples = segment.unknown_examples
            tokens += sorted(examples, key=lambda t: examples[t][0][0])
    return tokens


class Reducer:
    """Merges chunk Partials, arriving in any order, into one digested Partial within a budget.

    Small totals merge into one Partial. The (user, window) and (service, window) counters
    gather in Tables, spilled to disk when they pass ``budget.spill_entries``; from then on the
    workers write their chunks' tables to the spill folder themselves (``target``). At the end
    the partitions are digested, on the executor. ``close()`` removes whatever was spilled.
    """

    def __init__(
        self, settings: Settings, budget: Budget, input_bytes: int = 0, spill_dir: str | None = None
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.input_bytes = input_bytes
        self.spill_dir = spill_dir
        self.acc = Partial(clock_skew_ns=settings.clock_skew_ns)
        self.tables = Tables.empty()
        self.tokens = FirstTokens(MAX_UNKNOWN_LEVELS)
        self.store: SpillStore | None = None
        self.spill_seconds = 0.0
        self._kept: frozenset[bytes] | None = None
        self.window_files: list[str] = []
        """Sorted runs of lines per window, written out of ``acc`` in the spill folder each
        time they pass WINDOW_BUFFER windows."""
        self.cut: dict[int, Split] = {}
        """Chunks (by number) that are whole compressed files flushed as they were read, before
        the reported tokens were known: they kept only their own first tokens."""
        self.cut_kept: dict[int, frozenset[bytes]] = {}
        """The tokens such a chunk kept, when it may have dropped others."""

    def target(self) -> tuple[str, int] | None:
        """Where a chunk mapped from now on writes its tables (None: it ships them here)."""
        return None if self.store is None else self.store.target

    def tokens_kept(self) -> frozenset[bytes] | None:
        """The only unknown level tokens a chunk mapped from now on need ship (None: all)."""
        if not self.tokens.full:
            return None
        if self._kept is None:
            self._kept = frozenset(self.tokens.admitted)
        return self._kept

    def add(self, seq: int, part: Partial, written: list[int] | None = None) -> None:
        """Merge chunk number ``seq`` (in input order) into the result; ``written`` tells what
        its worker wrote to the spill folder instead of shipping it."""
        if seq in self.cut:
            if len(part.unknown_levels) >= MAX_UNKNOWN_LEVELS:
                self.cut_kept[seq] = frozenset(part.unknown_levels)
            else:
                del self.cut[seq]  # it had too few tokens to drop any
        if self.tokens.full:
            part.retain_unknown(self.tokens.admitted)
        elif self.tokens.add(seq, part):
            part.retain_unknown(self.tokens.admitted)
            self.acc.retain_unknown(self.tokens.admitted)
        if written is not None:
            assert self.store is not None
            self.store.add_written(written)
        for table, mine in zip(_take_tables(part), self.tables, strict=True):
            add_counts(mine, table)
        # users and services are sums of the tables over windows: the digest counts them there.
        part.users, part.services = Counter(), Counter()
        self.acc.update(part)
        if len(self.acc.window_lines) > WINDOW_BUFFER:
            self._fold_windows()
        if self.tables.entries() > self.budget.spill_entries:
            self.spill()

    def start_spilling(self) -> None:
        """Make a spill folder now, if there is none yet, for workers to write to."""
        if self.store is None:
            self.spill()

    def spill(self) -> None:
        started = time.perf_counter()
        if self.store is None:
            self.store = SpillStore(self._fanout(), self.budget.partition_entries, self.spill_dir)
        self.store.spill(self.tables)
        self.spill_seconds += time.perf_counter() - started

    def _fanout(self) -> int:
        """Partitions for the first spill: the entries expected in all, over what one may hold."""
        seen = max(self.acc.bytes_read, 1)
        expected = self.tables.entries() * max(1.0, self.input_bytes / seen)
        return math.ceil(2 * expected / self.budget.partition_entries)

    def recount(self, executor: Executor, flush_bytes: int) -> None:
        """Count again, in each cut chunk, the reported tokens it dropped (every line of them:
        a token a chunk did not keep was dropped wherever it appeared in the chunk)."""
        jobs = [(self.cut[seq], missing) for seq in sorted(self.cut)
                if (missing := frozenset(self.tokens.admitted) - self.cut_kept[seq])]
        task = functools.partial(count_tokens, settings=self.settings, flush_bytes=flush_bytes)
        for part in executor.imap(task, jobs):
            self.acc.failures.update(part.failures)
            add_counts(self.acc.unknown_levels, part.unknown_levels)
            for source, segments in part.segments.items():
                for mine in self.acc.segments.get(source, []):
                    for segment in segments:
                        if segment.start == mine.start:
                            mine.unknown_examples = {**mine.unknown_examples,
                                                     **segment.unknown_examples}

    def _fold_windows(self) -> None:
        """Write ``acc``'s lines per window as a sorted run to the spill folder, and empty it."""
        self.start_spilling()
        assert self.store is not None
        path = os.path.join(self.store.folder, f"windows-{len(self.window_files)}.run")
        windows.save(path, self.acc.window_lines)
        self.window_files.append(path)
        self.acc.window_lines = Counter()

    def window_lines(self) -> Mapping[int, int]:
        """The run's lines per window: ``acc``'s dict, or, once some were folded, a WindowLines
        mapped from their runs merged into one file (then ``acc``'s is emptied)."""
        if not self.window_files:
            return self.acc.window_lines
        if self.acc.window_lines:
            self._fold_windows()
        assert self.store is not None
        path = os.path.join(self.store.folder, "windows.bin")
        merge_files(self.window_files, path)
        self.window_files = []
        return load_windows(path)  # mapped, and the one the partition tasks here will use

    def finish(self, executor: Executor) -> Partial:
        """The merged Partial with its digest; spilled partitions are digested on ``executor``."""
        acc = self.acc
        window_lines = self.window_lines()
        if self.store is None and self.tables.entries() > self.budget.partition_entries:
            self.spill()
        if self.store is None:
            groups: list[list[BurstCandidate]] = []
            part = digest_tables(self.tables, window_lines, self.settings, groups.append)
            acc.digest = finish(part, groups, window_lines, self.settings)
        else:
            if self.tables.entries():
                self.spill()
            path = save_windows(self.store.folder, window_lines)
            task = functools.partial(digest_partition, settings=self.settings, window_lines=path)
            part = combine(executor.imap(task, self.store.jobs()), self.settings.top)
            acc.digest = finish(part, self.store.candidates(), window_lines, self.settings)
        self.tables = Tables.empty()
        return acc

    def close(self) -> None:
        forget_windows()
        if self.store is not None:
            self.store.close()


def _take_tables(part: Partial) -> Tables:
    """Move the (subject, window) counters out of ``part``, leaving it empty ones."""
    tables = Tables(part.user_lines, part.service_errors, part.service_others)
    part.user_lines, part.service_errors, part.service_others = Counter(), Counter(), Counter()
    return tables


Chunk = tuple[int, Split, "tuple[str, int] | None", "frozenset[bytes] | None", int]
"""A worker's task: (number in input order, split, spill folder and fanout or None, the unknown
level tokens to keep or None for all, bytes read between flushes to the spill folder or 0)."""


def map_chunk(item: Chunk, settings: Settings) -> tuple[int, Partial, list[int] | None]:
    """Chunk -> its Partial, without what the reducer does not need shipped.

    ``users`` and ``services`` are the sums over windows of ``user_lines`` and of
    ``service_errors`` + ``service_others``: the reducer counts them from those, so they are not
    shipped (the sums are checked, in case the mapper changes). Once the reducer spills, the
    chunk's tables are written to the spill folder here (returned: entries per partition), at
    the end and, for a split that is a whole compressed file, every ``flush_bytes`` on the way;
    once the reported unknown level tokens are known, the others are dropped here."""
    seq, split, target, kept, flush_bytes = item
    written: list[int] | None = None

    def ship(part: Partial) -> None:
        nonlocal written
        if kept is not None:
            part.retain_unknown(kept)
        if sum(part.users.values()) != sum(part.user_lines.values()) or sum(
            part.services.values()
        ) != sum(part.service_errors.values()) + sum(part.service_others.values()):
            raise RuntimeError("the mapper's users or services are not the sums of its window counts")
        part.users, part.services = Counter(), Counter()
        if target is not None:
            folder, fanout = target
            counts = write_run(folder, fanout, _take_tables(part), writer_name())
            written = counts if written is None else [a + b for a, b in zip(written, counts, strict=True)]

    if target is not None and flush_bytes > 0:
        part = map_split(split, settings, flush=ship, flush_bytes=flush_bytes, tokens=kept)
    else:
        part = map_split(split, settings)
    ship(part)
    return seq, part, written


def count_tokens(job: tuple[Split, frozenset[bytes]], settings: Settings, flush_bytes: int) -> Partial:
    """A whole split read again for the unknown level tokens of ``job`` only: their counts and
    their segment's examples of them (nothing else)."""
    split, tokens = job

    def drop(part: Partial) -> None:
        _take_tables(part)
        part.users, part.services = Counter(), Counter()

    part = map_split(split, settings, flush=drop, flush_bytes=flush_bytes, tokens=tokens)
    out = Partial(clock_skew_ns=part.clock_skew_ns, unknown_levels=part.unknown_levels,
                  failures=part.failures)
    for source, segments in part.segments.items():
        out.segments[source] = [Segment(s.start, s.end, unknown_examples=s.unknown_examples)
                                for s in segments]
    return out


def uncompressed_size(path: str) -> int:
    """At least the bytes a ``.gz`` file holds, as far as can be told without reading it: the
    size its trailer gives (modulo 4 GiB), or GZIP_GROWTH times its own, whichever is larger."""
    try:
        size = storage.size(path)
        trailer = storage.gzip_trailer(path)
    except OSError:
        return 0
    return max(trailer, size * GZIP_GROWTH)


def _input_bytes(files: list[str]) -> int:
    total = 0
    for path in files:
        with contextlib.suppress(OSError):
            total += uncompressed_size(path) if is_compressed(path) else storage.size(path)
    return total


def run_files(
    files: list[str],
    settings: Settings,
    executor: Executor,
    progress: Callable[[int], None] | None = None,
    stats: RunStats | None = None,
    spill_dir: str | None = None,
) -> Partial:
    """Split, map and reduce ``files`` into one digested Partial. Unreadable files land in
    ``failures``. Memory follows ``plan``; what does not fit is spilled to a hidden folder made
    in ``spill_dir`` (default SPILL_DIR), removed before this returns or raises, and by SIGTERM
    before it kills the process."""
    stats = stats if stats is not None else RunStats()
    workers = getattr(executor, "workers", 1)
    in_flight = getattr(executor, "in_flight", workers)
    task_bytes = getattr(executor, "task_bytes", None)
    if task_bytes is None:  # local processes
        budget = plan(settings, workers, in_flight)
    else:
        budget = plan(settings, workers, in_flight, task_bytes)
    started = time.perf_counter()
    failed: dict[str, str] = {}
    on_disk: dict[int, int] = {}
    """Bytes of each chunk in its file, for ``progress`` (a .gz reads more than its size)."""

    spill_parent = spill_dir or SPILL_DIR
    if spill_parent is not None:
        remove_stale(spill_parent)  # what a killed run left there
    reducer = Reducer(settings, budget, _input_bytes(files), spill_parent)

    def splits() -> Iterator[Chunk]:
        for item in split_files(files, budget.chunk_size):
            if isinstance(item, Split):
                flush = 0
                if item.compressed and uncompressed_size(item.path) > budget.chunk_size:
                    # A whole compressed file is one split, and can be far larger than a chunk:
                    # its worker writes its counters to the spill folder as it goes.
                    reducer.start_spilling()
                    flush = budget.chunk_size
                kept = reducer.tokens_kept()
                if flush and kept is None:
                    reducer.cut[stats.chunks] = item
                on_disk[stats.chunks] = item.disk_bytes()
                yield stats.chunks, item, reducer.target(), kept, flush
                stats.chunks += 1
            else:
                failed[item[0]] = item[1]

    mapper = functools.partial(map_chunk, settings=settings)
    merge_seconds = 0.0
    # Millions of small acyclic objects pass through here: cycle collection would only rescan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with removed_on_sigterm():
            for seq, partial, written in executor.imap(mapper, splits()):
                t = time.perf_counter()
                reducer.add(seq, partial, written)
                del partial
                merge_seconds += time.perf_counter() - t
                if progress is not None:
                    progress(on_disk.pop(seq))
            for path, reason in failed.items():
                reducer.acc.failures.setdefault(path, reason)
            reducer.recount(executor, budget.chunk_size)
            stats.stages["map"] = time.perf_counter() - started - merge_seconds
            spilling = reducer.spill_seconds
            t = time.perf_counter()
            result = reducer.finish(executor)
            stats.stages["reduce"] = max(0.0, merge_seconds - spilling)
            stats.stages["spill"] = reducer.spill_seconds
            stats.stages["digest"] = max(0.0, time.perf_counter() - t - (reducer.spill_seconds - spilling))
            return result
    finally:
        reducer.close()
        on_every_worker = getattr(executor, "on_every_worker", None)
        if on_every_worker is not None:  # long-lived workers: they keep files open, windows
            on_every_worker(release_process)
        if collecting:
            gc.enable()
