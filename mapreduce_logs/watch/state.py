"""The watcher's state in memory, and what changed in it since the last commit.

The state is split by size. What stays small whatever the input (totals, levels, hours, the
lines per window, line-order facts per file, the file records) is held here. The counters that
grow with the number of users and services live on disk (``store``): what a change adds
to them waits in ``Pending`` until the checkpoint commits it, together with the small parts
that changed, in one transaction.

A file's bytes ``[0, offset)`` are counted for good (they end with a newline). Its unterminated
last line, once settled, is counted provisionally as a *tail* (for a ``.gz`` file, the whole file
is the tail): the outputs include every tail, and a tail is taken back when the file grows, so a
line completed later is counted once, as ``run`` would count it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..model.partial import Partial, Source, add_counts, copy_partial
from ..model.windows import WindowLines, merged, run_of, with_more
from ..settings import limits
from .lines import (
    COUNTED,
    AddFuture,
    AddTokens,
    DropTail,
    KeepTail,
    LineChange,
    Prune,
    Rekey,
    take_future,
    take_unknown,
)
from .pieces import Counts, take_counts

FINGERPRINT_BYTES = 1024
"""A file's fingerprint covers its first counted bytes, up to this many."""


def fingerprint(head: bytes) -> bytes:
    """A short stable digest of a file's first bytes."""
    return hashlib.blake2b(head, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What the watcher knows about one file (one generation of one device and inode)."""

    rid: int
    path: str
    """Where the file is now, or was last seen; examples and per-file anomalies show it."""
    generation: int
    """Tells apart, in ``Partial.segments``, sources that have shown under the same path."""
    dev: int
    ino: int
    compressed: bool = False
    offset: int = 0
    """Bytes ``[0, offset)`` are counted for good; ``offset`` is 0 or follows a newline."""
    fp_len: int = 0
    fp_hash: bytes = fingerprint(b"")
    """Digest of the first ``fp_len`` bytes, ``fp_len = min(counted_end, FINGERPRINT_BYTES)``."""
    tail_end: int | None = None
    """End of the provisional tail ``[offset, tail_end)`` (a whole ``.gz``: its size on disk)."""
    tail_sig: tuple[int, int] | None = None
    """(size, mtime_ns) of the file when the tail was read."""
    live: bool = True
    """False once the file left the folder; its counts stay, and a rename back finds it."""

    @property
    def source(self) -> Source:
        return (self.path, self.generation)

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)

    @property
    def counted_end(self) -> int:
        """Bytes of the file that the outputs include (tail included)."""
        return self.offset if self.tail_end is None else max(self.offset, self.tail_end)

    def matches(self, size: int, head: bytes) -> bool:
        """Whether a file of ``size`` bytes starting with ``head`` still holds what was counted."""
        return (
            size >= self.counted_end
            and len(head) >= self.fp_len
            and fingerprint(head[: self.fp_len]) == self.fp_hash
        )

    def with_counted(self, head: bytes, **changes: Any) -> FileRecord:
        """This record with ``changes``, its fingerprint extended over the new counted bytes."""
        new = replace(self, **changes)
        length = min(new.counted_end, FINGERPRINT_BYTES, len(head))
        if length > self.fp_len:
            new = replace(new, fp_len=length, fp_hash=fingerprint(head[:length]))
        return new


@dataclass
class Pending:
    """What changed since the last commit, for the checkpoint to write."""

    counts: Counts = field(default_factory=Counts.empty)
    """Added for good to the counters on disk."""
    windows: Counter[int] = field(default_factory=Counter)
    """Added for good to the lines per window."""
    new_tails: dict[int, Counts] = field(default_factory=dict)
    """rid -> the counters of a tail set since the last commit."""
    tail_pieces: dict[int, list[str]] = field(default_factory=dict)
    """rid -> piece files holding more counters of that new tail (a big ``.gz``)."""
    count_pieces: list[str] = field(default_factory=list)
    """Piece files of a new tail that was then counted for good."""
    unused_pieces: list[str] = field(default_factory=list)
    """Piece files of a new tail replaced before it was committed: to remove."""
    dropped_tails: set[int] = field(default_factory=set)
    """Committed tails to take back."""
    kept_tails: set[int] = field(default_factory=set)
    """Committed tails now counted for good."""
    records: set[int] = field(default_factory=set)
    sources: set[Source] = field(default_factory=set)
    """Sources whose segments changed."""
    tails: set[int] = field(default_factory=set)
    """rids whose tail changed."""
    lines: list[LineChange] = field(default_factory=list)
    """Changes to the line facts on disk, in order (see ``lines.LineStore.apply``)."""
    small: bool = False
    """Anything else changed (totals, generations, counters of files)."""


SMALL_FIELDS = ("files", "bytes_read", "lines", "valid", "blank", "outside", "levels", "hours",
                "min_ts", "max_ts", "malformed", "unknown_levels", "failures", "timeline")
"""The fields of the committed Partial saved as one piece (``window_lines`` and ``segments``
are saved by window and by source, the high-cardinality counters by the store)."""


def _rekey(partial: Partial, old: Source, new: Source) -> bool:
    segments = partial.segments.pop(old, None)
    if segments is None:
        return False
    partial.segments.setdefault(new, []).extend(segments)
    return True


class State:
    """The committed small Partial, the provisional tails' small parts and the file records.

    Every change goes through a method that also notes it in ``pending``.
    """

    def __init__(self, clock_skew_ns: int) -> None:
        self.partial = Partial(clock_skew_ns=clock_skew_ns)
        self.records: dict[int, FileRecord] = {}
        self.tails: dict[int, Partial] = {}
        self.next_generation: dict[str, int] = {}
        self.next_rid = 0
        self.by_path: dict[str, int] = {}
        """path -> rid of the live record there."""
        self.by_key: dict[tuple[int, int], int] = {}
        """(device, inode) -> rid, live or not."""
        self.committed_tails: set[int] = set()
        """rids whose tail rows are on disk."""
        self.clock_skew_ns = clock_skew_ns
        self.window_base: WindowLines | None = None
        """Lines per window counted for good, folded out of ``partial.window_lines`` (which
        holds the rest) once there are more than ``limits().window_buffer`` windows: 16 bytes a window."""
        self.mtimes: dict[Source, int] = {}
        """source -> the newest modification time seen of its file."""
        self.pending = Pending()

    def changed(self) -> bool:
        p = self.pending
        return bool(p.small or p.records or p.sources or p.tails or p.windows or p.lines)

    def pieces(self) -> list[str]:
        """Every piece file ``pending`` names."""
        p = self.pending
        return [*itertools.chain.from_iterable(p.tail_pieces.values()), *p.count_pieces,
                *p.unused_pieces]

    def committed(self) -> None:
        """The checkpoint wrote ``pending``."""
        self.pending = Pending()
        self.committed_tails = set(self.tails)

    # --- loading -----------------------------------------------------------------------------

    def small(self) -> dict[str, Any]:
        """What is saved as one piece, with the shape of what is saved apart."""
        return {
            "partial": {name: getattr(self.partial, name) for name in SMALL_FIELDS},
            "next_generation": self.next_generation,
            "next_rid": self.next_rid,
            "mtimes": self.mtimes,
            "shape": self.shape(),
        }

    def shape(self) -> tuple[int, ...]:
        """Figures of the pieces saved apart (records, segments, tails), for a load to check."""
        records = self.records.values()
        return (len(records), sum(r.offset for r in records), sum(r.counted_end for r in records),
                len(self.partial.segments), len(self.tails))

    @classmethod
    def rebuilt(
        cls,
        clock_skew_ns: int,
        small: dict[str, Any],
        window_lines: Mapping[int, int],
        segments: dict[Source, list[Any]],
        records: list[FileRecord],
        tails: dict[int, Partial],
    ) -> State:
        """The state saved as these pieces."""
        state = cls(clock_skew_ns)
        for name, value in small["partial"].items():
            setattr(state.partial, name, value)
        if isinstance(window_lines, WindowLines):
            state.window_base = window_lines
        else:
            state.partial.window_lines = Counter(window_lines)
        state.partial.segments = segments
        state.next_generation = small["next_generation"]
        state.next_rid = small["next_rid"]
        state.mtimes = small["mtimes"]
        for record in records:
            state.records[record.rid] = record
            state._index(record)
        state.tails = tails
        state.committed_tails = set(tails)
        return state

    def _index(self, record: FileRecord) -> None:
        if record.live:
            self.by_path[record.path] = record.rid
        self.by_key[record.key] = record.rid

    def _unindex(self, record: FileRecord) -> None:
        if self.by_path.get(record.path) == record.rid:
            del self.by_path[record.path]
        if self.by_key.get(record.key) == record.rid:
            del self.by_key[record.key]

    # --- changes -------------------------------------------------------------------------------

    def _lines_before(self, partial: Partial) -> int:
        """Lines counted for good in ``partial``'s file before the bytes it holds."""
        if len(partial.segments) != 1:
            return 0
        ((source, [first, *_]),) = partial.segments.items()
        return sum(s.newlines for s in self.partial.segments.get(source, []) if s.end <= first.start)

    def _take_lines(self, owner: int, partial: Partial) -> None:
        """Move ``partial``'s line facts to ``pending`` (they go to disk, never into the state)."""
        before = self._lines_before(partial)
        tokens = take_unknown(partial, before)
        if tokens:
            self.pending.lines.append(AddTokens(owner, tokens))
        future = take_future(partial, before)
        if future:
            self.pending.lines.append(AddFuture(owner, future))

    def set_mtime(self, source: Source, mtime_ns: int) -> None:
        """The newest modification time seen of ``source``'s file: its future-stamped lines
        are judged against it, and those it no longer flags are forgotten."""
        if self.mtimes.get(source) != mtime_ns:
            self.mtimes[source] = mtime_ns
            self.pending.lines.append(Prune(source, mtime_ns + self.clock_skew_ns))
            self.pending.small = True

    def count(self, partial: Partial) -> None:
        """Count ``partial`` for good (its counters and tokens are moved out of it)."""
        p = self.pending
        self._take_lines(COUNTED, partial)
        p.counts.add(take_counts(partial))
        add_counts(p.windows, partial.window_lines)
        p.sources.update(partial.segments)
        p.small = True
        self.partial.update(partial)
        self._fold_windows()

    def _fold_windows(self) -> None:
        if len(self.partial.window_lines) > limits().window_buffer:
            runs = [run_of(self.partial.window_lines)]
            if self.window_base is not None:
                runs.append(self.window_base.run())
            self.window_base = merged(runs)
            self.partial.window_lines = Counter()

    def window_lines(self, view: Partial) -> Mapping[int, int]:
        """Every window's lines in ``view`` (from ``view()``): the folded ones and its own."""
        return with_more(self.window_base, view.window_lines)

    def set_tail(self, rid: int, partial: Partial | None, pieces: list[str] | None = None) -> None:
        """Replace ``rid``'s provisional tail (None: no tail); ``pieces``: files holding more of
        its counters."""
        p = self.pending
        if rid in p.new_tails:
            del p.new_tails[rid]
            p.unused_pieces += p.tail_pieces.pop(rid, [])
        elif rid in self.committed_tails and rid not in p.kept_tails:
            p.dropped_tails.add(rid)
        p.lines.append(DropTail(rid))
        self.tails.pop(rid, None)
        if partial is not None:
            self._take_lines(rid, partial)
            p.new_tails[rid] = take_counts(partial)
            if pieces:
                p.tail_pieces[rid] = pieces
            self.tails[rid] = partial
        elif pieces:
            p.unused_pieces += pieces
        p.tails.add(rid)

    def keep_tail(self, rid: int) -> None:
        """Count ``rid``'s tail for good (its file now holds other bytes)."""
        tail = self.tails.pop(rid, None)
        if tail is None:
            return
        p = self.pending
        p.lines.append(KeepTail(rid))
        if rid in p.new_tails:
            p.counts.add(p.new_tails.pop(rid))
            p.count_pieces += p.tail_pieces.pop(rid, [])
        else:
            p.kept_tails.add(rid)
        add_counts(p.windows, tail.window_lines)
        p.sources.update(tail.segments)
        p.tails.add(rid)
        p.small = True
        self.partial.update(tail)
        self._fold_windows()

    def put(self, record: FileRecord) -> None:
        """Insert or replace a record."""
        old = self.records.get(record.rid)
        if old is not None:
            self._unindex(old)
        self.records[record.rid] = record
        self._index(record)
        if record.rid >= self.next_rid:
            self.next_rid = record.rid + 1
            self.pending.small = True
        self.pending.records.add(record.rid)

    def forget(self, rid: int) -> None:
        """Drop a record; its counts stay (a tail it still has is taken back)."""
        if rid in self.tails:
            self.set_tail(rid, None)
        record = self.records.pop(rid)
        self._unindex(record)
        self.pending.records.add(rid)

    def rekey(self, old: Source, new: Source) -> None:
        """Move what was counted under one source to another (a renamed file)."""
        p = self.pending
        p.lines.append(Rekey(old, new))
        if old in self.mtimes:
            self.mtimes[new] = self.mtimes.pop(old)
            p.small = True
        if _rekey(self.partial, old, new):
            p.sources.update((old, new))
        for rid, tail in self.tails.items():
            if _rekey(tail, old, new):
                p.tails.add(rid)

    def set_next_generation(self, path: str, generation: int) -> None:
        self.next_generation[path] = generation
        self.pending.small = True

    def add_files(self, delta: int) -> None:
        """Change ``totals.files`` by ``delta``."""
        self.partial.files += delta
        self.pending.small = True

    def future_after(self) -> dict[Source, int]:
        """Per source, the stamp past which a line is in the future now."""
        return {source: mtime + self.clock_skew_ns for source, mtime in self.mtimes.items()}

    def view(self) -> Partial:
        """Everything the outputs show but the counters on disk: the committed Partial with
        every tail merged in."""
        if not self.tails:
            return self.partial
        out = copy_partial(self.partial)
        for rid in sorted(self.tails):
            out.update(self.tails[rid])
        return out
