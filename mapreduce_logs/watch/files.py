"""Which file each path holds (new, renamed, replaced, gone), and what of it is ready to count.

A file is (device, inode, digest of its first counted bytes). An unterminated last line waits
until its file has not changed for ``settle`` seconds; the file is then looked at again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import replace

from ..ingest.split import is_compressed
from .batches import LINES, TAIL, WHOLE, Job
from .state import FINGERPRINT_BYTES, FileRecord, State

BACKWARD_BLOCK = 64 * 1024


class FileTracker:
    """Settles the identity of the files at the paths it is shown, and plans their jobs.

    ``want(path, first)`` puts a path back in the queue; ``problem(path, message)`` reports.
    """

    def __init__(self, state: State, settle: float, clock: Callable[[], float],
                 want: Callable[[str, bool], None], problem: Callable[[str, str], None]) -> None:
        self.state = state
        self.settle = settle
        self.clock = clock
        self._want_again = want
        self._problem = problem
        self.seen: dict[int, tuple[int, int]] = {}
        """rid -> (size, mtime_ns) when last looked at."""
        self.changed_at: dict[int, float] = {}
        """rid -> clock time when that signature was first seen."""
        self.unsettled: dict[int, float] = {}
        """rid -> clock time to look at it again (its last line settles, or a retry)."""
        self.no_newline: dict[int, tuple[int, int]] = {}
        """rid -> (offset, end): bytes [offset, end) of the file hold no newline."""

    def reset(self, state: State) -> None:
        """Start again from ``state``, forgetting what was seen of the files."""
        self.state = state
        for transient in (self.seen, self.changed_at, self.unsettled, self.no_newline):
            transient.clear()

    def due(self, now: float) -> list[str]:
        """The paths of live files whose time to be looked at again has come."""
        paths = []
        for rid, when in list(self.unsettled.items()):
            if when <= now:
                del self.unsettled[rid]
                record = self.state.records.get(rid)
                if record is not None and record.live:
                    paths.append(record.path)
        return paths

    def next_due(self) -> float:
        return min(self.unsettled.values(), default=float("inf"))

    def retry_later(self, rid: int, when: float) -> None:
        self.unsettled[rid] = when

    def _want(self, path: str) -> None:
        self._want_again(path, False)

    def examine(self, path: str) -> list[Job]:
        """Settle who the file at ``path`` is (new, renamed, replaced, gone); its jobs if any."""
        state = self.state
        st = _regular(path)
        rid = state.by_path.get(path)
        rec = state.records[rid] if rid is not None else None
        if st is None:
            if rec is not None:
                self._gone(rec)
            return []
        key = (st.st_dev, st.st_ino)
        sig = (st.st_size, st.st_mtime_ns)
        if rec is not None and rec.key == key and self.seen.get(rec.rid) == sig and done(rec, sig):
            return []
        if rec is not None and rec.key != key:
            self._gone(rec)
            rec = None
        cand_rid = state.by_key.get(key)
        cand = state.records.get(cand_rid) if cand_rid is not None else None
        if cand is not None and cand.live and cand.path != path:
            there = _regular(cand.path)
            if there is not None and (there.st_dev, there.st_ino) == key:
                self._problem(path, f"same file as {cand.path} (a hard link): counted once, "
                                    f"as {cand.path}")
                return []
        got = self.head(path)
        if got is None:
            return []
        head, st = got
        if (st.st_dev, st.st_ino) != key:
            self._want(path)
            return []
        sig = (st.st_size, st.st_mtime_ns)
        rec = None
        if cand is not None:
            if cand.matches(st.st_size, head):
                rec = self._move(cand, path)
            else:
                self._retire(cand)
        if rec is None:
            rec = self._new(path, st)
        now = self.clock()
        if self.seen.get(rec.rid) != sig:
            self.seen[rec.rid] = sig
            self.changed_at[rec.rid] = now
        return self._plan(rec, sig, now)

    def head(self, path: str) -> tuple[bytes, os.stat_result] | None:
        """The first bytes of ``path`` and its status, read through one open file."""
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                head = f.read(FINGERPRINT_BYTES)
        except OSError as err:
            if not isinstance(err, FileNotFoundError):
                self._problem(path, f"cannot read: {err.strerror or err}")
            return None
        return head, st

    def _plan(self, rec: FileRecord, sig: tuple[int, int], now: float) -> list[Job]:
        if rec.counted_end:
            self.state.set_mtime(rec.source, sig[1])  # a touch moves what is in the future
        if done(rec, sig):
            return []
        size = sig[0]
        settled = now - self.changed_at[rec.rid] >= self.settle
        if rec.compressed:
            if settled:
                return [Job(WHOLE, rec, 0, size, sig)]
            self.unsettled[rec.rid] = self.changed_at[rec.rid] + self.settle
            return []
        jobs = []
        start = rec.offset
        line_end = self._last_line_end(rec, size)
        if line_end is not None:
            jobs.append(Job(LINES, rec, rec.offset, line_end, sig))
            start = line_end
        if size > start:
            if settled:
                jobs.append(Job(TAIL, rec, start, size, sig))
            else:
                self.unsettled[rec.rid] = self.changed_at[rec.rid] + self.settle
        return jobs

    def _last_line_end(self, rec: FileRecord, size: int) -> int | None:
        """Position just after the last newline in ``[rec.offset, size)``, or None."""
        low = rec.offset
        known = self.no_newline.get(rec.rid)
        if known is not None and known[0] == rec.offset:
            low = max(low, known[1])
        try:
            with open(rec.path, "rb") as f:
                pos = size
                while pos > low:
                    begin = max(low, pos - BACKWARD_BLOCK)
                    f.seek(begin)
                    found = f.read(pos - begin).rfind(b"\n")
                    if found >= 0:
                        return begin + found + 1
                    pos = begin
        except OSError:
            return None
        self.no_newline[rec.rid] = (rec.offset, size)
        return None

    def _new(self, path: str, st: os.stat_result) -> FileRecord:
        state = self.state
        generation = state.next_generation.get(path, 0)
        state.set_next_generation(path, generation + 1)
        rec = FileRecord(state.next_rid, path, generation, st.st_dev, st.st_ino,
                         compressed=is_compressed(path))
        state.put(rec)
        state.add_files(1)
        return rec

    def _move(self, rec: FileRecord, path: str) -> FileRecord:
        """``rec``'s file is at ``path`` now (renamed, or back after it left)."""
        state = self.state
        if rec.path == path:
            if not rec.live:
                rec = replace(rec, live=True)
                state.put(rec)
            return rec
        generation = state.next_generation.get(path, 0)
        state.set_next_generation(path, generation + 1)
        state.rekey(rec.source, (path, generation))
        rec = replace(rec, path=path, generation=generation, live=True)
        state.put(rec)
        return rec

    def _gone(self, rec: FileRecord) -> None:
        """``rec``'s file left its path: its counts stay; one that counted nothing is forgotten."""
        self._forget_transient(rec.rid)
        if rec.counted_end == 0:
            self.state.add_files(-1)
            self.state.forget(rec.rid)
        else:
            self.state.put(replace(rec, live=False))

    def _retire(self, rec: FileRecord) -> None:
        """``rec``'s inode now holds other bytes: what it counted stays, its tail for good."""
        self._forget_transient(rec.rid)
        self.state.keep_tail(rec.rid)
        self.state.forget(rec.rid)

    def _forget_transient(self, rid: int) -> None:
        self.seen.pop(rid, None)
        self.changed_at.pop(rid, None)
        self.unsettled.pop(rid, None)
        self.no_newline.pop(rid, None)


def _regular(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def done(rec: FileRecord, sig: tuple[int, int]) -> bool:
    """Whether a file with this (size, mtime_ns) has nothing left to count."""
    if rec.tail_sig == sig:
        return True
    return not rec.compressed and rec.tail_end is None and rec.offset == sig[0]
