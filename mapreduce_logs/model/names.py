"""Many byte strings (user and service names) end to end: one ``bytes`` and the end offset of
each, rather than an object each.

The spill writes and reads millions of names a GiB; kept this way they are pickled as two
objects, and their CRC-32s, their reordering and their numbering run in C (``_names.c``, built
with the compiled kernel) or, without it, in the plain Python below, with the same results. The
variable MAPREDUCE_LOGS_KERNEL=python chooses the Python versions here too.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from types import ModuleType
from typing import Any, overload

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]


def _load() -> ModuleType | None:
    if os.environ.get("MAPREDUCE_LOGS_KERNEL", "").strip().lower() == "python":
        return None
    try:
        from . import _names  # type: ignore[attr-defined]
    except ImportError:
        return None
    module: ModuleType = _names
    return module


compiled = _load()
"""The compiled helpers, or None (not built, or the pure path chosen)."""


class Names(Sequence[bytes]):
    """Byte strings end to end: string ``i`` is ``blob[ends[i - 1]:ends[i]]`` (from 0 for the
    first). Equal to a list of the same strings as a Sequence; pickled as the two parts."""

    __slots__ = ("blob", "ends")

    def __init__(self, blob: bytes = b"", ends: Ints | None = None) -> None:
        self.blob = blob
        self.ends: Ints = np.zeros(0, dtype=np.int64) if ends is None else ends

    @classmethod
    def of(cls, items: Iterable[bytes]) -> Names:
        items = list(items)
        ends = np.fromiter(itertools.accumulate(map(len, items)), np.int64, len(items))
        return cls(b"".join(items), ends)

    @classmethod
    def join(cls, parts: Sequence[Names]) -> Names:
        """The strings of ``parts`` one after another."""
        if len(parts) == 1:
            return parts[0]
        shifted = []
        at = 0
        for part in parts:
            shifted.append(part.ends + at if at else part.ends)
            at += len(part.blob)
        ends = np.concatenate(shifted) if shifted else None
        return cls(b"".join(part.blob for part in parts), ends)

    def __len__(self) -> int:
        return len(self.ends)

    @overload
    def __getitem__(self, i: int) -> bytes: ...

    @overload
    def __getitem__(self, i: slice) -> Names: ...

    def __getitem__(self, i: int | slice) -> bytes | Names:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step, dtype=np.int64))
            stop = max(start, stop)
            a = int(self.ends[start - 1]) if start else 0
            b = int(self.ends[stop - 1]) if stop else 0
            return Names(self.blob[a:b], self.ends[start:stop] - a)
        n = len(self.ends)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("Names index out of range")
        return self.blob[int(self.ends[i - 1]) if i else 0 : int(self.ends[i])]

    def __iter__(self) -> Iterator[bytes]:
        blob = self.blob
        return (blob[a:b] for a, b in zip(self.starts().tolist(), self.ends.tolist(),
                                          strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Names | list | tuple):
            return len(self) == len(other) and all(map(bytes.__eq__, self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Names({list(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Names, (self.blob, self.ends))

    def starts(self) -> Ints:
        starts = np.empty(len(self.ends), dtype=np.int64)
        if len(starts):
            starts[0] = 0
            starts[1:] = self.ends[:-1]
        return starts

    def crc32(self) -> npt.NDArray[np.uint32]:
        """``zlib.crc32`` of each string."""
        if compiled is not None:
            return np.frombuffer(compiled.crc32s(self.blob, self._ends()), np.uint32)
        return np.fromiter(map(zlib.crc32, self), np.uint32, len(self))

    def take(self, order: Ints) -> Names:
        """The strings at the indexes ``order``, in that order."""
        if compiled is not None:
            blob, ends = compiled.take(self.blob, self._ends(), _int64s(order))
            return Names(blob, np.frombuffer(ends, np.int64))
        return Names.of(map(self.__getitem__, order.tolist()))

    def numbered(self) -> tuple[Names, Ints]:
        """(the distinct strings in order of first appearance, each string's index there)."""
        if compiled is not None:
            firsts, index = compiled.number(self.blob, self._ends())
            return (self.take(np.frombuffer(firsts, np.int64)),
                    np.frombuffer(index, np.int64))
        first: dict[bytes, int] = {}
        seen = np.fromiter(map(first.setdefault, self, itertools.count()), np.int64, len(self))
        rank = np.empty(len(self), dtype=np.int64)  # at each first appearance: its number
        rank[np.fromiter(first.values(), np.int64, len(first))] = np.arange(len(first))
        return Names.of(first), rank[seen]

    def _ends(self) -> Ints:
        return _int64s(self.ends)


def _int64s(a: Any) -> Ints:
    """``a`` as a contiguous int64 array (what the C helpers read)."""
    return np.ascontiguousarray(a, dtype=np.int64)
