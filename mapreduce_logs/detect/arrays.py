"""One user or service with too many windows for the dict digest: digested from numpy arrays.

A spilled partition is digested as dicts keyed by (subject, window), about 400 bytes an entry
once the rules have run; a partition too big for its share of the budget is split on further
hash digits. One subject's windows cannot be split: a service that logs every minute of a
year has 525,600 of them, a heartbeat user at ``--window 1`` 86,400 a day. Such a subject is
read into sorted arrays instead (16 bytes a window, a few times that while the rules run), and
the same rules as ``rules`` are applied to them with the same float operations in the same
order, so the result is the same to the last bit (the tests check it against the dict digest
and the reference, with every subject forced through here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..model.digest import Found, Tables
from ..model.windows import WindowLines, release
from ..settings import Settings
from .rules import (
    MAX_SHARE,
    NEIGHBOURS,
    BurstCandidate,
    Flagged,
    UserRate,
    _window_anomalies,
    trim_count,
)

STRETCH = 1 << 16
"""Windows looked up at a time in the window table (then its mapped pages are let go)."""

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass
class Subject:
    """One subject's windows (ascending, distinct) and counts, per table of ``Tables`` (user
    lines, service errors, service other lines, user errors); a table it is absent from is
    empty."""

    name: bytes
    windows: list[Ints]
    counts: list[Ints]

    @classmethod
    def read(cls, records: Iterable[tuple[int, list[tuple[tuple[bytes, int], int]]]]) -> Subject:
        """From spill records (table, [((subject, window), count), ...]) of one subject."""
        name = b""
        windows: list[list[Ints]] = [[] for _ in Tables._fields]
        counts: list[list[Ints]] = [[] for _ in Tables._fields]
        for table, items in records:
            if items:
                name = items[0][0][0]
                windows[table].append(np.fromiter((key[1] for key, _ in items), np.int64, len(items)))
                counts[table].append(np.fromiter((n for _, n in items), np.int64, len(items)))
        subject = cls(name, [], [])
        for w, c in zip(windows, counts, strict=True):
            ws, cs = _summed(_joined(w), _joined(c))
            subject.windows.append(ws)
            subject.counts.append(cs)
        return subject


def user(name: bytes, windows: Any, counts: Any) -> Subject:
    """A user from buffers (``array('q')``) of its windows, ascending, and lines."""
    w, c = _ints(windows), _ints(counts)
    return Subject(name, [w, w[:0], w[:0], w[:0]], [c, c[:0], c[:0], c[:0]])


def service(name: bytes, windows: Any, errors: Any, others: Any) -> Subject:
    """A service from buffers of its windows, ascending, and errors and other lines there
    (0 where none)."""
    w, e, o = _ints(windows), _ints(errors), _ints(others)
    has_errors, has_others = e > 0, o > 0
    return Subject(name, [w[:0], w[has_errors], w[has_others], w[:0]],
                   [e[:0], e[has_errors], o[has_others], e[:0]])


def _joined(pieces: list[Ints]) -> Ints:
    """One array of ``pieces``, which is emptied (each piece let go as soon as it is copied)."""
    out = np.empty(sum(map(len, pieces)), dtype=np.int64)
    at = 0
    while pieces:
        piece = pieces.pop(0)
        out[at : at + len(piece)] = piece
        at += len(piece)
    return out


def _summed(windows: Ints, counts: Ints) -> tuple[Ints, Ints]:
    """Counts of equal windows added up, windows ascending."""
    if not len(windows):
        return windows, counts
    if len(windows) > 1 and not (windows[1:] > windows[:-1]).all():
        order = np.argsort(windows, kind="stable")
        windows = windows[order]
        counts = counts[order]
        del order
    starts = np.flatnonzero(np.diff(windows, prepend=windows[0] - 1))
    if len(starts) == len(windows):
        return windows, counts
    return windows[starts], np.add.reduceat(counts, starts)


# --- error_spike: rules.spikes for one service --------------------------------------------


def spikes(subject: Subject, settings: Settings) -> list[Found]:
    """``rules.spikes`` of this one service."""
    ew, ec = subject.windows[1], subject.counts[1]
    ow, oc = subject.windows[2], subject.counts[2]
    if not len(ew):
        return []  # no error at all: below any floor
    windows = np.union1d(ew, ow)
    e = np.zeros(len(windows), dtype=np.int64)
    n = np.zeros(len(windows), dtype=np.int64)
    e[np.searchsorted(windows, ew)] = ec
    n[np.searchsorted(windows, ow)] = oc
    least, factor = settings.spike_min_errors, settings.spike_factor
    if int(e.max()) < least:
        return []
    usual = _median(np.sort(e), len(e), 1)

    def limits(rate: float) -> Floats:
        # max(least, factor * max(rate * other lines, usual)), step by step in place
        out = n.astype(np.float64)
        out *= rate
        np.maximum(out, usual, out=out)
        out *= factor
        np.maximum(out, float(least), out=out)
        return out

    robust = _weighted_median_ratio(e, n)
    suspect = e >= limits(robust)
    rate = _usual_ratio(windows, e, n, suspect)
    limit = limits(rate)
    flagged = np.flatnonzero(e >= limit)
    expected = np.maximum(rate * n[flagged].astype(np.float64), usual)
    found = [
        Flagged(int(windows[i]), int(e[i]), float(x), least if limit[i] == least else float(limit[i]))
        for i, x in zip(flagged.tolist(), expected.tolist(), strict=True)
    ]
    return _window_anomalies(found, "service", subject.name, "errors", settings)


def _median(ordered: Ints, total: int, width: int) -> float:
    """The median of ``total`` values, the first ``total - len(ordered)`` of them zeros and the
    rest ``ordered`` (ascending), each divided by ``width``, float for float as the dict code:
    one value / width, or the mean of the two middle ones / width."""
    zeros = total - len(ordered)

    def at(k: int) -> int:
        return 0 if k < zeros else int(ordered[k - zeros])

    mid = total // 2
    if total % 2:
        return at(mid) / width if width != 1 else float(at(mid))
    if width == 1:
        return (float(at(mid - 1)) + float(at(mid))) / 2
    return (at(mid - 1) / width + at(mid) / width) / 2


def _weighted_median_ratio(e: Ints, n: Ints) -> float:
    """``rules.weighted_median_ratio``: ratios e/n where n > 0, weighted by n."""
    has = np.flatnonzero(n)
    if not len(has):
        return 0.0
    weights = n[has]
    ratios = e[has] / weights
    del has
    order = np.argsort(ratios, kind="stable")
    below = weights[order]
    del weights
    np.cumsum(below, out=below)
    first = int(np.argmax(2 * below >= below[-1]))
    return float(ratios[order[first]])


def _usual_ratio(windows: Ints, e: Ints, n: Ints, suspect: Bools) -> float:
    """``rules.usual_ratio``: over the windows not suspect, less the tenth of all the windows
    (never all that are left) with most errors, ties dropping the earlier window."""
    rest = np.flatnonzero(~suspect)
    drop = min((len(windows) + 9) // 10, max(len(rest) - 1, 0))
    # the kept: the rest but its `drop` first by errors descending, then window ascending
    # (windows are ascending already)
    ranked = rest[np.argsort(-e[rest], kind="stable")[:drop]]
    kept_others = int(n[rest].sum()) - int(n[ranked].sum())
    kept_errors = int(e[rest].sum()) - int(e[ranked].sum())
    return kept_errors / kept_others if kept_others else 0.0


# --- user_burst: rules.user_rate and burst_candidates for one user -------------------------


@dataclass
class Table:
    """``rules.WindowTable`` as arrays: the windows ascending and their lines (views of the
    mapped file when there are millions: shared between the processes, not copied)."""

    order: Ints
    lines: Ints
    all_lines: int
    drop: int
    source: Mapping[int, int]
    """What they were made from: its mapped pages are let go after each stretch read."""

    def find(self, w: Ints) -> tuple[Ints, Ints]:
        """(positions in ``order``, lines there) of the windows ``w`` (ascending, all present),
        a stretch of the file at a time (see ``windows.lines_at``)."""
        pos = np.empty(len(w), dtype=np.int64)
        lines = np.empty(len(w), dtype=np.int64)
        for start in range(0, len(w), STRETCH):
            end = start + STRETCH
            pos[start:end] = np.searchsorted(self.order, w[start:end])
            lines[start:end] = self.lines[pos[start:end]]
            release(self.source)
        return pos, lines

    def edges(self, positions: Ints, side: int) -> Ints:
        """For each of ``positions`` (ascending): where its neighbourhood starts (side -1) or
        ends (side 1, exclusive), in positions, a stretch at a time."""
        out = np.empty(len(positions), dtype=np.int64)
        how: Any = "left" if side < 0 else "right"
        for start in range(0, len(positions), STRETCH):
            end = start + STRETCH
            out[start:end] = np.searchsorted(
                self.order, self.order[positions[start:end]] + side * NEIGHBOURS, side=how)
            release(self.source)
        return out

    @classmethod
    def of(cls, window_lines: Mapping[int, int]) -> Table:
        """``anomalies.WindowTable.of(window_lines)``, as arrays (the windows and their lines
        are not copied when they are arrays already)."""
        if isinstance(window_lines, WindowLines):
            order = _ints(window_lines.sorted_keys())
            lines = _ints(window_lines.values())
        else:
            order = np.array(sorted(window_lines), dtype=np.int64)
            lines = np.fromiter((window_lines[w] for w in order.tolist()), dtype=np.int64,
                                count=len(order))
        total = int(lines.sum())
        release(window_lines)
        return cls(order, lines, total, trim_count(len(order)), window_lines)


def _ints(seq: Any) -> Ints:
    return np.frombuffer(seq, dtype=np.int64) if len(seq) else np.zeros(0, dtype=np.int64)


def user_rate(subject: Subject, table: Table, settings: Settings) -> UserRate | None:
    """``rules.user_rate`` of this one user."""
    w, c = subject.windows[0], subject.counts[0]
    drop = table.drop
    if len(w) <= drop:
        return None
    pos, lines = table.find(w)
    ranked = np.argsort(-c, kind="stable")  # lines descending, then window ascending
    plain = _kept_rate(c, lines, ranked[:drop], table)
    del ranked  # made again if needed: one array less while the suspects are sought
    suspect = _suspect(w, c, pos, lines, table, settings)
    if not len(suspect):
        return plain
    del pos
    ranked = np.argsort(-c, kind="stable")
    is_suspect = np.zeros(len(w), dtype=bool)
    is_suspect[suspect] = True
    rest = ranked[~is_suspect[ranked]]
    windows = len(table.order)
    drop = min((windows + 9) // 10, max(windows - len(suspect) - 1, 0))
    if drop >= len(rest):
        return UserRate(0.0, 0.0)
    robust = _kept_rate(c, lines, np.concatenate([suspect, rest[:drop]]), table)
    return UserRate(min(plain.share, robust.share), min(plain.usual, robust.usual))


def _kept_rate(c: Ints, lines: Ints, left_out: Ints, table: Table) -> UserRate:
    """``rules._kept_rate``, where kept is every window of the user but ``left_out``."""
    kept_lines = int(c.sum()) - int(c[left_out].sum())
    kept_total = table.all_lines - int(lines[left_out].sum())
    return UserRate(kept_lines / kept_total if kept_total else 0.0,
                    kept_lines / (len(table.order) - len(left_out)))


def _suspect(w: Ints, c: Ints, pos: Ints, lines: Ints, table: Table,
             settings: Settings) -> Ints:
    """``rules.suspect_windows`` as indexes into ``w``."""
    least = settings.burst_min_lines
    usual = _local_median(c, pos, table)
    lowest = max(1.0, settings.burst_factor * usual)
    high = _in_long_runs(np.flatnonzero(c >= lowest), w, c, least)
    if not len(high):
        return high
    share = _weighted_median_share(c, lines, table)
    limit = _limits(share, usual, c[high], lines[high], settings)
    flagged = high[c[high] >= limit]
    return _in_long_runs(flagged, w, c, least)


def _limits(share: float, usual: float, c: Ints, lines: Ints, settings: Settings) -> Floats:
    """``rules._burst_limits``' threshold, for many windows."""
    # max(1.0, factor * max(min(share, MAX_SHARE) * (lines - c), usual)), step by step in place
    limits = np.subtract(lines, c, dtype=np.float64)
    limits *= min(share, MAX_SHARE)
    np.maximum(limits, usual, out=limits)
    limits *= settings.burst_factor
    np.maximum(limits, 1.0, out=limits)
    return limits


def _local_median(c: Ints, pos: Ints, table: Table) -> float:
    """``rules.local_median``: only the windows near the user's have a sum above 0."""
    # The windows within NEIGHBOURS positions of one of the user's: a superset of those within
    # NEIGHBOURS windows (the windows are distinct integers); the others' sums are 0, dropped.
    mask = np.zeros(len(table.order), dtype=bool)
    for k in range(-NEIGHBOURS, NEIGHBOURS + 1):
        mask[np.clip(pos + k, 0, len(mask) - 1)] = True
    near = np.flatnonzero(mask)
    del mask
    # Each one's neighbourhood: the positions of the windows within NEIGHBOURS of it, then
    # those of the user's windows there, then the sum of their lines (prefix sums).
    lo = np.searchsorted(pos, table.edges(near, -1), side="left")
    hi = np.searchsorted(pos, table.edges(near, 1), side="left")
    del near
    prefix = np.zeros(len(c) + 1, dtype=np.int64)
    np.cumsum(c, out=prefix[1:])
    sums = prefix[hi]
    del hi
    sums -= prefix[lo]
    del lo, prefix
    sums = sums[sums > 0]
    sums.sort()
    return _median(sums, len(table.order), 2 * NEIGHBOURS + 1)


def _in_long_runs(chosen: Ints, w: Ints, c: Ints, least: int) -> Ints:
    """``rules.in_long_runs``: of the indexes ``chosen`` (ascending), those in a run of
    adjacent windows whose lines add up to at least ``least``."""
    if not len(chosen):
        return chosen
    ws = w[chosen]
    breaks = np.empty(len(ws), dtype=bool)  # where a run starts
    breaks[0] = True
    np.not_equal(ws[1:] - 1, ws[:-1], out=breaks[1:])
    del ws
    starts = np.flatnonzero(breaks)
    del breaks
    long_enough = np.add.reduceat(c[chosen], starts) >= least
    return chosen[np.repeat(long_enough, np.diff(starts, append=len(chosen)))]


def _weighted_median_share(c: Ints, lines: Ints, table: Table) -> float:
    """``rules.weighted_median_share``."""
    others = table.all_lines - int(c.sum())
    below = table.all_lines - int(lines.sum())
    if len(c) < len(table.order) and 2 * below >= others:
        return 0.0
    shares = c / lines
    theirs = lines - c
    order = np.lexsort((theirs, shares))
    cumulative = below + np.cumsum(theirs[order])
    reached = np.flatnonzero(2 * cumulative >= others)
    return float(shares[order][reached[0]]) if len(reached) else 0.0


def burst_candidates(subject: Subject, rate: UserRate | None, share_floor: float,
                     table: Table, settings: Settings) -> list[BurstCandidate]:
    """``rules.burst_candidates`` of this one user (``rate``: its ``user_rate``)."""
    least = settings.burst_min_lines
    w, c = subject.windows[0], subject.counts[0]
    if int(c.sum()) < least:
        return []
    lines = table.find(w)[1]
    fs = settings.burst_factor * min(share_floor, MAX_SHARE)
    possible = np.flatnonzero(reaches_cut(c, lines, fs))
    # worth a look: enough lines alone, or a neighbour among them
    worth = c[possible] >= least
    if len(possible) > 1:
        ws = w[possible]
        adjacent = ws[1:] - 1 == ws[:-1]
        del ws
        worth[1:] |= adjacent
        worth[:-1] |= adjacent
        del adjacent
    entries = possible[worth]
    del possible, worth
    kept = _in_long_runs(entries, w, c, least)
    del entries
    usual = rate.usual if rate is not None else 0.0
    lines_kept = c[kept]
    flagged = kept[lines_kept >= _limits(share_floor, usual, lines_kept, lines[kept], settings)]
    out = _in_long_runs(flagged, w, c, least)
    name = subject.name
    return [(name, win, n, usual) for win, n in zip(w[out].tolist(), c[out].tolist(), strict=True)]


def reaches_cut(c: Ints, lines: Ints, fs: float) -> Bools:
    """``rules.burst_cut`` over arrays: whether each count ``c`` reaches the cut of its window
    (``lines`` there): max(1, ceil(x)) <= c, x = fs * lines / (1 + fs) * (1 - 1e-9). For whole
    counts that is x <= c and 1 <= c; the same float steps, in place."""
    cut = lines.astype(np.float64)
    cut *= fs
    cut /= 1 + fs
    cut *= 1 - 1e-9
    reached = cut <= c
    reached &= c >= 1
    return reached


def quiet_entries(w: Ints, c: Ints, table: Table, fs: float, least: int,
                  limit: float) -> tuple[list[int], list[int]]:
    """The windows (and counts) of one user in ``store``'s quiet pass: fewer than
    ``least`` lines, in a window of fewer than ``limit`` lines, reaching the cut there."""
    lines = table.find(w)[1]
    chosen = (c < least) & (lines < limit)
    chosen &= reaches_cut(c, lines, fs)
    return w[chosen].tolist(), c[chosen].tolist()


def columns(rows: Iterable[Any], width: int) -> list[Ints]:
    """Rows of ``width`` integers (a database cursor) as that many arrays, read in C."""
    table = np.fromiter(rows, dtype=[(f"f{i}", np.int64) for i in range(width)])
    return [np.ascontiguousarray(table[f"f{i}"]) for i in range(width)]


def totals(subject: Subject) -> tuple[Mapping[bytes, int], Mapping[bytes, int]]:
    """(lines per user, lines per service) of this subject: one entry each, or none."""
    users = {subject.name: int(subject.counts[0].sum())} if len(subject.windows[0]) else {}
    service = sum(int(c.sum()) for c in subject.counts[1:3])
    services = {subject.name: service} if any(len(w) for w in subject.windows[1:3]) else {}
    return users, services
