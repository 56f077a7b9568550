"""A watch batch: the jobs it maps, how big it may be, and what a worker runs for it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CancelledError
from ..execute.base import Executor, SerialExecutor
from ..ingest.scan import map_split
from ..ingest.split import Split, split_file
from ..model.partial import Partial
from ..pipeline import uncompressed_size
from ..settings import Settings
from .lines import take_future, take_unknown
from .pieces import remove_pieces, take_counts, write_piece
from .state import FileRecord

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


def map_jobs(jobs: list[Job], executor: Executor, settings: Settings, pieces: str,
             flush_bytes: int, stop: Callable[[], bool]) -> int:
    """Map every split of ``jobs`` on ``executor`` into each job's Partial (or its failure);
    returns the number of splits. ``stop`` cancels (CancelledError)."""
    items = [(i, split) for i, job in enumerate(jobs) for split in job.splits]
    for job in jobs:
        job.partial = Partial(clock_skew_ns=settings.clock_skew_ns)
    # In this process, a long split can only stop itself: it asks at each flush.
    serial = isinstance(executor, SerialExecutor)
    mapper = functools.partial(map_tagged, settings=settings, pieces=pieces,
                               flush_bytes=flush_bytes, cancel=stop if serial else None)
    for index, split, result, written in executor.imap(mapper, items, stop):
        job = jobs[index]
        job.pieces += written
        problem = incomplete(split, result)
        if problem is not None:
            job.failure = job.failure or problem
        elif job.failure is None:
            assert job.partial is not None
            job.partial.update(result)
        del result
    return len(items)


class BatchSize:
    """How many bytes a batch maps, and in what chunks, within the memory budget."""

    def __init__(self, settings: Settings, workers: int, batch_bytes: int | None,
                 slow_start: bool, gz_flush_bytes: int | None) -> None:
        self.memory_mb = settings.memory_mb
        self.workers = workers
        self.limit = batch_bytes or max(
            MIN_BATCH,
            min(BATCH_BYTES_PER_WORKER * workers, settings.memory_mb * 1_000_000 // BATCH_SHARE_OF_MEMORY),
        )
        self.bytes = self.limit
        if slow_start and batch_bytes is None:
            # A slow start: lines can take far more room than a batch assumes (a new window,
            # user or token on each), so the first batch is a quarter, doubled while memory
            # stays under GROW_BELOW of the budget.
            self.bytes = max(MIN_BATCH, self.limit // 4)
        self.chunk_size = max(1, min(settings.chunk_size, self.limit))
        self.shrunk_at = 0
        """The peak memory at which the batch was last made smaller."""
        self.gz_flush_bytes = gz_flush_bytes or max(MIN_CHUNK, self.limit // workers)
        """A ``.gz`` holding more than this is counted in pieces of this many bytes."""

    def after_step(self, peak: int) -> None:
        """Halve the batch when memory passes HIGH_WATER of the budget (once per new peak): the
        lines take more room than a batch assumes (say, a new unknown level token each); double
        it, up to the limit, while memory stays low and it was never halved."""
        budget = self.memory_mb * 1_000_000
        if peak > HIGH_WATER * budget and peak > self.shrunk_at and self.bytes > MIN_BATCH:
            self.shrunk_at = peak
            self.bytes = max(MIN_BATCH, self.bytes // 2)
            self.chunk_size = min(self.chunk_size, self.bytes)
        elif peak < GROW_BELOW * budget and not self.shrunk_at:
            self.bytes = min(self.limit, self.bytes * 2)

    def cut(self, job: Job, budget: int, most: int) -> bool:
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


def incomplete(split: Split, result: Partial) -> str | None:
    if result.failures:
        return min(result.failures.values())
    if split.end is not None and result.bytes_read != split.end - split.start:
        return "the file shrank while it was read"
    return None
