"""Lines per window when there are millions of windows: sorted arrays, not a dict.

A run usually covers a few thousand windows (a day of minutes is 1,440), and a dict of them is
the fastest thing to look up. But windows are as many as the distinct minutes the lines are
stamped with: years of logs, or a file with random stamps, make millions, and a dict costs about
100 bytes a window in every process that holds it. So the reducer writes its window counts to
a file as a sorted run (16 bytes a window) each time they pass ``limits().window_buffer``, merges the files
at the end into one (``merge_files``, streamed), and every process maps that file as a
``WindowLines``: the pages are shared through the page cache, never copied.
"""

from __future__ import annotations

import heapq
import itertools
import mmap
import os
import shutil
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter

RELEASE_EVERY = 1024
"""Lookups in mapped windows between two releases of the pages they touched: each touches a
few pages of its own below the top levels of the search, which all share."""

Run = tuple["array[int]", "array[int]"]
"""(window indexes ascending, lines of each): a sorted run, 16 bytes a window."""


class WindowLines(Mapping[int, int]):
    """window index -> lines, over sorted sequences of indexes and counts (arrays, or views
    of a mapped file). A lookup is a binary search."""

    def __init__(self, keys: Sequence[int], values: Sequence[int], path: str | None = None,
                 mapped: mmap.mmap | None = None) -> None:
        self._keys = keys
        self._values = values
        self.path = path
        """The file they are mapped from (``load``), if any."""
        self._mapped = mapped
        self._lookups = 0

    def release(self) -> None:
        """Let go of the mapped pages this process has touched (they stay in the page cache,
        and come back on the next access): millions of windows are hundreds of MB, which
        would otherwise count in each process's memory as it reads them."""
        self._lookups = 0
        if self._mapped is not None and hasattr(self._mapped, "madvise"):
            self._mapped.madvise(mmap.MADV_DONTNEED)

    def __getitem__(self, window: int) -> int:
        self._lookups += 1
        if self._lookups >= RELEASE_EVERY:
            self.release()  # each lookup touches about two pages of its own
        i = bisect_left(self._keys, window)
        if i < len(self._keys) and self._keys[i] == window:
            return self._values[i]
        raise KeyError(window)

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def sorted_keys(self) -> Sequence[int]:
        """The windows, ascending (no copy)."""
        return self._keys

    def values(self) -> Sequence[int]:  # type: ignore[override]
        return self._values

    def items(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        return zip(self._keys, self._values, strict=True)

    def run(self) -> Run:
        """As a sorted run (no copy when it holds arrays)."""
        keys, values = self._keys, self._values
        if not isinstance(keys, array):
            keys = array("q", keys)
        if not isinstance(values, array):
            values = array("q", values)
        return keys, values


def with_more(base: WindowLines | None, more: Mapping[int, int]) -> Mapping[int, int]:
    """``base`` (None: nothing) plus ``more``, as one mapping: ``more`` itself without a base,
    ``base`` itself when ``more`` is empty, else a new WindowLines (a pass over every window)."""
    if base is None:
        return more
    if not more:
        return base
    return merged([base.run(), run_of(more)])


def run_of(counts: Mapping[int, int]) -> Run:
    """A sorted run of ``counts``."""
    keys = sorted(counts)
    return array("q", keys), array("q", map(counts.__getitem__, keys))


def merged(runs: list[Run]) -> WindowLines:
    """One WindowLines of the sums of ``runs`` (each sorted), streamed: the runs and the
    result are held, nothing per window besides."""
    keys, values = array("q"), array("q")
    for window, lines in _sums([zip(k, v, strict=True) for k, v in runs]):
        keys.append(window)
        values.append(lines)
    return WindowLines(keys, values)


def _sums(streams: Iterable[Iterable[tuple[int, int]]]) -> Iterator[tuple[int, int]]:
    """(window, lines) of sorted streams of them, merged, the lines of a window added up."""
    for window, group in itertools.groupby(heapq.merge(*streams, key=itemgetter(0)),
                                           key=itemgetter(0)):
        yield window, sum(map(itemgetter(1), group))


def save(path: str, windows: Mapping[int, int]) -> None:
    """Write ``windows`` as two arrays of 8-byte integers (indexes, then counts)."""
    if isinstance(windows, WindowLines):
        keys, values = windows.sorted_keys(), windows.values()
    else:
        keys, values = run_of(windows)
    with open(path, "wb") as f:
        f.write(len(keys).to_bytes(8, "little"))
        for seq in (keys, values):
            f.write(seq.tobytes() if isinstance(seq, array) else array("q", seq).tobytes())


def load(path: str) -> WindowLines:
    """What ``save`` wrote, mapped from the file (the pages are shared between processes)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) if size > 8 else None
    if mapped is None:
        return WindowLines(array("q"), array("q"))
    count = int.from_bytes(mapped[:8], "little")
    view = memoryview(mapped)[8:].cast("q")
    return WindowLines(view[:count], view[count : 2 * count], path, mapped)


LOOKUP_BLOCK = 4096
"""Windows looked up at a time by ``lines_at``: sorted, they fall in one stretch of the file,
whose pages are let go before the next."""


def lines_at(window_lines: Mapping[int, int], wanted: Sequence[int]) -> list[int]:
    """The lines of each of ``wanted`` (ascending, all present) in order. For mapped windows
    this reads one stretch of the file at a time and lets its pages go: looked up one by
    one, millions of windows would bring most of the file into the process (the kernel maps
    the pages around each one it reads)."""
    if not isinstance(window_lines, WindowLines) or window_lines._mapped is None:
        return [window_lines[w] for w in wanted]
    import numpy as np

    keys = np.frombuffer(window_lines.sorted_keys(), dtype=np.int64)  # type: ignore[call-overload]
    values = np.frombuffer(window_lines.values(), dtype=np.int64)  # type: ignore[call-overload]
    out: list[int] = []
    for start in range(0, len(wanted), LOOKUP_BLOCK):
        block = np.fromiter(wanted[start : start + LOOKUP_BLOCK], dtype=np.int64)
        out += values[np.searchsorted(keys, block)].tolist()
        window_lines.release()
    return out


def release(window_lines: Mapping[int, int]) -> None:
    """``WindowLines.release`` if these are mapped windows (nothing for a dict)."""
    if isinstance(window_lines, WindowLines):
        window_lines.release()


BLOCK = 4096
"""Windows read or written at a time by ``merge_files``, per file."""


def _entries(path: str) -> Iterator[tuple[int, int]]:
    """(window, lines) of a file ``save`` wrote, in order, read a block at a time."""
    with open(path, "rb") as f:
        count = int.from_bytes(f.read(8), "little")
        done = 0
        while done < count:
            n = min(BLOCK, count - done)
            keys, values = array("q"), array("q")
            f.seek(8 + 8 * done)
            keys.frombytes(f.read(8 * n))
            f.seek(8 + 8 * (count + done))
            values.frombytes(f.read(8 * n))
            yield from zip(keys, values, strict=True)
            done += n


def merge_files(paths: list[str], out: str) -> None:
    """Write to ``out`` (as ``save`` does) the sums of the runs that ``save`` wrote to
    ``paths``, then delete those: streamed, a block of each file in memory at a time, however
    many windows there are."""
    parts = [out + ".keys", out + ".values"]
    count = 0
    with open(parts[0], "wb") as keys_file, open(parts[1], "wb") as values_file:
        keys, values = array("q"), array("q")
        for window, lines in _sums(map(_entries, paths)):
            keys.append(window)
            values.append(lines)
            if len(keys) == BLOCK:
                keys_file.write(keys.tobytes())
                values_file.write(values.tobytes())
                count += len(keys)
                keys, values = array("q"), array("q")
        keys_file.write(keys.tobytes())
        values_file.write(values.tobytes())
        count += len(keys)
    with open(out, "wb") as f:
        f.write(count.to_bytes(8, "little"))
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
            os.unlink(part)
    for path in paths:
        os.unlink(path)
