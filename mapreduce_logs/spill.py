"""Counters too big for memory: spilled to disk by key, then digested one partition at a time.

The reducer keeps the (user, window) and (service, window) counters in memory until they pass
their share of the memory budget, then appends them as a *run* to the partition files of a
private temporary folder. An entry goes to the partition of ``crc32(user or service)``, a hash
that is the same in every process (``hash()`` is not), so all the windows of one user or service
land in one partition and no key is in two. At the end each partition's runs are summed in
memory, one partition at a time (one that would not fit is first split again on further digits
of the same hash), and digested into what the report needs: top-k lists (the top k of the
partitions' top-k lists is exact because the partitions are disjoint), distinct counts, error
spikes, and the busiest user share with the burst candidates it filters.

The folder is removed by ``close()`` (the reducer calls it in ``finally``); ``atexit`` removes
any this process still has, and so does SIGTERM inside ``removed_on_sigterm()``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import heapq
import itertools
import math
import os
import pickle
import shutil
import signal
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from types import FrameType
from typing import IO, Any, NamedTuple, Protocol

from .anomalies import (
    BurstCandidate,
    Found,
    burst_candidates,
    bursts,
    spikes,
    user_share,
)
from .partial import add_counts
from .settings import Settings

Key = tuple[bytes, int]
"""(user or service, window index)."""

BATCH = 1 << 15
"""Entries routed at a time: bounds the lists a spill builds besides the counters it empties."""

MAX_FANOUT = 256
"""Most partition files written at once (open file handles)."""


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


def top_k(counts: Iterable[tuple[bytes, int]], k: int) -> list[tuple[bytes, int]]:
    """The ``k`` largest counts, by count descending then key ascending (code-point order)."""
    return heapq.nsmallest(k, counts, key=lambda kv: (-kv[1], kv[0]))


def subject_totals(*tables: Mapping[Key, int]) -> Counter[bytes]:
    """Lines per subject, summed over windows (and over the given tables)."""
    totals: Counter[bytes] = Counter()
    for table in tables:
        # One per entry in C, then the rest of the counts above 1 in Python: few of them.
        totals.update(map(itemgetter(0), table))
        for (subject, _), n in compress(table.items(), map((1).__lt__, table.values())):
            totals[subject] += n - 1
    return totals


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


class CandidateSink(Protocol):
    """Where burst candidates wait, a partition's group at a time, for the run's busiest share."""

    def put(self, group: list[BurstCandidate]) -> None: ...

    def __iter__(self) -> Iterator[list[BurstCandidate]]: ...


class Candidates:
    """Burst candidates kept in memory (when nothing was spilled)."""

    def __init__(self) -> None:
        self.groups: list[list[BurstCandidate]] = []

    def put(self, group: list[BurstCandidate]) -> None:
        if group:
            self.groups.append(group)

    def __iter__(self) -> Iterator[list[BurstCandidate]]:
        return iter(self.groups)


def digest(
    partitions: Iterable[Tables],
    window_lines: Mapping[int, int],
    settings: Settings,
    candidates: CandidateSink,
) -> Digest:
    """Digest disjoint partitions (every key of a subject in one partition), one at a time."""
    k = settings.top
    top_services: list[tuple[bytes, int]] = []
    top_users: list[tuple[bytes, int]] = []
    distinct_services = distinct_users = 0
    found_spikes: list[Found] = []
    share = 0.0
    for tables in partitions:
        services = subject_totals(tables.service_errors, tables.service_others)
        distinct_services += len(services)
        top_services = top_k(itertools.chain(top_services, services.items()), k)
        del services
        found_spikes += spikes(tables.service_errors, tables.service_others, settings)
        users = subject_totals(tables.user_lines)
        distinct_users += len(users)
        top_users = top_k(itertools.chain(top_users, users.items()), k)
        del users
        # The partition's own share is at most the run's: its filter keeps every burst.
        own = user_share(tables.user_lines, window_lines)
        share = max(share, own)
        candidates.put(burst_candidates(tables.user_lines, window_lines, own, settings))
        del tables
    found_bursts: list[Found] = []
    for group in candidates:
        found_bursts += bursts(group, share, window_lines, settings)
    return Digest(
        top=k,
        rules=_rules(settings),
        top_services=top_services,
        top_users=top_users,
        distinct_services=distinct_services,
        distinct_users=distinct_users,
        spikes=found_spikes,
        bursts=found_bursts,
    )


# --- the store on disk --------------------------------------------------------------------------

PREFIX = "mapreduce_logs-spill-"
"""Spill folders are named PREFIX + the process id + "-" + random letters."""

_LIVE: dict[str, int] = {}
"""Spill folders not yet removed -> the process that made them (forked children must not)."""

_PARENTS: set[str] = set()
"""Folders spill folders were made in, noted before each is made: a signal may come between
``mkdtemp`` and the folder's entry in _LIVE."""


def _made_here(parent: str) -> list[str]:
    return glob.glob(os.path.join(glob.escape(parent), f"{PREFIX}{os.getpid()}-*"))


@atexit.register
def remove_spills() -> None:
    """Remove every spill folder this process made and has not removed yet."""
    for folder, pid in list(_LIVE.items()):
        if pid == os.getpid():
            shutil.rmtree(folder, ignore_errors=True)
            _LIVE.pop(folder, None)
    for parent in list(_PARENTS):
        for folder in _made_here(parent):
            shutil.rmtree(folder, ignore_errors=True)


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


def _default_in_child() -> None:
    # A pool forked inside the block must keep SIGTERM's default action: a Python handler only
    # runs between bytecodes, and Pool.terminate() must be able to stop a stuck worker.
    if signal.getsignal(signal.SIGTERM) is _remove_then_die:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_in_child)


def _dump(f: IO[bytes], record: Any) -> None:
    pickler = pickle.Pickler(f, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo: records are plain trees, and the memo costs a dict per object
    pickler.dump(record)


def _records(path: str) -> Iterator[Any]:
    with open(path, "rb") as f:
        while True:
            try:
                record = pickle.load(f)
            except EOFError:
                return
            yield record


class SpillStore:
    """Runs of Tables in partition files under a private temporary folder.

    ``capacity`` is how many entries one partition may hold in memory when it is summed; a
    partition that received more is split again before it is read.
    """

    def __init__(self, fanout: int, capacity: int, parent: str | None = None) -> None:
        self.fanout = max(1, min(fanout, MAX_FANOUT))
        self.capacity = max(1, capacity)
        parent = parent if parent is not None else tempfile.gettempdir()
        _PARENTS.add(parent)
        self.folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)
        _LIVE[self.folder] = os.getpid()
        self.written = [0] * self.fanout
        self.runs = 0
        self._candidates = 0

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def spill(self, tables: Tables) -> None:
        """Append ``tables`` as one run to the partition files, then empty them."""
        with _Appender([self._path(f"p{i}") for i in range(self.fanout)], self.written) as out:
            for index, table in enumerate(tables):
                _route(table.items(), index, out.write, self.fanout, 1)
        for table in tables:
            table.clear()
        self.runs += 1

    def partitions(self) -> Iterator[Tables]:
        """Every partition summed, one at a time; its files are deleted once read."""
        for i in range(self.fanout):
            yield from self._partition(self._path(f"p{i}"), self.written[i], self.fanout)

    def _partition(self, path: str, written: int, divisor: int) -> Iterator[Tables]:
        if not written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        parts = min(MAX_FANOUT, math.ceil(2 * written / self.capacity))
        if written <= self.capacity or divisor * parts > 1 << 32:
            yield _sum_runs(path)
            return
        # Too big to sum in memory: split on the next digits of the same hash.
        names = [f"{path}.{j}" for j in range(parts)]
        counts = [0] * parts
        subjects: set[bytes] = set()
        with _Appender(names, counts) as out:
            for table, items in _records(path):
                if len(subjects) < 2:
                    subjects.update(key[0] for key, _ in items)
                _route(items, table, out.write, parts, divisor)
        os.unlink(path)
        for name, count in zip(names, counts, strict=True):
            if len(subjects) == 1 and count:
                yield _sum_runs(name)  # one user or service: no split can divide it
            else:
                yield from self._partition(name, count, divisor * parts)

    def put(self, group: list[BurstCandidate]) -> None:
        """Keep a partition's burst candidates on disk until the run's share is known."""
        if group:
            with open(self._path("candidates"), "ab") as f:
                _dump(f, group)
            self._candidates += 1

    def __iter__(self) -> Iterator[list[BurstCandidate]]:
        if self._candidates:
            yield from _records(self._path("candidates"))

    def close(self) -> None:
        """Remove the folder and everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        _LIVE.pop(self.folder, None)


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


def _sum_runs(path: str) -> Tables:
    tables = Tables.empty()
    for table, items in _records(path):
        add_counts(tables[table], dict(items))
    os.unlink(path)
    return tables
