"""What the report needs of the watcher's counters on disk: top lists, error spikes, the busiest
share and the burst candidates, judged by the same rules as a batch run (``detect``).

``Judgments`` is the reading half of ``CountStore`` (``store``), which writes the counters.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter

from ..detect import arrays
from ..detect.digest import WindowTable, finish, spikes, user_rate
from ..detect.rules import MAX_SHARE, BurstCandidate, UserRate, burst_cut, long_runs
from ..detect.table import Table
from ..model.digest import Digest, Found, Key, PartDigest
from ..settings import Settings
from .toplist import TopList

ARRAYS_FROM = 20_000
"""A user or service with more windows than this is judged from numpy arrays (``arrays``), not
dicts: a service that logs every minute of a year has 525,600 of them."""


@dataclass
class Pass:
    """One reading pass: the windows with traffic as ``rules`` judges users against them,
    and the users' rates read so far."""

    window_lines: Mapping[int, int]
    table: WindowTable
    rates: dict[bytes, UserRate | None] = field(default_factory=dict)
    _arrays: Table | None = None

    def arrays(self) -> Table:
        """The table as ``Table`` (made once, when a subject with many windows needs it)."""
        if self._arrays is None:
            self._arrays = Table.of(self.window_lines)
        return self._arrays


class Judgments:
    """The reading side of the counters in ``db``; ``CountStore`` keeps them."""

    db: sqlite3.Connection
    settings: Settings
    top_size: int
    users: TopList
    services: TopList
    distinct_users: int
    distinct_services: int
    spikes: dict[bytes, list[Found]]
    unjudged: set[bytes]
    full_passes: int

    def _top_from_table(self, table: str) -> TopList:
        """A top list from every total (SQLite's bounded top-N sort)."""
        self.full_passes += 1
        key = "user" if table == "users" else "service"
        rows = self.db.execute(
            f"SELECT {key}, n FROM main.{table} ORDER BY n DESC, {key} LIMIT ?",
            (self.top_size + 1,),
        ).fetchall()
        complete = len(rows) <= self.top_size
        return TopList(self.top_size, rows[: self.top_size], complete)

    def _judge(self, service: bytes) -> None:
        rows = self.db.execute(
            "SELECT window, errors, others FROM service_windows WHERE service = ? ORDER BY window",
            (service,))
        self._judged(service, rows)

    def _judged(self, service: bytes, rows: Iterable[tuple[int, int, int]]) -> None:
        """Judge ``service`` from its (window, errors, others) rows, ascending by window."""
        columns = arrays.columns(rows, 3)
        if len(columns[0]) > ARRAYS_FROM:
            found = arrays.spikes(arrays.service(service, *columns), self.settings)
        else:
            errors: dict[Key, int] = {}
            others: dict[Key, int] = {}
            for window, e, o in zip(*(c.tolist() for c in columns), strict=True):
                if e:
                    errors[(service, window)] = e
                if o:
                    others[(service, window)] = o
            found = spikes(errors, others, self.settings)
        if found:
            self.spikes[service] = found
        else:
            self.spikes.pop(service, None)

    def _judge_all_services(self) -> None:
        self.full_passes += 1
        self.spikes = {}
        self.unjudged.clear()
        rows = self.db.execute(
            "SELECT service, window, errors, others FROM service_windows ORDER BY service, window")
        for service, group in itertools.groupby(rows, key=itemgetter(0)):
            self._judged(service, ((w, e, o) for _, w, e, o in group))

    def _windows_of(self, user: bytes) -> sqlite3.Cursor:
        """(window, lines) of ``user``, ascending by window."""
        return self.db.execute(
            "SELECT window, n FROM user_windows WHERE user = ? ORDER BY window", (user,))

    def _rate(self, user: bytes, p: Pass) -> UserRate | None:
        if user not in p.rates:
            p.rates[user] = self._rate_from(user, self._windows_of(user), p)
        return p.rates[user]

    def _rate_from(self, user: bytes, rows: Iterable[tuple[int, int]], p: Pass) -> UserRate | None:
        """``rules.user_rate`` of ``user`` from its (window, lines) rows, ascending; from
        arrays when they are many."""
        windows, counts = arrays.columns(rows, 2)
        if len(windows) <= p.table.drop:
            return None  # seen in at most a tenth of the windows
        if len(windows) > ARRAYS_FROM:
            return arrays.user_rate(arrays.user(user, windows, counts), p.arrays(), self.settings)
        return user_rate(dict(zip(windows.tolist(), counts.tolist(), strict=True)), p.table,
                         self.settings)

    def busiest_share(self, p: Pass) -> float:
        """The largest share of any user (``rules.user_share`` over every user)."""
        table = p.table
        if not table.order:
            return 0.0
        floor = table.all_lines - sum(heapq.nlargest(table.drop, table.lines.values()))
        best = 0.0
        for user, total in self.users.items:
            # A user's share is at most its plain trimmed share, whose lines are at most
            # total - drop and whose lines of all at least ``floor``. No user after this one
            # has a larger total, so none can beat this bound.
            if max(0, total - table.drop) / floor <= best:
                return best
            rate = self._rate(user, p)
            if rate is not None:
                best = max(best, rate.share)
        if self.users.complete:
            return best
        if self.users.items and max(0, self.users.items[-1][1] - table.drop) / floor <= best:
            return best
        return self._share_of_everyone(p)

    def _share_of_everyone(self, p: Pass) -> float:
        """The busiest share from every user's windows, one user at a time."""
        self.full_passes += 1
        best = 0.0
        rows = self.db.execute("SELECT user, window, n FROM user_windows ORDER BY user, window")
        for user, group in itertools.groupby(rows, key=itemgetter(0)):
            rate = self._rate_from(user, ((w, n) for _, w, n in group), p)
            if rate is not None and rate.share > best:
                best = rate.share
        return best

    def burst_candidates(self, p: Pass, share: float) -> list[BurstCandidate]:
        """Every window of every run that ``rules.bursts`` can report under ``share`` (and
        some it will not), each with its user's usual rate.

        A window is flagged only if its lines reach its *cut*, the threshold with a usual rate
        of 0 (the lowest), and a run of flagged windows is reported only if its lines add up to
        ``--burst-min-lines`` (``least``). So only the windows reaching their cut matter: those
        with ``least`` lines or more come from the partial index of busy counts; those with
        fewer can only be in *quiet* windows, whose cut is under ``least``, and are read by
        window, or through the users with ``least`` lines in all when the top list names them
        all and that reads less. Of all these, the runs of adjacent windows of one user with
        ``least`` lines in all are kept, streamed in (user, window) order.
        """
        settings = self.settings
        least = int(settings.burst_min_lines)
        fs = settings.burst_factor * min(share, MAX_SHARE)

        def cut(lines_there: int) -> int:
            return burst_cut(lines_there, fs)

        wl = p.table.lines
        busy = (
            ((user, window), n)
            for user, window, n in self.db.execute(
                # The partial index's own condition, so that it is used; in its order.
                f"SELECT user, window, n FROM user_windows WHERE n >= {least} "
                "ORDER BY user, window")
            if n >= cut(wl[window])
        )
        # A quiet window is one whose cut is under ``least``; the cut grows with the window's
        # lines, so the quiet ones are those with fewer lines than some ``limit``: found once,
        # then the windows are filtered in C, never gathered (they may be millions).
        limit: float
        if fs == 0:
            limit = 0 if least <= 1 else math.inf  # every cut is 1
        else:
            # cut(lines) >= least once lines >= least * (1 + fs) / fs: the search stops there.
            below = least * (1 + fs) / fs * (1 + 1e-6) + 1
            limit = _first_at_least(lambda lines: cut(lines) >= least, math.ceil(below))
        values = wl.values()
        is_quiet = list(map(limit.__gt__, values))
        quiet = sum(is_quiet)
        by_window = sum(compress(values, is_quiet))
        del is_quiet
        entries = (heapq.merge(busy, self._quiet_entries(limit, cut, quiet, by_window, least, p, fs))
                   if quiet else busy)
        kept = [entry for run in long_runs(entries, least) for entry in run]
        usual: dict[bytes, float] = {}
        out: list[BurstCandidate] = []
        for (user, window), n in kept:
            if user not in usual:
                rate = self._rate(user, p)
                usual[user] = rate.usual if rate is not None else 0.0
            out.append((user, window, n, usual[user]))
        return out

    def _quiet_entries(
        self,
        limit: float,
        cut: Callable[[int], int],
        quiet: int,
        by_window: int,
        least: int,
        p: Pass,
        fs: float,
    ) -> Iterator[tuple[Key, int]]:
        """The (user, window) counts under ``least`` that reach their quiet window's cut, in
        (user, window) order. Quiet windows: those with fewer than ``limit`` lines (``quiet``
        of them, ``by_window`` lines in all)."""
        window_lines = p.window_lines
        busy_users: list[tuple[bytes, int]] | None = None
        if self.users.complete or (self.users.items and self.users.items[-1][1] < least):
            busy_users = [(u, n) for u, n in self.users.items if n >= least]
        if busy_users is not None and sum(n for _, n in busy_users) <= by_window:
            for user, _ in sorted(busy_users):
                windows, counts = arrays.columns(self._windows_of(user), 2)
                if len(windows) > min(ARRAYS_FROM, 64):  # a few lookups cost less in Python
                    chosen = arrays.quiet_entries(windows, counts, p.arrays(), fs, least, limit)
                    for window, n in zip(*chosen, strict=True):
                        yield (user, window), n
                    continue
                for window, n in zip(windows.tolist(), counts.tolist(), strict=True):
                    if n < least and (there := window_lines[window]) < limit and n >= cut(there):
                        yield (user, window), n
            return
        if quiet == len(window_lines):
            self.full_passes += 1
        db = self.db
        db.execute("DELETE FROM temp.quiet")
        db.executemany("INSERT INTO temp.quiet VALUES (?, ?)",
                       ((w, cut(lines)) for w, lines in window_lines.items() if lines < limit))
        rows = db.execute(
            "SELECT uw.user, uw.window, uw.n FROM temp.quiet q CROSS JOIN main.user_windows uw "
            f"ON uw.window = q.window WHERE uw.n >= q.cut AND uw.n < {least} "
            "ORDER BY uw.user, uw.window"
        )
        for user, window, n in rows:
            yield (user, window), n

    def digest(self, window_lines: Mapping[int, int], anomalies: bool = True) -> Digest:
        """What the report needs from these counters, given every window's valid lines.

        Without ``rules``, only what the summary needs (no pass over the counters; the
        digest then holds no spikes or bursts)."""
        for name in ("users", "services"):
            if getattr(self, name).short(self.settings.top):
                setattr(self, name, self._top_from_table(name))
        top = self.settings.top
        part = PartDigest(
            top_services=self.services.items[:top],
            top_users=self.users.items[:top],
            distinct_services=self.distinct_services,
            distinct_users=self.distinct_users,
            spikes=[],
            share=0.0,
        )
        if not anomalies:
            return finish(part, [], window_lines, self.settings)
        part = part._replace(service_errors={
            service: int(self.db.execute(
                "SELECT total(errors) FROM service_windows WHERE service = ?", (service,)).fetchone()[0])
            for service, _ in part.top_services},
            user_errors={
                user: int(self.db.execute(
                    "SELECT total(n) FROM user_errors WHERE user = ?", (user,)).fetchone()[0])
                for user, _ in part.top_users})
        for service in sorted(self.unjudged):
            self._judge(service)
        self.unjudged.clear()
        p = Pass(window_lines, WindowTable.of(window_lines))
        share = self.busiest_share(p)
        part = part._replace(
            spikes=[found for service in sorted(self.spikes) for found in self.spikes[service]],
            share=share,
        )
        return finish(part, [self.burst_candidates(p, share)], window_lines, self.settings)


def _first_at_least(reached: Callable[[int], bool], high: int) -> int:
    """The smallest n >= 0 with ``reached(n)`` (monotone), or ``high`` if none below it."""
    low = 0
    while low < high:
        mid = (low + high) // 2
        if reached(mid):
            high = mid
        else:
            low = mid + 1
    return low
