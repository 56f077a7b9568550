"""The memory budget: how ``--memory-mb`` is shared between processes, chunks and the reducer."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings

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
@dataclass(frozen=True)
class Budget:
    """How a run fits its memory budget."""

    chunk_size: int
    """Split size: ``--chunk-size`` or less, so that every chunk in flight fits."""
    spill_entries: int
    """(subject, window) entries the reducer holds in memory before it spills them."""
    partition_entries: int
    """Entries a spilled partition may have to be digested in memory; bigger ones are split."""


def plan(settings: Settings, workers: int, in_flight: int) -> Budget:
    """Share ``settings.memory_mb`` out between processes, chunks in flight and the reducer.

    After a fixed part per process and HEADROOM, 40% goes to chunks (each split in flight can
    be CHUNK_GROWTH times its size, once in a worker and once in the parent) and, once the
    chunks are done, to the partitions being digested (one per worker at a time); 45% goes to
    the reducer's counters, which are spilled past it.
    """
    free = settings.memory_mb * MB * (1 - HEADROOM) - PROCESS_BYTES - workers * WORKER_BYTES
    free = max(free, 8 * MB)
    chunks = 0.40 * free
    chunk_size = int(chunks / (CHUNK_GROWTH * (workers + in_flight)))
    return Budget(
        chunk_size=max(1, min(settings.chunk_size, chunk_size)),
        spill_entries=max(1, int(0.45 * free / ENTRY_BYTES)),
        partition_entries=max(1, int(chunks / (workers * DIGEST_ENTRY_BYTES))),
    )


def workers_within(settings: Settings) -> int:
    """The most worker processes ``settings.memory_mb`` holds, each with as much room again for
    its work as its fixed part; at least one. More workers than this would eat the budget."""
    room = settings.memory_mb * MB * (1 - HEADROOM) - PROCESS_BYTES
    return max(1, int(room / (2 * WORKER_BYTES)))


