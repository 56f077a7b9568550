"""Files -> one digested Partial: split, map on an executor, reduce within the memory budget.

The one path both ``run`` and ``watch`` take (watch maps its batches through the same tasks)."""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .execute.base import Executor
from .execute.heap import reuse_freed_memory
from .ingest import storage
from .ingest.split import Readable, Split, is_compressed, split_files, stream_splits
from .model.partial import Partial
from .reduce.budget import GZIP_GROWTH, plan
from .reduce.cleanup import remove_stale, removed_on_sigterm
from .reduce.reducer import Reducer
from .reduce.spill import Written, release_process
from .reduce.tasks import Chunk, map_chunk
from .settings import Settings

SPILL_DIR: str | None = None
"""Where spill folders are made unless ``run_files`` is told; None is the system's temporary
folder (``TMPDIR``). The command line passes its output folder."""


@dataclass
class RunStats:
    """Figures about how a run went (never part of summary.json)."""

    chunks: int = 0
    stages: dict[str, float] = field(default_factory=dict)


def map_reusing_memory(item: Chunk, settings: Settings) -> tuple[int, Partial, Written | None]:
    """``map_chunk`` in a process that keeps freed heap for its next chunk (``heap``: given
    back past a bound, and before the partitions are digested, see ``spill``)."""
    reuse_freed_memory()
    return map_chunk(item, settings)


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
    stream: Readable | None = None,
    stream_mtime_ns: int = 0,
) -> Partial:
    """Split, map and reduce ``files``, then ``stream`` (standard input, read once, as it comes,
    named ``-``, its modification time ``stream_mtime_ns``) into one digested Partial.
    Unreadable files land in ``failures``. Memory follows ``plan``; what does not fit is spilled to a hidden folder made
    in ``spill_dir`` (default SPILL_DIR), removed before this returns or raises, and by SIGTERM
    before it kills the process."""
    stats = stats if stats is not None else RunStats()
    reuse_freed_memory()
    workers = executor.workers
    # A cluster's executor says how much memory a task has where it runs (local processes are
    # sized by the plan itself).
    task_bytes = executor.task_bytes
    if task_bytes is None:
        budget = plan(settings, workers, executor.in_flight)
    else:
        budget = plan(settings, workers, executor.in_flight, task_bytes)
    started = time.perf_counter()
    failed: dict[str, str] = {}
    on_disk: dict[int, int] = {}
    """Bytes of each chunk in its file, for ``progress`` (a .gz reads more than its size)."""

    spill_parent = spill_dir or SPILL_DIR
    if spill_parent is not None:
        remove_stale(spill_parent)  # what a killed run left there
    reducer = Reducer(settings, budget, _input_bytes(files), spill_parent)

    def splits() -> Iterator[Chunk]:
        cut_to = budget.chunk_size

        def chunk_size() -> int:
            """Asked as each split is cut: bigger once the run spills (see Reducer)."""
            nonlocal cut_to
            cut_to = reducer.chunk_size()
            return cut_to

        items: Iterable[Split | tuple[str, str]] = split_files(files, chunk_size)
        if stream is not None:
            items = itertools.chain(
                items, stream_splits(stream, budget.chunk_size, stream_mtime_ns))
        for item in items:
            if isinstance(item, Split):
                flush = 0
                if item.compressed and uncompressed_size(item.path) > budget.chunk_size:
                    # A whole compressed file is one split, and can be far larger than a chunk:
                    # its worker writes its counters to the spill folder as it goes.
                    reducer.start_spilling()
                    flush = budget.chunk_size
                kept = reducer.tokens_kept()
                bigger = item.data is None and cut_to > budget.chunk_size
                if bigger and item.end and not flush and kept is None:
                    # Cut bigger than a chunk that ships every token (from a file: standard
                    # input's splits keep their size): it ships its own first unknown level
                    # tokens only, the others are counted again if reported.
                    flush = item.end - item.start
                if flush and kept is None:
                    reducer.cut[stats.chunks] = item
                on_disk[stats.chunks] = item.disk_bytes()
                yield stats.chunks, item, reducer.target(), kept, flush
                stats.chunks += 1
            else:
                failed[item[0]] = item[1]

    mapper = functools.partial(map_reusing_memory, settings=settings)
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
        executor.on_every_worker(release_process)  # long-lived workers keep files, windows
        if collecting:
            gc.enable()
