"""The window rules over numpy arrays, written once, for any number of subjects.

The user rules of the module doc of ``rules`` (share and usual rate: trim, local median,
weighted median share, suspect windows; burst candidates) run for every user of a partition at
once (``user_rates``, ``users_burst_candidates``, on ``columns.Users``); error_spike runs per
service (``spikes``, ``service_spikes``). Integer sums first, then the same float operations in
the same order as the rules state them, user by user, so the result is the same to the last bit
as the reference (the tests check it). The dict entry points (``digest.user_rate`` and
friends) are these on the dicts' columns.

One subject's windows cannot be split between partitions: a service that logs every minute of
a year has 525,600 of them, a heartbeat user at ``--window 1`` 86,400 a day. Such a subject,
alone in a piece, is a ``columns.Subject`` (16 bytes a window, a few times that while the rules
run), judged by the same functions (one user or service); with millions of windows the local
medians are made only near each user's windows, and the window table is read a stretch at a
time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..model.columns import Columns, Subject, Users, by_pairs, segments
from ..model.digest import Found
from ..settings import Settings
from .rules import (
    MAX_SHARE,
    NEIGHBOURS,
    BurstCandidate,
    Flagged,
    UserRate,
    _window_anomalies,
)
from .table import STRETCH, Ints, Table, _ints

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


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


def service_spikes(columns: Columns, settings: Settings) -> list[Found]:
    """``rules.spikes`` of the services of ``columns`` (summed): ``spikes`` of each service
    with errors whose busiest window reaches the floor (the others have none)."""
    subjects, windows, counts = columns.tables[1]
    if not len(subjects):
        return []
    starts, lengths = segments(subjects)
    busy = np.flatnonzero(np.maximum.reduceat(counts, starts) >= settings.spike_min_errors)
    if not len(busy):
        return []
    others, other_windows, other_counts = columns.tables[2]
    found: list[Found] = []
    for i in busy.tolist():
        a, b = starts[i], starts[i] + lengths[i]
        service = int(subjects[a])
        c, d = np.searchsorted(others, [service, service + 1])
        empty = windows[:0]
        subject = Subject(columns.names[service], [empty, windows[a:b], other_windows[c:d], empty],
                          [empty, counts[a:b], other_counts[c:d], empty])
        found += spikes(subject, settings)
    return found


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


def _alone(n: int) -> Ints:
    """The user index of each of ``n`` entries of one user alone: 0, as a read-only view of one
    value (a subject may have millions of windows)."""
    return np.broadcast_to(np.int64(0), n)


def user_rate(subject: Subject, table: Table, settings: Settings) -> UserRate | None:
    """``rules.user_rate`` of this one user."""
    w, c = subject.windows[0], subject.counts[0]
    if len(w) <= table.drop:
        return None
    rates = user_rates(Users([subject.name], _alone(len(w)), w, c), table, settings)
    return UserRate(float(rates.share[0]), float(rates.usual[0]))


@dataclass
class Rates:
    """``rules.user_rate`` of many users: those seen in more windows than a tenth (``user``:
    indexes into the names, ascending), with their share and usual rate."""

    user: Ints
    share: Floats
    usual: Floats

    def usual_of(self, users: Ints) -> Floats:
        """The usual rate of each of ``users`` (indexes), 0 for one without a rate."""
        if not len(self.user):
            return np.zeros(len(users))
        at = np.minimum(np.searchsorted(self.user, users), len(self.user) - 1)
        return np.where(self.user[at] == users, self.usual[at], 0.0)


def user_rates(users: Users, table: Table, settings: Settings) -> Rates:
    """``rules.user_rate`` of every user seen in more windows than a tenth, all at once: the
    same integer sums, then the same float operations in the same order, user by user."""
    drop, windows = table.drop, len(table.order)
    starts, lengths = users.segments()
    wanted = lengths > drop
    if not wanted.all():
        keep = np.repeat(wanted, lengths)
        users = Users(users.names, users.user[keep], users.windows[keep], users.counts[keep])
        del keep
        starts, lengths = users.segments()
    who = users.user[starts]
    if not len(who):
        return Rates(who, np.zeros(0), np.zeros(0))
    w, c = users.windows, users.counts
    # Each entry's user, 0 to m - 1: the users' own indexes when they are those already (one
    # user alone: its millions of windows need no second array of them).
    if int(who[0]) == 0 and int(who[-1]) == len(who) - 1:
        seg = users.user
    else:
        seg = np.repeat(np.arange(len(starts)), lengths)
    pos, lines = table.find(w)
    totals = np.add.reduceat(c, starts)
    # Plain: every window but the user's ``drop`` busiest (lines descending, then window).
    ranked = _busiest_first(seg, w, c)
    place = np.arange(len(c))  # each ranked entry's place among its user's
    if len(starts) > 1:
        place -= np.repeat(starts, lengths)
    trimmed = place < drop
    del place
    share, usual = _kept_rates(totals, _sums(c[ranked], trimmed, starts),
                               _sums(lines[ranked], trimmed, starts),
                               np.full(len(starts), drop), table)
    suspect = _suspects(seg, w, c, pos, lines, starts, lengths, table, settings)
    del pos
    if len(suspect):
        # Robust: every window but the suspect ones and the tenth of all the windows (never
        # all that are left) with most lines among the rest.
        is_suspect = np.zeros(len(c), dtype=bool)
        is_suspect[suspect] = True
        suspects = np.bincount(seg[suspect], minlength=len(starts))
        has = suspects > 0
        drops = np.minimum((windows + 9) // 10, np.maximum(windows - suspects - 1, 0))
        rest_ranked = ~is_suspect[ranked]
        # the position of each ranked entry among its user's rest, in rank order
        among = np.cumsum(rest_ranked)
        among -= np.repeat(among[starts] - rest_ranked[starts], lengths) + 1
        left = is_suspect[ranked] | (rest_ranked & (among < np.repeat(drops, lengths)))
        r_share, r_usual = _kept_rates(totals, _sums(c[ranked], left, starts),
                                       _sums(lines[ranked], left, starts), suspects + drops,
                                       table)
        nothing_left = drops >= lengths - suspects
        r_share[nothing_left] = 0.0
        r_usual[nothing_left] = 0.0
        share = np.where(has, np.minimum(share, r_share), share)
        usual = np.where(has, np.minimum(usual, r_usual), usual)
    return Rates(who, share, usual)


def _busiest_first(seg: Ints, w: Ints, c: Ints) -> Ints:
    """Each user's entries by lines descending, then window ascending (users in order)."""
    low = int(w.min())
    span = int(w.max()) - low + 1
    top = int(c.max())
    if (top + 1) * span < 1 << 61:
        minor = np.subtract(top, c)  # (top - c) * span + (w - low), in place: one array
        minor *= span
        minor += w
        minor -= low
        return by_pairs(seg, minor)
    return np.lexsort((w, -c, seg))


def _sums(values: Ints, chosen: Bools, starts: Ints) -> Ints:
    """Per user (entries from ``starts``), the sum of ``values`` where ``chosen``."""
    return np.add.reduceat(np.where(chosen, values, 0), starts)


def _kept_rates(totals: Ints, left_lines: Ints, left_all: Ints, left_out: Ints,
                table: Table) -> tuple[Floats, Floats]:
    """``rules._kept_rate`` per user: its lines but ``left_lines`` (those in its ``left_out``
    windows) / all lines but ``left_all`` (in the same windows), and / the windows kept."""
    kept_lines = totals - left_lines
    kept_total = table.all_lines - left_all
    share = np.zeros(len(totals))
    np.divide(kept_lines, kept_total, out=share, where=kept_total != 0)
    kept = len(table.order) - left_out  # 0 only for a user the caller gives no rate
    usual = np.zeros(len(totals))
    np.divide(kept_lines, kept, out=usual, where=kept != 0)
    return share, usual


def _suspects(seg: Ints, w: Ints, c: Ints, pos: Ints, lines: Ints, starts: Ints,
              lengths: Ints, table: Table, settings: Settings) -> Ints:
    """``rules.suspect_windows`` of every user, as indexes of entries."""
    least = settings.burst_min_lines
    usual = _local_medians(seg, c, pos, starts, table)
    lowest = np.maximum(settings.burst_factor * usual, 1.0)
    high = _in_long_runs(np.flatnonzero(c >= np.repeat(lowest, lengths)), w, c, least, seg)
    if not len(high):
        return high
    share = _weighted_median_shares(seg, c, lines, starts, lengths, np.unique(seg[high]), table)
    hs = seg[high]
    limit = _limits(share[hs], usual[hs], c[high], lines[high], settings)
    return _in_long_runs(high[c[high] >= limit], w, c, least, seg)


def _limits(share: Any, usual: Any, c: Ints, lines: Ints, settings: Settings) -> Floats:
    """``rules._burst_limits``' threshold, for many windows (``share`` and ``usual``: one for
    all, or one each)."""
    # max(1.0, factor * max(min(share, MAX_SHARE) * (lines - c), usual)), step by step in place
    limits = np.subtract(lines, c, dtype=np.float64)
    limits *= np.minimum(share, MAX_SHARE)
    np.maximum(limits, usual, out=limits)
    limits *= settings.burst_factor
    np.maximum(limits, 1.0, out=limits)
    return limits


DENSE_CELLS = 1 << 18
"""Users x windows whose local sums are made at a time as a dense table; with more windows
than this, the sums may be made only near each user's windows (see SPARSE_ENTRIES)."""
SPARSE_ENTRIES = 1 / (2 * NEIGHBOURS + 1)
"""Entries per window below which, past DENSE_CELLS windows, the sums are made near each
user's windows only: that takes some arrays of 2 * NEIGHBOURS + 1 cells an entry, where the
dense table takes one row of every window a user at a time (a user with millions of windows:
one row, not five times its entries in several arrays)."""


def _local_medians(seg: Ints, c: Ints, pos: Ints, starts: Ints, table: Table) -> Floats:
    """``rules.local_median`` of every user."""
    windows = len(table.order)
    if windows < DENSE_CELLS or len(c) > windows * SPARSE_ENTRIES:
        return _dense_local_medians(seg, c, pos, len(starts), table)
    # Only the windows near one of the user's have a sum above 0.
    # (user, position) of the windows within NEIGHBOURS positions of one of the user's: a
    # superset of those within NEIGHBOURS windows (the windows are distinct integers); the
    # others' sums are 0, left out.
    # Each (user, position) once: pos + k is left to an earlier entry of the user when that
    # one is at most NEIGHBOURS - k positions before (the positions ascend, user by user).
    gap = np.full(len(pos), 2 * NEIGHBOURS + 1, dtype=np.int64)
    if len(pos) > 1:
        np.subtract(pos[1:], pos[:-1], out=gap[1:])
        gap[1:][seg[1:] != seg[:-1]] = 2 * NEIGHBOURS + 1
    near_parts, seg_parts = [], []
    for k in range(-NEIGHBOURS, NEIGHBOURS + 1):
        at = pos + k
        new = (gap > NEIGHBOURS - k) & (at >= 0) & (at < windows)
        near_parts.append(at[new])
        seg_parts.append(seg[new])
    del gap
    near, near_seg = np.concatenate(near_parts), np.concatenate(seg_parts)
    del near_parts, seg_parts
    span = windows + 1
    mine = seg * span + pos  # ascending: by user, then position
    base = near_seg * span
    # Each one's neighbourhood: the positions of the windows within NEIGHBOURS of it, then
    # the entries of the user's windows there, then the sum of their lines (prefix sums).
    lo = np.searchsorted(mine, base + table.edges(near, -1), side="left")
    hi = np.searchsorted(mine, base + table.edges(near, 1), side="left")
    del near, base, mine
    prefix = np.zeros(len(c) + 1, dtype=np.int64)
    np.cumsum(c, out=prefix[1:])
    sums = prefix[hi]
    del hi
    sums -= prefix[lo]
    del lo, prefix
    above = sums > 0
    sums, near_seg = sums[above], near_seg[above]
    order = np.lexsort((sums, near_seg))
    return _medians(sums[order], near_seg[order], len(starts), windows, 2 * NEIGHBOURS + 1)


def _dense_local_medians(seg: Ints, c: Ints, pos: Ints, users: int, table: Table) -> Floats:
    """``rules.local_median`` of every user, a group of users at a time: each one's lines at
    every window (0 where it has none), their prefix sums, the sum around each window, the
    middle ones. Users seen in more than a tenth of the windows: at most 10 cells an entry."""
    windows = len(table.order)
    back, ahead = table.neighbourhoods
    group = max(1, DENSE_CELLS // (windows + 1))
    width, mid = 2 * NEIGHBOURS + 1, windows // 2
    middle = [mid] if windows % 2 else [mid - 1, mid]
    bounds = np.searchsorted(seg, np.arange(0, users + group, group)).tolist()
    out = np.empty(users)
    # The sums are of whole lines: 32 bits hold them unless a group's users have 2**31 lines.
    for g, g0 in enumerate(range(0, users, group)):
        a, b = bounds[g], bounds[g + 1]
        kind = np.int32 if int(c[a:b].sum()) < 1 << 31 else np.int64
        prefix = np.zeros((min(users, g0 + group) - g0, windows + 1), dtype=kind)
        for start in range(a, b, STRETCH):  # index arrays a stretch at a time
            end = min(b, start + STRETCH)
            prefix[seg[start:end] - g0, pos[start:end] + 1] = c[start:end]
        np.cumsum(prefix, axis=1, out=prefix)
        sums = np.empty((len(prefix), windows), dtype=kind)
        for start in range(0, windows, STRETCH):  # index arrays a stretch at a time
            at = np.arange(start, min(windows, start + STRETCH))
            sums[:, start : start + STRETCH] = prefix[:, at + ahead[start : start + STRETCH]]
            sums[:, start : start + STRETCH] -= prefix[:, at - back[start : start + STRETCH]]
        del prefix
        sums.partition(middle, axis=1)
        if windows % 2:
            out[g0 : g0 + len(sums)] = sums[:, mid] / width
        else:
            out[g0 : g0 + len(sums)] = (sums[:, mid - 1] / width + sums[:, mid] / width) / 2
    return out


def _medians(ordered: Ints, seg: Ints, users: int, total: int, width: int) -> Floats:
    """``_median`` of each user's values (``ordered`` ascending by user ``seg``, then value),
    each with zeros up to ``total`` values, divided by ``width``."""
    nonzero = np.bincount(seg, minlength=users)
    first = np.concatenate([[0], np.cumsum(nonzero)[:-1]])
    zeros = total - nonzero

    def at(k: int) -> Ints:
        i = k - zeros
        inside = i >= 0
        return np.where(inside, ordered[np.where(inside, first + i, 0)] if len(ordered) else 0, 0)

    mid = total // 2
    if total % 2:
        return at(mid) / width
    return (at(mid - 1) / width + at(mid) / width) / 2


def _in_long_runs(chosen: Ints, w: Ints, c: Ints, least: int, seg: Ints | None = None) -> Ints:
    """``rules.in_long_runs``: of the indexes ``chosen`` (ascending), those in a run of
    adjacent windows (of one user: ``seg``) whose lines add up to at least ``least``."""
    if not len(chosen):
        return chosen
    ws = w[chosen]
    breaks = np.empty(len(ws), dtype=bool)  # where a run starts
    breaks[0] = True
    np.not_equal(ws[1:] - 1, ws[:-1], out=breaks[1:])
    del ws
    if seg is not None:
        ss = seg[chosen]
        breaks[1:] |= ss[1:] != ss[:-1]
        del ss
    starts = np.flatnonzero(breaks)
    del breaks
    long_enough = np.add.reduceat(c[chosen], starts) >= least
    return chosen[np.repeat(long_enough, np.diff(starts, append=len(chosen)))]


def _weighted_median_shares(seg: Ints, c: Ints, lines: Ints, starts: Ints, lengths: Ints,
                            which: Ints, table: Table) -> Floats:
    """``rules.weighted_median_share`` of users ``which`` (ascending; 0 for the others)."""
    out = np.zeros(len(starts))
    take = np.zeros(len(starts), dtype=bool)
    take[which] = True
    pick = np.repeat(take, lengths)
    s, cs, ls = seg[pick], c[pick], lines[pick]
    del pick
    first, count = segments(s)
    others = table.all_lines - np.add.reduceat(cs, first)
    below = table.all_lines - np.add.reduceat(ls, first)
    zero = (count < len(table.order)) & (2 * below >= others)
    shares = cs / ls
    theirs = ls - cs
    order = np.lexsort((theirs, shares, s))
    cumulative = np.cumsum(theirs[order])
    cumulative -= np.repeat(cumulative[first] - theirs[order][first], count)
    cumulative += np.repeat(below, count)
    reached = 2 * cumulative >= np.repeat(others, count)
    # the first window reached of each user (every user reaches at its last window)
    hits = np.flatnonzero(reached)
    at = hits[np.searchsorted(hits, first)]
    got = shares[order][at]
    got[zero] = 0.0
    out[which] = got
    return out


def burst_candidates(subject: Subject, rate: UserRate | None, share_floor: float,
                     table: Table, settings: Settings) -> list[BurstCandidate]:
    """``rules.burst_candidates`` of this one user (``rate``: its ``user_rate``)."""
    w, c = subject.windows[0], subject.counts[0]
    users = Users([subject.name], _alone(len(w)), w, c)
    usual = rate.usual if rate is not None else 0.0
    return users_burst_candidates(users, lambda u: np.broadcast_to(np.float64(usual), len(u)),
                                  share_floor, table, settings)


def users_burst_candidates(users: Users, usual_of: Any, share_floor: float, table: Table,
                           settings: Settings) -> list[BurstCandidate]:
    """``rules.burst_candidates`` of many users; ``usual_of(indexes)``: their usual rates
    (``Rates.usual_of``, computed only if some window is left to test)."""
    least = settings.burst_min_lines
    w, c, user = users.windows, users.counts, users.user
    starts, lengths = users.segments()
    if not len(starts):
        return []
    heavy = np.add.reduceat(c, starts) >= least
    if not heavy.any():
        return []
    if not heavy.all():
        keep = np.repeat(heavy, lengths)
        w, c, user = w[keep], c[keep], user[keep]
        del keep
    lines = table.find(w)[1]
    fs = settings.burst_factor * min(share_floor, MAX_SHARE)
    possible = np.flatnonzero(reaches_cut(c, lines, fs))
    # worth a look: enough lines alone, or a neighbour of the same user among them
    worth = c[possible] >= least
    if len(possible) > 1:
        ws, us = w[possible], user[possible]
        adjacent = (ws[1:] - 1 == ws[:-1]) & (us[1:] == us[:-1])
        del ws, us
        worth[1:] |= adjacent
        worth[:-1] |= adjacent
        del adjacent
    entries = possible[worth]
    del possible, worth
    kept = _in_long_runs(entries, w, c, least, user)
    del entries
    if not len(kept):
        return []
    usual = usual_of(user[kept])
    lines_kept = c[kept]
    flagged = kept[lines_kept >= _limits(share_floor, usual, lines_kept, lines[kept], settings)]
    out = _in_long_runs(flagged, w, c, least, user)
    names = users.names
    rates = usual[np.searchsorted(kept, out)]  # out is within kept; both ascend
    return [(names[u], win, n, r) for u, win, n, r in
            zip(user[out].tolist(), w[out].tolist(), c[out].tolist(), rates.tolist(), strict=True)]


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
