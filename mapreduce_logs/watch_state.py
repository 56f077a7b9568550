"""The watcher's state: the Partial counted for good, one record per file, and the ops that change them.

Every change goes through ``State.apply(op)``, both while watching and when a checkpoint's op log
is replayed after a restart, so the state rebuilt after a crash is exactly the state committed.

A file's bytes ``[0, offset)`` are counted for good (they end with a newline). Its unterminated
last line, once settled, is counted provisionally in a *tail* Partial (for a ``.gz`` file, the
whole file is the tail): the outputs include every tail, and a tail is replaced when the file grows,
so a line completed later is counted once, as ``run`` would count it.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from .partial import Partial, Source, copy_partial

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


# --- ops: the only ways the state changes ---------------------------------------------------------


class Merge(NamedTuple):
    """Count ``partial`` for good."""

    partial: Partial


class MergePickled(NamedTuple):
    """Count for good the pickled Partials ``blobs``, as the workers sent them.

    The op log stores the workers' bytes as they are: committing costs no second pickling.
    """

    blobs: tuple[bytes, ...]


class AddFiles(NamedTuple):
    """Change ``totals.files`` by ``delta``."""

    delta: int


class Put(NamedTuple):
    """Insert or replace a record."""

    record: FileRecord


class Forget(NamedTuple):
    """Drop a record (its counts stay)."""

    rid: int


class SetTail(NamedTuple):
    """Set or clear a record's provisional tail."""

    rid: int
    partial: Partial | None


class Rekey(NamedTuple):
    """Move what was counted under one source to another (a renamed file)."""

    old: Source
    new: Source


class NextGeneration(NamedTuple):
    """The next generation number a new source at ``path`` gets."""

    path: str
    generation: int


Op = Merge | MergePickled | AddFiles | Put | Forget | SetTail | Rekey | NextGeneration


def _rekey(partial: Partial, old: Source, new: Source) -> None:
    segments = partial.segments.pop(old, None)
    if segments is not None:
        partial.segments.setdefault(new, []).extend(segments)


class State:
    """The committed Partial, the provisional tails and the file records, with their indexes."""

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

    def __getstate__(self) -> dict[str, Any]:
        return {
            "partial": self.partial,
            "records": self.records,
            "tails": self.tails,
            "next_generation": self.next_generation,
            "next_rid": self.next_rid,
        }

    def __setstate__(self, saved: dict[str, Any]) -> None:
        self.partial = saved["partial"]
        self.records = saved["records"]
        self.tails = saved["tails"]
        self.next_generation = saved["next_generation"]
        self.next_rid = saved["next_rid"]
        self.by_path, self.by_key = {}, {}
        for record in self.records.values():
            self._index(record)

    def _index(self, record: FileRecord) -> None:
        if record.live:
            self.by_path[record.path] = record.rid
        self.by_key[record.key] = record.rid

    def _unindex(self, record: FileRecord) -> None:
        if self.by_path.get(record.path) == record.rid:
            del self.by_path[record.path]
        if self.by_key.get(record.key) == record.rid:
            del self.by_key[record.key]

    def apply(self, op: Op, decoded: Partial | None = None) -> None:
        """Change the state by one op (the same code live and on replay).

        ``decoded`` may give a ``MergePickled``'s blobs already unpickled and merged.
        """
        if isinstance(op, Merge):
            self.partial.update(op.partial)
        elif isinstance(op, MergePickled):
            if decoded is not None:
                self.partial.update(decoded)
            else:
                for blob in op.blobs:
                    self.partial.update(pickle.loads(blob))
        elif isinstance(op, AddFiles):
            self.partial.files += op.delta
        elif isinstance(op, Put):
            old = self.records.get(op.record.rid)
            if old is not None:
                self._unindex(old)
            self.records[op.record.rid] = op.record
            self._index(op.record)
            self.next_rid = max(self.next_rid, op.record.rid + 1)
        elif isinstance(op, Forget):
            record = self.records.pop(op.rid)
            self._unindex(record)
            self.tails.pop(op.rid, None)
        elif isinstance(op, SetTail):
            if op.partial is None:
                self.tails.pop(op.rid, None)
            else:
                self.tails[op.rid] = op.partial
        elif isinstance(op, Rekey):
            _rekey(self.partial, op.old, op.new)
            for tail in self.tails.values():
                _rekey(tail, op.old, op.new)
        else:
            self.next_generation[op.path] = op.generation

    def view(self) -> Partial:
        """Everything the outputs show: the committed Partial with every tail merged in."""
        if not self.tails:
            return self.partial
        out = copy_partial(self.partial)
        for rid in sorted(self.tails):
            out.update(self.tails[rid])
        return out
