"""The work a worker does for a run: map one chunk, or count some tokens of one again."""

from __future__ import annotations

from collections import Counter

from ..ingest.scan import map_split
from ..ingest.split import Split
from ..model.partial import Partial, Segment
from ..settings import Settings
from .spill import Written, new_tag, write_run, writer_name

Chunk = tuple[int, Split, "tuple[str, int] | None", "frozenset[bytes] | None", int]
"""A worker's task: (number in input order, split, spill folder and fanout or None, the unknown
level tokens to keep or None for all, bytes read between flushes to the spill folder or 0)."""


def map_chunk(item: Chunk, settings: Settings) -> tuple[int, Partial, Written | None]:
    """Chunk -> its Partial, without what the reducer does not need shipped.

    ``users`` and ``services`` are the sums over windows of ``user_lines`` and of
    ``service_errors`` + ``service_others``: the reducer counts them from those, so they are not
    shipped (the sums are checked, in case the mapper changes). Once the reducer spills, the
    chunk's tables are written to the spill folder here (returned: entries per partition), at
    the end and, for a split that is a whole compressed file, every ``flush_bytes`` on the way;
    once the reported unknown level tokens are known, the others are dropped here."""
    seq, split, target, kept, flush_bytes = item
    written: list[int] | None = None
    tag = new_tag()  # this run of the task's: another run of it writes under another

    def ship(part: Partial) -> None:
        nonlocal written
        if kept is not None:
            part.retain_unknown(kept)
        errors = sum(part.service_errors.values())
        if sum(part.users.values()) != sum(part.user_lines.values()) or sum(
            part.services.values()
        ) != errors + sum(part.service_others.values()) or sum(part.user_errors.values()) != errors:
            raise RuntimeError("the mapper's users or services are not the sums of its window counts")
        part.users, part.services = Counter(), Counter()
        if target is not None:
            folder, fanout = target
            counts = write_run(folder, fanout, part.take_tables(), writer_name(), tag,
                               part.take_runs())
            written = counts if written is None else [a + b for a, b in zip(written, counts, strict=True)]

    # Counts bound for the spill folder come from the kernel as columns, not dicts.
    columns = target is not None
    if target is not None and flush_bytes > 0:
        part = map_split(split, settings, flush=ship, flush_bytes=flush_bytes, tokens=kept,
                         columns=columns)
    else:
        part = map_split(split, settings, columns=columns)
    ship(part)
    return seq, part, None if written is None else Written(tag, written)


def count_tokens(job: tuple[Split, frozenset[bytes]], settings: Settings, flush_bytes: int) -> Partial:
    """A whole split read again for the unknown level tokens of ``job`` only: their counts and
    their segment's examples of them (nothing else)."""
    split, tokens = job

    def drop(part: Partial) -> None:
        part.take_tables()
        part.users, part.services = Counter(), Counter()

    part = map_split(split, settings, flush=drop, flush_bytes=flush_bytes, tokens=tokens)
    out = Partial(clock_skew_ns=part.clock_skew_ns, unknown_levels=part.unknown_levels,
                  failures=part.failures)
    for source, segments in part.segments.items():
        out.segments[source] = [Segment(s.start, s.end, unknown_examples=s.unknown_examples)
                                for s in segments]
    return out


