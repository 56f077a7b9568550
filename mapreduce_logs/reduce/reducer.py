"""The reducer: chunk Partials, arriving in any order, merged into one digested Partial.

Small totals merge into one Partial; the (user, window) and (service, window) counters gather
in Tables, spilled to disk by hash partition past the budget (``spill``), and digested at the
end on the executor, one partition per worker at a time."""

from __future__ import annotations

import functools
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping

from ..detect.digest import combine, digest_tables, finish
from ..detect.rules import BurstCandidate
from ..execute.base import Executor
from ..ingest.split import Split
from ..model import windows
from ..model.digest import Tables
from ..model.partial import MAX_EXAMPLES, Partial, Segment, Source, add_counts
from ..model.windows import merge_files
from ..settings import Settings, limits
from .budget import Budget
from .spill import (
    SpillStore,
    Written,
    digest_partition,
    forget_windows,
    load_windows,
    save_windows,
)
from .tasks import count_tokens

EARLY_SPILL = 2
"""The reducer spills from its first chunks when the run's counters are expected to pass this
many times ``spill_entries``: it would spill anyway, and merging them first only costs time."""
CHUNK_WINDOWS = 25_000
CHUNK_WINDOWS_BYTES = 8_000_000
"""Chunks grow only while the input makes fewer than CHUNK_WINDOWS windows of lines per window
per CHUNK_WINDOWS_BYTES bytes (a day of logs at the default window makes about 1,500 a GiB)."""


def reduce_partials(partials: Iterable[Partial], settings: Settings) -> Partial:
    """Merge partials in arrival order, in memory; ``Partial()`` is the start, so one is reduced too."""
    acc = Partial(clock_skew_ns=settings.clock_skew_ns)
    for partial in partials:
        acc.update(partial)
    return acc


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
        self.tokens = FirstTokens(limits().unknown_levels)
        self.store: SpillStore | None = None
        self.spill_seconds = 0.0
        self.held = 0
        """The most (subject, window) entries the tables held in memory."""
        self.windows_seen = 0
        """Windows of lines per window summed over the chunks merged (not distinct)."""
        self.folded = False
        """Whether lines per window passed ``limits().window_buffer`` windows."""
        self.chunk_lines: dict[tuple[Source, int], int] = {}
        """Lines of each chunk by (source, start): where a cut chunk's lines begin in the
        segment it was joined into."""
        self._kept: frozenset[bytes] | None = None
        self.window_files: list[str] = []
        """Sorted runs of lines per window, written out of ``acc`` in the spill folder each
        time they pass ``limits().window_buffer`` windows."""
        self.cut: dict[int, Split] = {}
        """Chunks (by number) that are whole compressed files flushed as they were read, before
        the reported tokens were known: they kept only their own first tokens."""
        self.cut_kept: dict[int, frozenset[bytes]] = {}
        """The tokens such a chunk kept, when it may have dropped others."""

    def target(self) -> tuple[str, int] | None:
        """Where a chunk mapped from now on writes its tables (None: it ships them here)."""
        return None if self.store is None else self.store.target

    def chunk_size(self) -> int:
        """Bytes to cut the next split to: chunks cost less once they write their tables to the
        spill folder, the more so when the counters left their share unused."""
        # Dense windows (a new one every few lines, or more than the dict of lines per window
        # holds): such runs peak at the end, in the digest of long subjects, and measured 25-30
        # MB higher there with 8 MB chunks than with 2 MB ones. Their chunks keep their size.
        dense = self.folded or (
            self.windows_seen * CHUNK_WINDOWS_BYTES > CHUNK_WINDOWS * self.acc.bytes_read)
        if self.store is None or dense:
            return self.budget.chunk_size
        return self.budget.spilling_chunk_size(self.held)

    def tokens_kept(self) -> frozenset[bytes] | None:
        """The only unknown level tokens a chunk mapped from now on need ship (None: all)."""
        if not self.tokens.full:
            return None
        if self._kept is None:
            self._kept = frozenset(self.tokens.admitted)
        return self._kept

    def add(self, seq: int, part: Partial, written: Written | None = None) -> None:
        """Merge chunk number ``seq`` (in input order) into the result; ``written`` tells what
        its worker wrote to the spill folder instead of shipping it."""
        if seq in self.cut:
            if len(part.unknown_levels) >= self.tokens.limit:
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
            self.store.add_written(written.counts, written.tag)
        for table, mine in zip(part.take_tables(), self.tables, strict=True):
            add_counts(mine, table)
        # users and services are sums of the tables over windows: the digest counts them there.
        part.users, part.services = Counter(), Counter()
        self.windows_seen += len(part.window_lines)
        for source, segments in part.segments.items():
            for segment in segments:
                self.chunk_lines[(source, segment.start)] = segment.newlines
        held = len(self.acc.window_lines)
        if held and held + len(part.window_lines) > limits().window_buffer:
            self._fold_windows()  # before the merge: the dict never holds a chunk's more
        self.acc.update(part)
        if len(self.acc.window_lines) > limits().window_buffer:
            self._fold_windows()
        entries = self.tables.entries()
        self.held = max(self.held, entries)
        if entries > self.budget.spill_entries or (
            self.store is None and self._expected() > EARLY_SPILL * self.budget.spill_entries
        ):
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

    def _expected(self) -> float:
        """The (subject, window) entries the whole input is expected to make, from those of the
        bytes read so far."""
        seen = max(self.acc.bytes_read, 1)
        return self.tables.entries() * max(1.0, self.input_bytes / seen)

    def _fanout(self) -> int:
        """Partitions for the first spill: the entries expected in all, over what one may hold."""
        return math.ceil(2 * self._expected() / self.budget.partition_entries)

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
                for segment in segments:
                    self._add_examples(source, segment)

    def _add_examples(self, source: Source, cut: Segment) -> None:
        """Add the examples counted again in a cut chunk to the segment of ``acc`` it was joined
        into: its lines shifted by those of the chunks before it there, the first kept."""
        for mine in self.acc.segments.get(source, []):
            if mine.start <= cut.start < mine.end or mine.start == cut.start:
                shift = sum(lines for (src, start), lines in self.chunk_lines.items()
                            if src == source and mine.start <= start < cut.start)
                examples = dict(mine.unknown_examples)
                for token, more in cut.unknown_examples.items():
                    shifted = [(line + shift, text) for line, text in more]
                    examples[token] = sorted(examples.get(token, []) + shifted)[:MAX_EXAMPLES]
                mine.unknown_examples = examples
                return

    def _fold_windows(self) -> None:
        """Write ``acc``'s lines per window as a sorted run to the spill folder, and empty it."""
        self.start_spilling()
        self.folded = True
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
            # A cluster may run a task twice (a lost worker): its partition files must stay.
            jobs = self.store.jobs(keep_runs=executor.reruns_tasks)
            part = combine(executor.imap(task, jobs), self.settings.top)
            acc.digest = finish(part, self.store.candidates(), window_lines, self.settings)
        self.tables = Tables.empty()
        return acc

    def close(self) -> None:
        forget_windows()
        if self.store is not None:
            self.store.close()


