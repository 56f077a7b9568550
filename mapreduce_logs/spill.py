"""Counters too big for memory: spilled to disk by key, then digested one partition at a time.

The reducer keeps the (user, window) and (service, window) counters in memory until they pass
their share of the memory budget, then appends them as a *run* to the partition files of a
private temporary folder; from then on the workers write their chunks' counters there
themselves. An entry goes to the partition of ``crc32(user or service)``, a hash that is the
same in every process (``hash()`` is not), so all the windows of one user or service land in
one partition and no key is in two. At the end each partition's runs are summed in memory, one
partition per worker at a time (one that would not fit is first split again on further digits
of the same hash), and digested into what the report needs: top-k lists (the top k of the
partitions' top-k lists is exact because the partitions are disjoint), distinct counts, error
spikes, and the busiest user share with the burst candidates it filters.

The folder is removed by ``close()`` (the reducer calls it in ``finally``); ``atexit`` removes
any this process still has, and so does SIGTERM inside ``removed_on_sigterm()``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import glob
import heapq
import io
import itertools
import math
import os
import pickle
import shutil
import signal
import socket
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from . import windows
from .anomalies import (
    BurstCandidate,
    Found,
    WindowTable,
    burst_candidates,
    bursts,
    spikes,
    user_share,
)
from .partial import add_counts
from .settings import Settings
from .windows import WindowLines

if TYPE_CHECKING:  # numpy is imported only when a subject needs the arrays
    from .heavy import Subject, Table

Key = tuple[bytes, int]
"""(user or service, window index)."""

BATCH = 1 << 15
"""Entries routed at a time: bounds the lists a spill builds besides the counters it empties."""

MAX_FANOUT = 256
"""Most partition files one writer has open at once."""


class Tables(NamedTuple):
    """The high-cardinality counters, each keyed by (subject, window index)."""

    user_lines: dict[Key, int]
    service_errors: dict[Key, int]
    service_others: dict[Key, int]

    @classmethod
    def empty(cls) -> Tables:
        return cls({}, {}, {})

    def entries(self) -> int:
        return len(self.user_lines) + len(self.service_errors) + len(self.service_others)


# --- digesting partitions -----------------------------------------------------------------------


def top_k(counts: Iterable[tuple[bytes, int]], k: int) -> list[tuple[bytes, int]]:
    """The ``k`` largest counts, by count descending then key ascending (code-point order)."""
    return heapq.nsmallest(k, counts, key=lambda kv: (-kv[1], kv[0]))


def top_of(totals: Mapping[bytes, int], k: int) -> list[tuple[bytes, int]]:
    """``top_k`` of a large mapping: the k-th largest count first (no key function), then only
    the entries that reach it are ranked."""
    if k <= 0:
        return []
    if len(totals) <= 4 * k:
        return top_k(totals.items(), k)
    least = heapq.nlargest(k, totals.values())[-1]
    return top_k(compress(totals.items(), map(least.__le__, totals.values())), k)


def subject_totals(*tables: Mapping[Key, int]) -> Counter[bytes]:
    """Lines per subject, summed over windows (and over the given tables)."""
    totals: Counter[bytes] = Counter()
    for table in tables:
        totals.update(map(itemgetter(0), table))
        _add_above_one(totals, table)
    return totals


def _add_above_one(totals: Counter[bytes], table: Mapping[Key, int]) -> None:
    # ``totals`` counted each entry once, in C; what counts above 1 add is done in Python: few.
    for (subject, _), n in compress(table.items(), map((1).__lt__, table.values())):
        totals[subject] += n - 1


def _rules(settings: Settings) -> tuple[int, float, int, float, int]:
    return (
        settings.window,
        settings.spike_factor,
        settings.spike_min_errors,
        settings.burst_factor,
        settings.burst_min_lines,
    )


@dataclass(slots=True)
class Digest:
    """What the report needs from the high-cardinality counters, exact at any cardinality."""

    top: int
    """How many top services and users were kept (``Settings.top`` of the run)."""
    rules: tuple[int, float, int, float, int]
    """The detector settings the anomalies were found with."""
    top_services: list[tuple[bytes, int]]
    top_users: list[tuple[bytes, int]]
    distinct_services: int
    distinct_users: int
    spikes: list[Found]
    bursts: list[Found]

    def check(self, settings: Settings) -> None:
        """Refuse to report with settings this digest was not computed for."""
        if settings.top > self.top or _rules(settings) != self.rules:
            raise ValueError("this Partial was digested with other --top or anomaly settings")


class PartDigest(NamedTuple):
    """What some disjoint partitions contribute to the Digest, burst candidates aside."""

    top_services: list[tuple[bytes, int]]
    top_users: list[tuple[bytes, int]]
    distinct_services: int
    distinct_users: int
    spikes: list[Found]
    share: float
    """The busiest share among their users: the run's is the largest of these."""


def digest_tables(
    tables: Tables,
    window_lines: Mapping[int, int],
    settings: Settings,
    put_candidates: Callable[[list[BurstCandidate]], None],
) -> PartDigest:
    """Digest one partition (every window of each of its subjects is in it)."""
    services = subject_totals(tables.service_errors, tables.service_others)
    windows = Counter(map(itemgetter(0), tables.user_lines))
    table = functools.partial(_table_of, window_lines)
    own = user_share(tables.user_lines, window_lines, settings, windows, table)
    users = windows  # from here on: lines per user
    _add_above_one(users, tables.user_lines)
    # The partition's own share is at most the run's: its filter keeps every window of every
    # reported burst, and only windows of runs with burst_min_lines lines or more.
    put_candidates(burst_candidates(tables.user_lines, window_lines, own, settings, users, table))
    return PartDigest(
        top_services=top_of(services, settings.top),
        top_users=top_of(users, settings.top),
        distinct_services=len(services),
        distinct_users=len(users),
        spikes=spikes(tables.service_errors, tables.service_others, settings),
        share=own,
    )


def digest_subject(
    subject: Subject,
    window_lines: Mapping[int, int],
    settings: Settings,
    put_candidates: Callable[[list[BurstCandidate]], None],
) -> PartDigest:
    """``digest_tables`` of one user or service too big for dicts (a ``heavy.Subject``)."""
    from . import heavy

    users, services = heavy.totals(subject)
    share = 0.0
    if users:
        table = _arrays_of(window_lines)
        rate = heavy.user_rate(subject, table, settings)
        share = rate.share if rate is not None else 0.0
        put_candidates(heavy.burst_candidates(subject, rate, share, table, settings))
    return PartDigest(
        top_services=top_of(services, settings.top),
        top_users=top_of(users, settings.top),
        distinct_services=len(services),
        distinct_users=len(users),
        spikes=heavy.spikes(subject, settings) if services else [],
        share=share,
    )


_TABLES: dict[str, tuple[Mapping[int, int], Any]] = {}
"""The last window table of each kind built, with the lines per window it was built from: a
process digests every partition against the same ones, and a table takes a pass over every
window."""


def _kept_table(kind: str, window_lines: Mapping[int, int], make: Callable[[], Any]) -> Any:
    kept = _TABLES.get(kind)
    if kept is None or kept[0] is not window_lines:
        kept = _TABLES[kind] = (window_lines, make())
    return kept[1]


def _table_of(window_lines: Mapping[int, int]) -> WindowTable:
    table: WindowTable = _kept_table("dicts", window_lines,
                                     lambda: WindowTable.of(window_lines))
    return table


def _arrays_of(window_lines: Mapping[int, int]) -> Table:
    from .heavy import Table

    table: Table = _kept_table("arrays", window_lines, lambda: Table.of(window_lines))
    return table


def combine(parts: Iterable[PartDigest], k: int) -> PartDigest:
    """The digest of the union of disjoint partitions."""
    out = PartDigest([], [], 0, 0, [], 0.0)
    for part in parts:
        out = PartDigest(
            top_services=top_k(itertools.chain(out.top_services, part.top_services), k),
            top_users=top_k(itertools.chain(out.top_users, part.top_users), k),
            distinct_services=out.distinct_services + part.distinct_services,
            distinct_users=out.distinct_users + part.distinct_users,
            spikes=out.spikes + part.spikes,
            share=max(out.share, part.share),
        )
    return out


def finish(
    part: PartDigest,
    candidates: Iterable[list[BurstCandidate]],
    window_lines: Mapping[int, int],
    settings: Settings,
) -> Digest:
    """The run's Digest from all its partitions' and their burst candidates."""
    found_bursts: list[Found] = []
    for group in candidates:
        found_bursts += bursts(group, part.share, window_lines, settings)
    return Digest(
        top=settings.top,
        rules=_rules(settings),
        top_services=part.top_services,
        top_users=part.top_users,
        distinct_services=part.distinct_services,
        distinct_users=part.distinct_users,
        spikes=part.spikes,
        bursts=found_bursts,
    )


# --- the folder and its removal -----------------------------------------------------------------

PREFIX = ".mapreduce_logs-spill-"
"""Spill folders are named PREFIX + the process id + "-" + random letters (hidden: an output
folder inside a watched or scanned folder is skipped, and so is a spill folder in it)."""

_LIVE: dict[str, int] = {}
"""Spill folders not yet removed -> the process that made them (forked children must not)."""

_PARENTS: set[str] = set()
"""Folders spill folders were made in, noted before each is made: a signal may come between
``mkdtemp`` and the folder's entry in _LIVE."""


def _remove(folder: str) -> None:
    """Rename, then delete: a worker still writing cannot create files in the old path."""
    doomed = f"{folder}.removing"
    with contextlib.suppress(OSError):
        os.rename(folder, doomed)
        folder = doomed
    shutil.rmtree(folder, ignore_errors=True)


LOCK = "owner.lock"
"""A file in each spill folder that its run holds an exclusive flock on while it lives: the
kernel lets go of it when the run dies, however (kill -9 included), so a later run can tell a
folder left behind from one in use."""


def _hold_lock(folder: str) -> int:
    """Lock ``folder`` for this process; the file appears under its name already locked, so
    that ``remove_stale`` can never take a folder being made for left behind."""
    fd = os.open(os.path.join(folder, LOCK + ".new"), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(os.path.join(folder, LOCK + ".new"), os.path.join(folder, LOCK))
    return fd


def remove_stale(parent: str) -> list[str]:
    """Remove the spill folders in ``parent`` that a run killed before it could clean up left
    behind (their lock is free); those in use, or without a lock, stay. Returns those removed."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith(PREFIX)]
    except OSError:
        return []
    removed = []
    for name in names:
        folder = os.path.join(parent, name)
        try:
            fd = os.open(os.path.join(folder, LOCK), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # in use
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@atexit.register
def remove_spills() -> None:
    """Remove every spill folder this process made and has not removed yet."""
    for folder, pid in list(_LIVE.items()):
        if pid == os.getpid():
            _remove(folder)
            _LIVE.pop(folder, None)
    for parent in list(_PARENTS):
        for folder in glob.glob(os.path.join(glob.escape(parent), f"{PREFIX}{os.getpid()}-*")):
            _remove(folder)


@contextlib.contextmanager
def removed_on_sigterm() -> Iterator[None]:
    """While in the block, SIGTERM removes the spill folders before it kills the process.

    Only when SIGTERM has its default action and this is the main thread; the process still
    dies of the signal (no exception that some ``except`` could swallow). A child forked
    meanwhile gets the default action back.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _remove_then_die)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _remove_then_die(signum: int, frame: FrameType | None) -> None:
    remove_spills()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    # A pool forked inside the block must keep SIGTERM's default action: a Python handler only
    # runs between bytecodes, and Pool.terminate() must be able to stop a stuck worker.
    if signal.getsignal(signal.SIGTERM) is _remove_then_die:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    close_writers()  # the parent's files are the parent's


os.register_at_fork(after_in_child=_after_fork_in_child)


# --- runs on disk -------------------------------------------------------------------------------
#
# A partition file is named WRITER.INDEX (WRITER: "m" for the reducer, ``writer_name()`` for a
# worker) and holds records (table index, [(key, count), ...]) pickled one after another.
# Splits of a partition go to split/, burst candidates to cand/.


def _dump(f: IO[bytes], record: Any) -> None:
    pickler = pickle.Pickler(f, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo: records are plain trees, and the memo costs a dict per object
    pickler.dump(record)


_WRITERS: dict[str, int] = {}
"""This process's partition files open for appending (path -> fd), kept from one chunk to the
next: opening a file costs more than writing a chunk's share to it."""


def _append(path: str, record: Any) -> None:
    buffer = io.BytesIO()
    _dump(buffer, record)
    fd = _WRITERS.get(path)
    if fd is None:
        fd = _WRITERS[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    data = memoryview(buffer.getbuffer())
    while data:
        data = data[os.write(fd, data) :]


def close_writers(keep: str | None = None) -> None:
    """Close this process's open partition files, but those in folder ``keep``."""
    for path in [p for p in list(_WRITERS) if keep is None or os.path.dirname(p) != keep]:
        with contextlib.suppress(KeyError, OSError):
            os.close(_WRITERS.pop(path))


def writer_name() -> str:
    """This process's (and thread's) name for its partition files: unique among the writers of
    one spill folder, which, on a cluster, may be processes of many machines and threads."""
    host = "".join(c for c in socket.gethostname() if c.isalnum())[:32]
    thread = threading.get_ident() if threading.current_thread() is not threading.main_thread() else 0
    return f"w{os.getpid()}-{host}-{thread}"


def release_process() -> None:
    """Let go of what a long-lived worker process keeps of a run: its open partition files (a
    removed folder's disk space is freed only once they close) and the lines per window."""
    close_writers()
    forget_windows()


def _records(path: str) -> Iterator[Any]:
    with open(path, "rb") as f:
        while True:
            try:
                record = pickle.load(f)
            except EOFError:
                return
            yield record


class _Appender:
    """Appends records to files opened on first use, counting the entries sent to each."""

    def __init__(self, paths: list[str], counts: list[int]) -> None:
        self.paths = paths
        self.counts = counts
        self.files: dict[int, IO[bytes]] = {}

    def write(self, i: int, table: int, items: list[tuple[Key, int]]) -> None:
        f = self.files.get(i)
        if f is None:
            f = self.files[i] = open(self.paths[i], "ab")  # noqa: SIM115 - closed on exit
        _dump(f, (table, items))
        self.counts[i] += len(items)

    def __enter__(self) -> _Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self.files.values():
            f.close()


def _route(
    items: Iterable[tuple[Key, int]],
    table: int,
    write: Callable[[int, int, list[tuple[Key, int]]], None],
    parts: int,
    divisor: int,
) -> None:
    """Send every entry to ``write(partition, table, entries)``, BATCH entries at a time.

    The partition is digit ``(crc32(subject) // divisor) % parts``: the first split uses the
    lowest digit, each further split the next one, so a split really divides a partition.
    """
    crc = zlib.crc32
    source = iter(items)
    while batch := list(itertools.islice(source, BATCH)):
        buckets: list[list[tuple[Key, int]]] = [[] for _ in range(parts)]
        for item in batch:
            buckets[crc(item[0][0]) // divisor % parts].append(item)
        del batch
        for i, bucket in enumerate(buckets):
            if bucket:
                write(i, table, bucket)


def write_run(folder: str, fanout: int, tables: Tables, writer: str) -> list[int]:
    """Append ``tables`` as one run to ``writer``'s partition files, empty them, and return how
    many entries went to each partition. The files stay open for the next run."""
    close_writers(keep=folder)
    counts = [0] * fanout

    def write(i: int, table: int, items: list[tuple[Key, int]]) -> None:
        _append(os.path.join(folder, f"{writer}.{i}"), (table, items))
        counts[i] += len(items)

    for index, table in enumerate(tables):
        _route(table.items(), index, write, fanout, 1)
    for table in tables:
        table.clear()
    return counts


def _sum_runs(paths: list[str]) -> Tables:
    tables = Tables.empty()
    for path in paths:
        for table, items in _records(path):
            add_counts(tables[table], dict(items))
        os.unlink(path)
    return tables


def _one_subject(path: str) -> Subject:
    """The one subject in ``path`` as a ``heavy.Subject``; the file is deleted once read."""
    from .heavy import Subject

    subject = Subject.read(_records(path))
    os.unlink(path)
    return subject


def _partition(
    paths: list[str], written: int, divisor: int, capacity: int, scratch: str
) -> Iterator[Tables | Subject]:
    """The partition in ``paths`` summed, or, when more than ``capacity`` entries were written
    to it, split on the next digit of the hash into files named ``scratch``.N and each of
    those in turn. The files are deleted as they are read."""
    if written <= capacity or divisor >= 1 << 32:
        yield _sum_runs(paths)
        return
    parts = min(MAX_FANOUT, math.ceil(2 * written / capacity))
    names = [f"{scratch}.{j}" for j in range(parts)]
    counts = [0] * parts
    subjects: set[bytes] = set()
    with _Appender(names, counts) as out:
        for path in paths:
            for table, items in _records(path):
                if len(subjects) < 2:
                    subjects.update(key[0] for key, _ in items)
                _route(items, table, out.write, parts, divisor)
            os.unlink(path)
    for name, count in zip(names, counts, strict=True):
        if not count:
            continue
        if len(subjects) == 1:
            # One user or service: no split can divide it; arrays rather than dicts.
            yield _one_subject(name)
        else:
            yield from _partition([name], count, divisor * parts, capacity, name)


class PartitionJob(NamedTuple):
    """One partition to digest: its files, the entries written to them, where to put scratch."""

    folder: str
    number: int
    paths: list[str]
    written: int
    divisor: int
    capacity: int


def save_windows(folder: str, window_lines: Mapping[int, int]) -> str:
    """Write the lines per window once for the partition tasks (see ``digest_partition``):
    a dict pickled, or, for millions of windows (a WindowLines), sorted arrays to map."""
    if isinstance(window_lines, WindowLines):
        if window_lines.path is not None:
            return window_lines.path  # mapped from its file already
        path = os.path.join(folder, "windows.bin")
        windows.save(path, window_lines)
    else:
        path = os.path.join(folder, "windows.pickle")
        with open(path, "wb") as f:
            pickle.dump(dict(window_lines), f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def forget_windows() -> None:
    """Let go of the lines per window a process kept for the partitions of a run (and their
    window table): called once the run is digested."""
    load_windows.cache_clear()
    _TABLES.clear()


@functools.lru_cache(maxsize=1)
def load_windows(path: str) -> Mapping[int, int]:
    """What ``save_windows`` wrote (the last one read is kept: a process reads it once)."""
    if path.endswith(".bin"):
        return windows.load(path)
    with open(path, "rb") as f:
        loaded: dict[int, int] = pickle.load(f)
    return loaded


def digest_partition(
    job: PartitionJob, settings: Settings, window_lines: Mapping[int, int] | str
) -> PartDigest:
    """Sum and digest one spilled partition (a task for any executor); its burst candidates go
    to the folder's cand/ files. Memory: at most ``job.capacity`` entries at a time.

    ``window_lines`` may be the path ``save_windows`` wrote: each process then reads it once,
    rather than every task carrying them (there may be millions of windows)."""
    if isinstance(window_lines, str):
        window_lines = load_windows(window_lines)
    close_writers()  # every run is written: let go of the files
    cand = os.path.join(job.folder, "cand", str(job.number))

    def put(group: list[BurstCandidate]) -> None:
        if group:
            with open(cand, "ab") as f:
                _dump(f, group)

    parts = []
    for piece in summed(job):
        if isinstance(piece, Tables):
            parts.append(digest_tables(piece, window_lines, settings, put))
        else:
            parts.append(digest_subject(piece, window_lines, settings, put))
        del piece  # before the next piece is summed
        windows.release(window_lines)  # the pages of the windows it looked up
    return combine(parts, settings.top)


def summed(job: PartitionJob) -> Iterator[Tables | Subject]:
    """The partition's runs summed, in pieces of at most ``job.capacity`` entries (split on
    further hash digits) as Tables, except that one subject's windows are never divided: a
    subject with more comes alone, as a ``heavy.Subject`` of arrays."""
    scratch = os.path.join(job.folder, "split", str(job.number))
    return _partition(job.paths, job.written, job.divisor, job.capacity, scratch)


class SpillStore:
    """A private temporary folder of partition files, written by the reducer and the workers."""

    def __init__(self, fanout: int, capacity: int, parent: str | None = None) -> None:
        self.fanout = max(1, min(fanout, MAX_FANOUT))
        self.capacity = max(1, capacity)
        parent = parent if parent is not None else tempfile.gettempdir()
        _PARENTS.add(parent)
        self.folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)
        _LIVE[self.folder] = os.getpid()
        self._lock = _hold_lock(self.folder)
        os.mkdir(os.path.join(self.folder, "split"))
        os.mkdir(os.path.join(self.folder, "cand"))
        self.written = [0] * self.fanout

    @property
    def target(self) -> tuple[str, int]:
        """Where a worker writes its runs: (folder, fanout)."""
        return self.folder, self.fanout

    def spill(self, tables: Tables) -> None:
        """Append ``tables`` as one run of the reducer's, then empty them."""
        self.add_written(write_run(self.folder, self.fanout, tables, "m"))

    def add_written(self, counts: list[int]) -> None:
        """Count the entries a worker wrote (``write_run``'s answer)."""
        self.written = [a + b for a, b in zip(self.written, counts, strict=True)]

    def jobs(self) -> list[PartitionJob]:
        """The partitions to digest, once every run is written."""
        return [
            PartitionJob(
                self.folder,
                i,
                sorted(glob.glob(os.path.join(glob.escape(self.folder), f"*.{i}"))),
                written,
                self.fanout,
                self.capacity,
            )
            for i, written in enumerate(self.written)
            if written
        ]

    def candidates(self) -> Iterator[list[BurstCandidate]]:
        """Every burst candidate group the digest tasks wrote."""
        folder = os.path.join(self.folder, "cand")
        for name in sorted(os.listdir(folder)):
            yield from _records(os.path.join(folder, name))

    def close(self) -> None:
        """Remove the folder and everything in it."""
        close_writers()
        _remove(self.folder)
        _LIVE.pop(self.folder, None)
        if self._lock >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = -1
