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

import contextlib
import functools
import glob
import io
import itertools
import math
import os
import pickle
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, NamedTuple

import numpy as np

from ..detect.digest import combine, digest_columns, digest_subject, forget_tables
from ..detect.rules import BurstCandidate
from ..execute.heap import give_back_free_memory
from ..model import windows
from ..model.columns import Columns, Subject
from ..model.digest import PartDigest, Tables
from ..model.names import Names
from ..model.windows import WindowLines
from ..settings import Settings
from . import cleanup

BATCH = 1 << 16
"""Entries routed at a time: bounds the arrays a spill builds besides the counters it empties."""

MAX_FANOUT = 256
"""Most partition files one writer has open at once."""


# --- runs on disk -------------------------------------------------------------------------------
#
# A partition file is named WRITER.INDEX (WRITER: "m" for the reducer, ``writer_name()`` for a
# worker) and holds records (subject names, entries, tag) pickled one after another: each
# subject's name once, then the bytes of its entries as ``ROW``s, which refer to the names by
# index (``columns.Columns`` once read back). The tag is a task's (see ``new_tag``), or "" for
# the reducer. Splits of a partition go to split/, burst candidates to cand/.


def _dump(f: IO[bytes], record: Any) -> None:
    pickler = pickle.Pickler(f, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo: records are plain trees, and the memo costs a dict per object
    pickler.dump(record)


_WRITERS: dict[str, dict[str, int]] = {}
"""This process's partition files open for appending (folder -> path -> fd), kept from one
chunk to the next: opening a file costs more than writing a chunk's share to it."""


def _append(files: dict[str, int], path: str, record: Any) -> None:
    """Append ``record`` to ``path``, kept open in ``files`` (one folder's of ``_WRITERS``)."""
    buffer = io.BytesIO()
    _dump(buffer, record)
    fd = files.get(path)
    if fd is None:
        fd = files[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    data = memoryview(buffer.getbuffer())
    while data:
        data = data[os.write(fd, data) :]


def close_writers(keep: str | None = None) -> None:
    """Close this process's open partition files, but those in folder ``keep``."""
    for folder in [f for f in list(_WRITERS) if keep is None or f != keep]:
        files = _WRITERS.pop(folder, {})
        for fd in files.values():
            with contextlib.suppress(OSError):
                os.close(fd)


def writer_name() -> str:
    """This process's (and thread's) name for its partition files: unique among the writers of
    one spill folder, which, on a cluster, may be processes of many machines and threads."""
    host = "".join(c for c in socket.gethostname() if c.isalnum())[:32]
    main = threading.current_thread() is threading.main_thread()
    return f"w{os.getpid()}-{host}-{0 if main else threading.get_ident()}"


def release_process() -> None:
    """Let go of what a long-lived worker process keeps of a run: its open partition files (a
    removed folder's disk space is freed only once they close) and the lines per window."""
    close_writers()
    forget_windows()


class Written(NamedTuple):
    """What a task wrote to the spill folder: entries per partition, under its ``tag``."""

    tag: str
    counts: list[int]


def new_tag() -> str:
    """A tag for the records of one run of one task: a task run again (a retry, a worker lost
    before its result was fetched) writes under another, and only the tags of the results
    taken are read back, so nothing is counted twice."""
    return uuid.uuid4().hex[:16]


@functools.lru_cache(maxsize=1)
def _accepted(path: str) -> frozenset[str]:
    with open(path, "rb") as f:
        tags: frozenset[str] = pickle.load(f)
    return tags


ROW = np.dtype([("table", np.uint8), ("subject", np.uint32), ("window", np.int64),
                ("count", np.int64)])
"""An entry on disk: its table (index in ``Tables``), its subject's index among its record's
names, its window and count."""

Record = tuple[bytes, bytes, bytes, str]
"""(the subjects' names end to end, the int64 end offset of each, the bytes of the entries as
ROWs, tag): see ``names.Names``."""


def _records_of(columns: Columns, parts: int, divisor: int, tag: str
                ) -> Iterator[tuple[int, Record, int]]:
    """(partition, its record, its entries) for each partition of ``columns`` with entries.

    The partition is digit ``(crc32(subject) // divisor) % parts``: the first split uses the
    lowest digit, each further split the next one, so a split really divides a partition.
    One crc32 per subject; the entries are made bytes once, ordered by partition, then cut."""
    crc = columns.names.crc32().astype(np.int64)
    part = (crc // divisor % parts).astype(np.uint8 if parts <= 256 else np.int64)
    del crc  # small integers: the stable sorts below take linear time
    by_part = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[by_part], np.arange(parts + 1)).tolist()
    local = np.empty(len(part), dtype=np.uint32)  # a subject's index within its record
    local[by_part] = np.arange(len(part)) - np.repeat(bounds[:-1], np.diff(bounds))
    names = columns.names.take(by_part)
    del by_part
    rows = np.empty(columns.entries(), dtype=ROW)
    at = 0
    for t, (subjects, windows_, counts) in enumerate(columns.tables):
        end = at + len(subjects)
        rows["table"][at:end] = t
        rows["subject"][at:end] = local[subjects]
        rows["window"][at:end] = windows_
        rows["count"][at:end] = counts
        at = end
    row_part = np.concatenate([part[subjects] for subjects, _, _ in columns.tables])
    order = np.argsort(row_part, kind="stable")
    ends = np.searchsorted(row_part[order], np.arange(parts + 1)).tolist()
    del row_part
    data = rows[order].tobytes()
    del rows, order
    size = ROW.itemsize
    for i in range(parts):
        if bounds[i] < bounds[i + 1]:
            mine = names[bounds[i] : bounds[i + 1]]
            yield (i, (mine.blob, mine.ends.tobytes(), data[ends[i] * size : ends[i + 1] * size],
                       tag), ends[i + 1] - ends[i])


def _batches(paths: list[str], accepted: str | None, owned: bool,
             limit: int | None = None) -> Iterator[Columns]:
    """The records of partition files as columns (not summed), about ``limit`` entries at a
    time (None: all at once), decoded in bulk; a record tagged by a task whose result was not
    taken (``accepted``: the path of the taken tags, None for all) is skipped. The files are
    deleted as they are read if ``owned``."""
    taken = None if accepted is None else _accepted(accepted)
    names: list[Names] = []
    data: list[bytes] = []
    entries = 0
    for path in paths:
        for blob, ends, rdata, tag in _records(path):
            if tag and taken is not None and tag not in taken:
                continue
            names.append(Names(blob, np.frombuffer(ends, np.int64)))
            data.append(rdata)
            entries += len(rdata) // ROW.itemsize
            if limit is not None and entries >= limit:
                yield _decoded(names, data)
                names, data, entries = [], [], 0
        if owned:
            os.unlink(path)
    if data or limit is None:
        yield _decoded(names, data)


def _decoded(names: list[Names], data: list[bytes]) -> Columns:
    """Records (their names, their entries' bytes) as one Columns, each subject once; both
    lists are emptied."""
    starts = np.fromiter(itertools.accumulate((len(n) for n in names), initial=0), np.int64,
                         len(names) + 1)[:-1]  # where each record's names start
    distinct, index = Names.join(names).numbered() if names else (Names(), starts)
    names.clear()
    sizes = [len(d) // ROW.itemsize for d in data]
    rows: Any = np.frombuffer(b"".join(data), ROW)
    data.clear()
    tables = rows["table"]
    order = np.argsort(tables, kind="stable")
    bounds = np.searchsorted(tables[order], np.arange(len(Tables._fields) + 1)).tolist()
    local = rows["subject"].astype(np.int64)
    local += np.repeat(starts, sizes)
    subjects = index[local[order]]
    del local
    windows_, counts = rows["window"][order], rows["count"][order]
    return Columns(distinct, [(subjects[a:b], windows_[a:b], counts[a:b])
                              for a, b in itertools.pairwise(bounds)])


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

    def write(self, i: int, record: Record, entries: int) -> None:
        f = self.files.get(i)
        if f is None:
            f = self.files[i] = open(self.paths[i], "ab")  # noqa: SIM115 - closed on exit
        _dump(f, record)
        self.counts[i] += entries

    def __enter__(self) -> _Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self.files.values():
            f.close()


def write_run(folder: str, fanout: int, tables: Tables, writer: str, tag: str = "",
              runs: Iterable[Columns] = ()) -> list[int]:
    """Append ``tables`` and the column ``runs`` (the kernel's, see ``Partial.runs``) as one
    run to ``writer``'s partition files, empty them, and return how many entries went to each
    partition. The files stay open for the next run. With ``tag`` (a task's, see ``new_tag``),
    each record carries it.

    An entry goes to partition ``crc32(subject) % fanout`` (see ``_records_of``). The runs'
    columns are written as they are: a name listed twice, or a (subject, window) more than
    once, are summed where the partition is read back."""
    if len(_WRITERS) > 1 or folder not in _WRITERS:
        close_writers(keep=folder)
    files = _WRITERS.setdefault(folder, {})
    prefix = os.path.join(folder, f"{writer}.")
    counts = [0] * fanout
    pieces = itertools.chain(_pieces(tables), runs)
    for columns in pieces:
        for i, record, entries in _records_of(columns, fanout, 1, tag):
            _append(files, f"{prefix}{i}", record)
            counts[i] += entries
    for table in tables:
        table.clear()
    return counts


def _pieces(tables: Tables) -> Iterator[Columns]:
    """``tables`` as columns, BATCH entries at a time (a chunk's are usually fewer)."""
    if not tables.entries():
        return
    if tables.entries() <= BATCH:
        yield Columns.of(tables, summed=False)
        return
    for t, table in enumerate(tables):
        items = iter(table.items())
        while batch := dict(itertools.islice(items, BATCH)):
            yield Columns.of([batch if i == t else {} for i in range(len(tables))], summed=False)


def _sum_runs(paths: list[str], accepted: str | None, owned: bool) -> Columns:
    return Columns.gather(_batches(paths, accepted, owned))


def _one_subject(path: str) -> Subject:
    """The one subject in ``path`` as a ``columns.Subject``; the file is deleted once read."""
    return Subject.of(Columns.gather(_batches([path], None, True)))


def _partition(
    paths: list[str], written: int, divisor: int, capacity: int, scratch: str,
    accepted: str | None = None, owned: bool = True,
) -> Iterator[Columns | Subject]:
    """The partition in ``paths`` summed, or, when more than ``capacity`` entries were written
    to it, split on the next digit of the hash into files named ``scratch``.N and each of
    those in turn. The files are deleted as they are read if ``owned`` (scratch files always)."""
    if written <= capacity or divisor >= 1 << 32:
        yield _sum_runs(paths, accepted, owned)
        return
    parts = min(MAX_FANOUT, math.ceil(2 * written / capacity))
    names = [f"{scratch}.{j}" for j in range(parts)]
    counts = [0] * parts
    subjects: set[bytes] = set()
    with _Appender(names, counts) as out:
        for batch in _batches(paths, accepted, owned, capacity):
            if len(subjects) < 2:
                subjects.update(batch.names[:2])
            for j, record, entries in _records_of(batch, parts, divisor, ""):
                out.write(j, record, entries)
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
    accepted: str | None = None
    """The file of the tags whose records count (None: every record)."""
    keep_runs: bool = False
    """Leave the partition files in place: the task may run again and read them again."""


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
    _accepted.cache_clear()
    forget_tables()


@functools.lru_cache(maxsize=1)
def load_windows(path: str) -> Mapping[int, int]:
    """What ``save_windows`` wrote (the last one read is kept: a process reads it once)."""
    if path.endswith(".bin"):
        return windows.load(path)
    with open(path, "rb") as f:
        loaded: dict[int, int] = pickle.load(f)
    return loaded


_DIGESTING: dict[str, str] = {}
"""The spill folder whose partitions this process digests (one run's at a time)."""


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
    if _DIGESTING.get("folder") != job.folder:
        # This process's first partition of the run: the heap its chunks left free goes back
        # (kept, partitions of many windows peaked with it); later ones reuse each other's.
        _DIGESTING["folder"] = job.folder
        give_back_free_memory()
    # Candidates are written under this run's own name and published whole at the end: a run
    # of the task that dies leaves only a .part file, which nothing reads.
    attempt = new_tag()
    cand = os.path.join(job.folder, "cand", str(job.number))
    partial_cand = f"{cand}.{attempt}.part"

    def put(group: list[BurstCandidate]) -> None:
        if group:
            with open(partial_cand, "ab") as f:
                _dump(f, group)

    parts = []
    for piece in summed(job, attempt):
        if isinstance(piece, Columns):
            parts.append(digest_columns(piece, window_lines, settings, put))
        else:
            parts.append(digest_subject(piece, window_lines, settings, put))
        del piece  # before the next piece is summed
        windows.release(window_lines)  # the pages of the windows it looked up
    if os.path.exists(partial_cand):
        os.replace(partial_cand, cand)
    return combine(parts, settings.top)


def summed(job: PartitionJob, attempt: str = "") -> Iterator[Columns | Subject]:
    """The partition's runs summed, in pieces of at most ``job.capacity`` entries (split on
    further hash digits) as ``columns.Columns``, except that one subject's windows are never divided: a
    subject with more comes alone, as a ``columns.Subject`` of arrays. Scratch files are named
    after ``attempt`` (one run of the task), so that two runs never share one."""
    scratch = os.path.join(job.folder, "split", f"{job.number}{'.' + attempt if attempt else ''}")
    return _partition(job.paths, job.written, job.divisor, job.capacity, scratch, job.accepted,
                      owned=not job.keep_runs)


class SpillStore:
    """A private temporary folder of partition files, written by the reducer and the workers."""

    def __init__(self, fanout: int, capacity: int, parent: str | None = None) -> None:
        self.fanout = max(1, min(fanout, MAX_FANOUT))
        self.capacity = max(1, capacity)
        cleanup.install(after_fork_in_child=close_writers)  # the parent's files are the parent's
        self.folder = cleanup.make_folder(parent)
        self._lock = cleanup.hold_lock(self.folder)
        os.mkdir(os.path.join(self.folder, "split"))
        os.mkdir(os.path.join(self.folder, "cand"))
        self.written = [0] * self.fanout
        self.tags: set[str] = set()
        """The tags of the task results taken: only their records are read back."""

    @property
    def target(self) -> tuple[str, int]:
        """Where a worker writes its runs: (folder, fanout)."""
        return self.folder, self.fanout

    def spill(self, tables: Tables) -> None:
        """Append ``tables`` as one run of the reducer's, then empty them."""
        self.add_written(write_run(self.folder, self.fanout, tables, "m"))

    def add_written(self, counts: list[int], tag: str = "") -> None:
        """Count the entries a worker wrote (``write_run``'s answer) under ``tag``."""
        self.written = [a + b for a, b in zip(self.written, counts, strict=True)]
        if tag:
            self.tags.add(tag)

    def jobs(self, keep_runs: bool = False) -> list[PartitionJob]:
        """The partitions to digest, once every run is written; ``keep_runs`` when a task may
        run more than once."""
        accepted = None
        if self.tags or keep_runs:
            accepted = os.path.join(self.folder, "tags.pickle")
            with open(accepted, "wb") as f:
                pickle.dump(frozenset(self.tags), f, protocol=pickle.HIGHEST_PROTOCOL)
        return [
            PartitionJob(
                self.folder,
                i,
                sorted(glob.glob(os.path.join(glob.escape(self.folder), f"*.{i}"))),
                written,
                self.fanout,
                self.capacity,
                accepted,
                keep_runs,
            )
            for i, written in enumerate(self.written)
            if written
        ]

    def candidates(self) -> Iterator[list[BurstCandidate]]:
        """Every burst candidate group the digest tasks published."""
        folder = os.path.join(self.folder, "cand")
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".part"):
                yield from _records(os.path.join(folder, name))

    def close(self) -> None:
        """Remove the folder and everything in it."""
        close_writers()
        cleanup.remove_made(self.folder)
        if self._lock >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = -1

