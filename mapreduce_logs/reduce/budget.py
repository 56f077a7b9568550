"""The memory budget: how ``--memory-mb`` is shared between processes, chunks and the reducer."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings, limits

MB = 1_000_000

PROCESS_BYTES = 25 * MB
"""The parent: interpreter, modules, the memory sampler, the small totals."""
WORKER_BYTES = 38 * MB
"""A worker: its share of the interpreter and of numpy (which the spill and the window rules
use in every worker), its 1 MiB read blocks and the lists made from them."""
CHUNK_GROWTH = 16
"""Most bytes a chunk's Partial takes per input byte, its pickle included. Measured worst case:
every line a new unknown level token (lines full of new users take 6 to 9, typical logs 3)."""
COLUMN_GROWTH = 11
"""Most bytes a worker takes per input byte of a chunk whose tables it writes to the spill folder
(as columns, from the compiled kernel) and which ships at most the reported unknown level tokens.
Measured peaks, 2 to 32 MiB chunks: every line a new unknown level token 10.2-10.8 (the kernel
still counts them all), every line a new window 7.3-8.2, random stamps 7.4-7.8, one line a second
with ``--window 1`` 6.3, a new user on most lines 2.0-2.4, zipf users 0.8."""
COLUMN_SHIPPED = 4
"""Most bytes the parent takes per input byte of such a chunk: its Partial pickled, then
unpickled (lines per window and the timeline; measured 3.3-3.8 when every line is a new window,
nothing much otherwise)."""
WINDOW_BYTES = 100
"""One window of lines per window in the reducer's dict (measured 86 B)."""
ENTRY_BYTES = 240
"""One (subject, window) entry in the reducer's dicts: key tuple, bytes, int, dict slot."""
DIGEST_ENTRY_BYTES = 400
"""One entry while its partition is digested: the summed dict, totals, shares, candidates."""
HEADROOM = 0.15
"""Left free: transient peaks between samples, and freed memory a process does not give back."""
GZIP_GROWTH = 8
"""Guess of uncompressed bytes per compressed byte, only to size the first spill partitions."""
@dataclass(frozen=True)
class Budget:
    """How a run fits its memory budget."""

    chunk_size: int
    """Split size: ``--chunk-size`` or less, so that every chunk in flight fits."""
    spill_entries: int
    """(subject, window) entries the reducer holds in memory before it spills them."""
    partition_entries: int
    """Entries a spilled partition may have to be digested in memory; bigger ones are split."""
    column_chunk_size: int = 0
    """Split size, once the run spills, for chunks that write their tables to the spill folder
    (COLUMN_GROWTH, COLUMN_SHIPPED) in the chunks' share; 0: ``chunk_size``."""
    lent_chunk_size: int = 0
    """The same when the reducer's share is lent to chunks too (but for its lines per window):
    a run that spilled before its counters took any of it; 0: ``column_chunk_size``."""
    kept_share: float = 0.0
    """Of the counters' share, what is never lent: room for the lines per window."""

    def spilling_chunk_size(self, held: int) -> int:
        """Split size once the run spills, its counters having held at most ``held`` entries in
        memory: the part of their share they never took (a process may keep what it freed), but
        for ``kept_share``, is lent to chunks, so a run that spilled from its first chunks cuts
        the biggest."""
        column = self.column_chunk_size or self.chunk_size
        lent = self.lent_chunk_size or column
        unused = max(0.0, 1 - held / max(1, self.spill_entries))
        if unused <= self.kept_share:
            return column
        return int(column + (lent - column) * (unused - self.kept_share) / (1 - self.kept_share))


def plan(
    settings: Settings, workers: int, in_flight: int, task_bytes: int | None = None
) -> Budget:
    """Share ``settings.memory_mb`` out between processes, chunks in flight and the reducer.

    After a fixed part per process and HEADROOM, 40% goes to chunks (each split in flight can
    be CHUNK_GROWTH times its size, once in a worker and once in the parent) and, once the
    chunks are done, to the partitions being digested (one per worker at a time); 45% goes to
    the reducer's counters, which are spilled past it. Once the run spills, chunks cost less
    (COLUMN_GROWTH in a worker, COLUMN_SHIPPED in the parent): ``column_chunk_size``; what the
    counters did not take of their share, but for ``limits().window_buffer`` windows of lines
    per window, is lent to chunks too (``lent_chunk_size``, ``Budget.spilling_chunk_size``).

    ``task_bytes`` is given when the workers are not this machine's processes (a cluster): the
    memory one task may use there. The budget then counts no local worker but the cluster's
    client, ``in_flight`` chunks held here, and sizes chunks and partitions to TASK_SHARE of
    ``task_bytes`` as well.
    """
    local = 0 if task_bytes is not None else workers
    free = settings.memory_mb * MB * (1 - HEADROOM) - PROCESS_BYTES - local * WORKER_BYTES
    if task_bytes is not None:
        free -= CLIENT_BYTES
    free = max(free, 8 * MB)
    chunks = 0.40 * free
    reducer = 0.45 * free
    chunk_size = int(chunks / (CHUNK_GROWTH * (local + in_flight)))
    per_column_byte = COLUMN_GROWTH * local + COLUMN_SHIPPED * in_flight
    column_chunk_size = int(chunks / per_column_byte)
    kept = min(1.0, limits().window_buffer * WINDOW_BYTES / reducer)
    lent = reducer * (1 - kept)
    lent_chunk_size = int((chunks + lent) / per_column_byte)
    partition_entries = int(chunks / (max(1, local) * DIGEST_ENTRY_BYTES))
    if task_bytes is not None:
        chunk_size = min(chunk_size, int(TASK_SHARE * task_bytes / CHUNK_GROWTH))
        column_chunk_size = min(column_chunk_size, int(TASK_SHARE * task_bytes / COLUMN_GROWTH))
        lent_chunk_size = min(lent_chunk_size, int(TASK_SHARE * task_bytes / COLUMN_GROWTH))
        partition_entries = min(partition_entries,
                                int(TASK_SHARE * task_bytes / DIGEST_ENTRY_BYTES))
    chunk_size = max(1, min(settings.chunk_size, chunk_size))
    column_chunk_size = max(chunk_size, min(settings.chunk_size, column_chunk_size))
    return Budget(
        chunk_size=chunk_size,
        spill_entries=max(1, int(reducer / ENTRY_BYTES)),
        partition_entries=max(1, partition_entries),
        column_chunk_size=column_chunk_size,
        lent_chunk_size=max(column_chunk_size, min(settings.chunk_size, lent_chunk_size)),
        kept_share=kept,
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


