"""Input discovery and the splitter: files -> newline-aligned byte ranges.

Every byte of a file lands in exactly one Split, and every Split starts right after a ``\\n`` (or
at 0) and ends right after one (or at the end of the file). A ``.gz`` file is one Split, never cut.
Standard input (PATH ``-``) cannot be read twice or at an offset: it is read once, here, and cut
into Splits that carry their bytes (``stream_splits``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, NamedTuple, Protocol

from ..errors import InputError, StorageError
from . import storage
from .parse import MAX_LINE

SKIPPED_SUFFIXES = ("~", ".tmp", ".part", ".swp")
_SCAN = 64 * 1024


class Split(NamedTuple):
    """Bytes [start, end) of ``path``; ``end`` is None for a compressed file read whole.

    ``data`` holds the bytes of a split of standard input (see ``stream_splits``)."""

    path: str
    start: int
    end: int | None
    mtime_ns: int
    generation: int = 0
    data: bytes | None = None

    @property
    def compressed(self) -> bool:
        return self.end is None

    def disk_bytes(self) -> int:
        """Bytes of the file this split covers (a compressed file's whole size, 0 if gone)."""
        if self.end is not None:
            return self.end - self.start
        try:
            return storage.size(self.path)
        except OSError:
            return 0



def is_skipped(name: str) -> bool:
    """Names a folder listing leaves out: hidden, backup and temporary files."""
    return name.startswith(".") or name.endswith(SKIPPED_SUFFIXES)


def discover(
    paths: Iterable[str], recursive: bool = False, failures: dict[str, str] | None = None
) -> list[str]:
    """The regular files that ``paths`` name, in sorted path order, each once.

    A file reached by two spellings (``./d/a.log`` and ``d/a.log``, or a hard link) is read once,
    under the first spelling in sorted order. ``--recursive`` does not follow links to folders,
    so a link loop cannot trap it. A folder that cannot be listed goes into ``failures`` (path ->
    reason), the rest is still listed; without ``failures`` it raises InputError.
    """
    found: set[str] = set()
    unlisted: dict[str, str] = {} if failures is None else failures
    for path in paths:
        if storage.is_url(path):
            _find_url(path, recursive, found, unlisted)
        elif os.path.isdir(path):
            found.update(_list_dir(path, recursive, unlisted))
        elif os.path.exists(path):
            if os.path.isfile(path):
                found.add(path)
            else:
                raise InputError(f"not a regular file or folder: {path}")
        else:
            raise InputError(f"no such file or folder: {path}")
    if failures is None and unlisted:
        folder, reason = min(unlisted.items())
        raise InputError(f"cannot list {folder}: {reason}")
    unique: list[str] = []
    seen: set[tuple[int, int]] = set()
    for path in sorted(found):
        if storage.is_url(path):
            unique.append(path)  # one URL, one object
            continue
        try:
            st = os.stat(path)
        except OSError:
            unique.append(path)  # reported as unreadable when it is split
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            unique.append(path)
    return unique


def _find_url(url: str, recursive: bool, found: set[str], unlisted: dict[str, str]) -> None:
    """An object, or the objects under a prefix (a folder), into ``found``. A missing object or
    prefix is an InputError, like a missing path; a missing bucket is a folder that cannot be
    listed."""
    try:
        kind = storage.kind(url)
        if kind == "file":
            found.add(url)
        elif kind == "folder":
            listing = storage.list_folder(url, recursive, is_skipped)
            found.update(name for name, _ in listing.files)
            unlisted.update(listing.unlisted)
        elif kind == "missing":
            raise InputError(f"no such object or prefix: {url}")
        else:
            unlisted[url] = "cannot list the folder: no such bucket"
    except StorageError as err:
        raise InputError(str(err)) from None
    except OSError as err:  # access denied, the store unreachable: an input not read
        unlisted[url] = f"cannot read: {err.strerror or err}"


def _list_dir(folder: str, recursive: bool, unlisted: dict[str, str]) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            listed = [e for e in entries if not is_skipped(e.name)]
    except OSError as err:
        unlisted[folder] = f"cannot list the folder: {err.strerror or err}"
        return []
    files: list[str] = []
    for entry in listed:
        if entry.is_file():
            files.append(entry.path)
        elif recursive and entry.is_dir(follow_symlinks=False):
            files += _list_dir(entry.path, recursive, unlisted)
    return files


def is_compressed(path: str) -> bool:
    return path.endswith(".gz")


ChunkSize = int | Callable[[], int]
"""Bytes a split is cut to: a number, or a function asked again before each split is cut (a run
cuts bigger splits once its chunks cost less)."""


def split_file(
    path: str, chunk_size: ChunkSize, start: int = 0, end: int | None = None, generation: int = 0
) -> Iterator[Split]:
    """Newline-aligned Splits of about ``chunk_size`` bytes covering [start, end) of ``path``.

    ``start`` must be 0 or follow a newline; ``end`` defaults to the current size. The last Split
    ends at ``end`` even without a newline there (the file's unterminated last line). A callable
    ``chunk_size`` is called for each Split as it is cut (at least 1 byte is taken).
    Raises OSError when the file cannot be read.
    """
    size, mtime_ns = storage.stat(path)
    if is_compressed(path):
        yield Split(path, 0, None, mtime_ns, generation)
        return
    end = size if end is None else end
    if start >= end:
        if start == 0:
            yield Split(path, 0, 0, mtime_ns, generation)
        return
    with storage.open_at(path, start, read_ahead=storage.PROBE_READ) as f:
        pos = start
        while pos < end:
            want = max(1, chunk_size() if callable(chunk_size) else chunk_size)
            cut = _next_line_end(f, pos + want - 1, end) if pos + want < end else end
            assert pos < cut <= end, f"split_file: cut at {cut} from {pos} (end {end}) of {path}"
            yield Split(path, pos, cut, mtime_ns, generation)
            pos = cut


def _next_line_end(f: BinaryIO | io.BufferedIOBase, offset: int, end: int) -> int:
    """Position just after the first ``\\n`` at or after ``offset``, or ``end`` if none before it."""
    f.seek(offset)
    pos = offset
    while pos < end:
        block = f.read(min(_SCAN, end - pos))
        if not block:
            return end
        found = block.find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += len(block)
    return end


def split_files(paths: Iterable[str], chunk_size: ChunkSize) -> Iterator[Split | tuple[str, str]]:
    """Splits of every file in order; a file that cannot be opened yields (path, reason).
    A callable ``chunk_size`` is asked for each Split (see ``split_file``)."""
    for path in paths:
        try:
            yield from split_file(path, chunk_size)
        except OSError as err:
            yield (path, err.strerror or str(err))


STREAM = "-"
"""The PATH, and the file name in examples, of standard input."""
STREAM_BLOCK = 1 << 20
"""Bytes read from the stream at a time."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def stream_splits(
    stream: Readable, chunk_size: int, mtime_ns: int
) -> Iterator[Split | tuple[str, str]]:
    """Splits of about ``chunk_size`` bytes of complete lines read from ``stream`` as it comes,
    each carrying its bytes; at least one (an empty stream is one empty Split). A read error
    ends the stream with (STREAM, reason) after the lines read before it.

    Memory stays bounded whatever the lines: of a line longer than MAX_LINE only its first
    MAX_LINE + 1 bytes are kept, a stand-in that the mapper classifies as it would the whole
    line (too_long, or blank when every byte is whitespace; if only the dropped bytes hold
    text, the stand-in's last byte, past any example text, becomes one). A Split's ``start``
    and ``end`` are offsets in the stream, so its bytes count every byte read."""
    cutter = _LineCutter(chunk_size, mtime_ns)
    read = getattr(stream, "read1", stream.read)
    block = STREAM_BLOCK
    try:
        while data := read(block):
            yield from cutter.feed(data)
    except OSError as err:
        yield from cutter.end()
        yield (STREAM, err.strerror or str(err))
        return
    yield from cutter.end()


class _LineCutter:
    """Gathers a stream's complete lines into Splits (see ``stream_splits``)."""

    def __init__(self, chunk_size: int, mtime_ns: int) -> None:
        self.chunk_size = chunk_size
        self.mtime_ns = mtime_ns
        self.start = 0
        """Stream offset of the chunk being gathered."""
        self.parts: list[bytes] = []
        self.size = 0
        """Stream bytes of the chunk being gathered (more than its data past a long line)."""
        self.tail = b""
        """The kept bytes of the line not yet ended (at most MAX_LINE + 1)."""
        self.tail_size = 0
        self.tail_text = False
        """Whether the dropped bytes of the line not yet ended hold any non-whitespace."""
        self.made = 0

    def feed(self, data: bytes) -> Iterator[Split]:
        last = data.rfind(b"\n")
        if last < 0:
            self._extend(data)
            return
        pos = 0
        if self.tail_size:
            first = data.find(b"\n")
            self._extend(data[:first])
            yield from self._add(self._stand_in() + b"\n", self.tail_size + 1)
            self.tail, self.tail_size, self.tail_text = b"", 0, False
            pos = first + 1
        while pos <= last:
            room = self.chunk_size - self.size
            if last + 1 - pos < room:
                yield from self._add(data[pos : last + 1], last + 1 - pos)
                break
            cut = data.find(b"\n", pos + max(room, 1) - 1) + 1
            yield from self._add(data[pos:cut], cut - pos)
            pos = cut
        self._extend(data[last + 1 :])

    def end(self) -> Iterator[Split]:
        """The unterminated last line, the last chunk, or the one empty Split of an empty stream."""
        if self.tail_size:
            self.parts.append(self._stand_in())
            self.size += self.tail_size
            self.tail, self.tail_size, self.tail_text = b"", 0, False
        if self.size or not self.made:
            yield self._split()

    def _extend(self, data: bytes) -> None:
        if not data:
            return
        room = MAX_LINE + 1 - len(self.tail)
        dropped = data[room:] if room > 0 else data
        if room > 0:
            self.tail += data[:room]
        if dropped and not self.tail_text and not dropped.isspace():
            self.tail_text = True
        self.tail_size += len(data)

    def _stand_in(self) -> bytes:
        if self.tail_text and self.tail.isspace():
            return self.tail[:-1] + b"x"
        return self.tail

    def _add(self, data: bytes, size: int) -> Iterator[Split]:
        self.parts.append(data)
        self.size += size
        if self.size >= self.chunk_size:
            yield self._split()

    def _split(self) -> Split:
        data = b"".join(self.parts)
        split = Split(STREAM, self.start, self.start + self.size, self.mtime_ns, 0, data)
        self.start += self.size
        self.parts, self.size = [], 0
        self.made += 1
        return split
