"""The digest: top lists, distinct counts, spikes and burst candidates of disjoint partitions.

A partition holds every window of each of its subjects, so each is digested alone and the
results combine: the top k of the partitions' top-k lists is exact because they are disjoint.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress
from typing import Any

import numpy as np

from ..model.columns import Columns, Subject
from ..model.digest import Digest, Found, Key, PartDigest, Tables, rules_of
from ..model.partial import Partial
from ..model.windows import WindowLines, release
from ..settings import Settings
from . import arrays
from .rules import BurstCandidate, UserRate, bursts, trim_count
from .table import Table


def top_k(counts: Iterable[tuple[bytes, int]], k: int) -> list[tuple[bytes, int]]:
    """The ``k`` largest counts, by count descending then key ascending (code-point order)."""
    return heapq.nsmallest(k, counts, key=lambda kv: (-kv[1], kv[0]))


def top_of(totals: Mapping[bytes, int], k: int) -> list[tuple[bytes, int]]:
    """``top_k`` of a large mapping: the k-th largest count first (no key function), then only
    the entries that reach it are ranked."""
    if k <= 0:
        return []
    if len(totals) <= 4 * k:
        return top_k(totals.items(), k)
    least = heapq.nlargest(k, totals.values())[-1]
    return top_k(compress(totals.items(), map(least.__le__, totals.values())), k)


def digest_tables(
    tables: Tables,
    window_lines: Mapping[int, int],
    settings: Settings,
    put_candidates: Callable[[list[BurstCandidate]], None],
) -> PartDigest:
    """Digest one partition (every window of each of its subjects is in it)."""
    return digest_columns(Columns.of(tables), window_lines, settings, put_candidates)


def digest_columns(
    columns: Columns,
    window_lines: Mapping[int, int],
    settings: Settings,
    put_candidates: Callable[[list[BurstCandidate]], None],
) -> PartDigest:
    """``digest_tables`` of a partition read as arrays (``columns.Columns``, summed)."""
    names = columns.names
    # Services: lines per service over both of their tables, the top ones, their errors.
    service = np.concatenate([columns.tables[1][0], columns.tables[2][0]])
    lines = np.zeros(len(names), dtype=np.int64)
    np.add.at(lines, service, np.concatenate([columns.tables[1][2], columns.tables[2][2]]))
    services = np.unique(service)
    del service
    chosen, top_services = _top_of_arrays(names, services, lines[services], settings.top)
    users = columns.users()
    starts, _ = users.segments()
    table = _arrays_of(window_lines)
    rates = arrays.user_rates(users, table, settings)
    own = float(rates.share.max()) if len(rates.share) else 0.0
    # The partition's own share is at most the run's: its filter keeps every window of every
    # reported burst, and only windows of runs with burst_min_lines lines or more.
    put_candidates(arrays.users_burst_candidates(users, rates.usual_of, own, table, settings))
    del rates
    totals = np.add.reduceat(users.counts, starts) if len(starts) else starts
    top, top_users = _top_of_arrays(users.names, users.user[starts], totals, settings.top)
    return PartDigest(
        top_services=top_services,
        top_users=top_users,
        distinct_services=len(services),
        distinct_users=len(starts),
        spikes=arrays.service_spikes(columns, settings),
        share=own,
        service_errors=_errors_of_arrays(columns.tables[1], names, chosen),
        user_errors=_errors_of_arrays(columns.tables[3], users.names, top),
    )


def _top_of_arrays(names: Sequence[bytes], who: Any, totals: Any, k: int
                   ) -> tuple[Any, list[tuple[bytes, int]]]:
    """``top_of`` the totals of subjects ``who`` (indexes into ``names``), with their indexes
    (in no order)."""
    if k <= 0:
        return who[:0], []
    if len(totals) > 4 * k:
        least = np.partition(totals, len(totals) - k)[len(totals) - k]
        chosen = np.flatnonzero(totals >= least)
        who, totals = who[chosen], totals[chosen]
    ranked = zip([names[i] for i in who.tolist()], totals.tolist(), who.tolist(), strict=True)
    top = heapq.nsmallest(k, ranked, key=lambda t: (-t[1], t[0]))  # as top_k
    return np.array([i for _, _, i in top], dtype=np.int64), [(name, n) for name, n, _ in top]


def _errors_of_arrays(table: tuple[Any, Any, Any], names: Sequence[bytes], which: Any
                      ) -> dict[bytes, int]:
    """Error lines of each of the subjects ``which`` (indexes, a few) in a table of columns,
    summed over their windows."""
    subjects, _, counts = table
    chosen = np.isin(subjects, which)
    mine, n = subjects[chosen], counts[chosen]
    return {names[i]: int(n[mine == i].sum()) for i in which.tolist()}


def digest_subject(
    subject: Subject,
    window_lines: Mapping[int, int],
    settings: Settings,
    put_candidates: Callable[[list[BurstCandidate]], None],
) -> PartDigest:
    """``digest_tables`` of one user or service too big for dicts (a ``columns.Subject``)."""
    users, services = arrays.totals(subject)
    share = 0.0
    if users:
        table = _arrays_of(window_lines)
        rate = arrays.user_rate(subject, table, settings)
        share = rate.share if rate is not None else 0.0
        put_candidates(arrays.burst_candidates(subject, rate, share, table, settings))
    return PartDigest(
        top_services=top_of(services, settings.top),
        top_users=top_of(users, settings.top),
        distinct_services=len(services),
        distinct_users=len(users),
        spikes=arrays.spikes(subject, settings) if services else [],
        share=share,
        service_errors={subject.name: int(subject.counts[1].sum())} if services else {},
        user_errors={subject.name: int(subject.counts[3].sum())} if users else {},
    )


_TABLES: dict[str, tuple[Mapping[int, int], Any]] = {}
"""The last window table of each kind built, with the lines per window it was built from: a
process digests every partition against the same ones, and a table takes a pass over every
window."""


def forget_tables() -> None:
    """Let go of the window tables kept for the partitions of a run."""
    _TABLES.clear()


def _kept_table(kind: str, window_lines: Mapping[int, int], make: Callable[[], Any]) -> Any:
    kept = _TABLES.get(kind)
    if kept is None or kept[0] is not window_lines:
        kept = _TABLES[kind] = (window_lines, make())
    return kept[1]


def _arrays_of(window_lines: Mapping[int, int]) -> Table:
    table: Table = _kept_table("arrays", window_lines, lambda: Table.of(window_lines))
    return table


def combine(parts: Iterable[PartDigest], k: int) -> PartDigest:
    """The digest of the union of disjoint partitions."""
    out = PartDigest([], [], 0, 0, [], 0.0)
    for part in parts:
        top_services = top_k(itertools.chain(out.top_services, part.top_services), k)
        top_users = top_k(itertools.chain(out.top_users, part.top_users), k)
        errors = {**out.service_errors, **part.service_errors}
        user_errors = {**out.user_errors, **part.user_errors}
        out = PartDigest(
            top_services=top_services,
            top_users=top_users,
            distinct_services=out.distinct_services + part.distinct_services,
            distinct_users=out.distinct_users + part.distinct_users,
            spikes=out.spikes + part.spikes,
            share=max(out.share, part.share),
            service_errors={s: errors.get(s, 0) for s, _ in top_services},
            user_errors={u: user_errors.get(u, 0) for u, _ in top_users},
        )
    return out


def finish(
    part: PartDigest,
    candidates: Iterable[list[BurstCandidate]],
    window_lines: Mapping[int, int],
    settings: Settings,
) -> Digest:
    """The run's Digest from all its partitions' and their burst candidates."""
    found_bursts: list[Found] = []
    for group in candidates:
        found_bursts += bursts(group, part.share, window_lines, settings)
    return Digest(
        top=settings.top,
        rules=rules_of(settings),
        top_services=part.top_services,
        top_users=part.top_users,
        distinct_services=part.distinct_services,
        distinct_users=part.distinct_users,
        spikes=part.spikes,
        bursts=found_bursts,
        service_errors={s: part.service_errors.get(s, 0) for s, _ in part.top_services},
        user_errors={u: part.user_errors.get(u, 0) for u, _ in part.top_users},
    )


# --- the rules of dict tables: the array rules on the columns of the dicts ------------------


def detect_spikes(p: Partial, settings: Settings) -> list[Found]:
    """error_spike anomalies, one per run of adjacent flagged windows of a service."""
    return spikes(p.service_errors, p.service_others, settings)


def spikes(
    errors: Mapping[tuple[bytes, int], int],
    others: Mapping[tuple[bytes, int], int],
    settings: Settings,
) -> list[Found]:
    """error_spike anomalies of the services in these (service, window) counts (computed over
    arrays: ``arrays.service_spikes``).

    Each service is judged on its own windows only, so the services can be split into groups
    (as the spilling reducer does) as long as every window of a service is in its group.
    """
    return arrays.service_spikes(Columns.of([{}, errors, others, {}]), settings)


class WindowTable:
    """What every user's rates are computed against: the windows with traffic. Built once;
    as numpy arrays (``Table``, which the user rules run on) when a rate needs them."""

    def __init__(self, lines: Mapping[int, int], all_lines: int, drop: int,
                 order: Sequence[int]) -> None:
        self.lines = lines
        """window index -> all its lines."""
        self.all_lines = all_lines
        self.drop = drop
        """How many windows the trim leaves out."""
        self.order = order
        """The windows, ascending."""

    @functools.cached_property
    def arrays(self) -> Table:
        return Table.of(self.lines)

    @classmethod
    def of(cls, window_lines: Mapping[int, int]) -> WindowTable:
        order: Sequence[int]
        if isinstance(window_lines, WindowLines):
            order = window_lines.sorted_keys()
        else:
            order = sorted(window_lines)
        total = sum(window_lines.values())
        release(window_lines)
        return cls(window_lines, total, trim_count(len(order)), order)


def user_rate(counts: Mapping[int, int], table: WindowTable, settings: Settings) -> UserRate | None:
    """A user's share and usual rate (see the module doc) from all its windows (window -> its
    lines, each at least 1); None for a user seen in at most a tenth of the windows, whose
    share and rate are 0. Neither is ever above the plain trimmed one. Computed over arrays
    (``arrays.user_rates``, where the rule is written once for any number of users)."""
    if len(counts) <= table.drop:
        return None
    windows = sorted(counts)
    return arrays.user_rate(
        arrays.user(b"", array("q", windows), array("q", map(counts.__getitem__, windows))),
        table.arrays, settings)


def busiest_share(p: Partial, settings: Settings) -> float:
    """S, the busiest ordinary user's share of all lines (see the module doc)."""
    return user_share(p.user_lines, p.window_lines, settings)


def user_share(
    user_lines: Mapping[tuple[bytes, int], int],
    window_lines: Mapping[int, int],
    settings: Settings,
) -> float:
    """The largest share among the users of ``user_lines`` (0 when there is none).

    Every window of a user must be in ``user_lines``; the run's share is the largest over any
    split of the users into groups.
    """
    rates = arrays.user_rates(Columns.of([user_lines]).users(),
                              Table.of(window_lines), settings)
    return float(rates.share.max()) if len(rates.share) else 0.0


def burst_candidates(
    user_lines: Mapping[Key, int],
    window_lines: Mapping[int, int],
    share_floor: float,
    settings: Settings,
) -> list[BurstCandidate]:
    """The windows that can be flagged in a reported run once the run's share is known to be at
    least ``share_floor``: every window of each run of windows flagged under ``share_floor``
    whose lines reach ``burst_min_lines``.

    The threshold only grows with the share, so a run flagged under the run's share lies inside
    one flagged under the floor, and has no more lines: filtering a group of users with the
    group's own share (never above the run's) keeps every window of every reported run. What is
    kept is bounded by those runs, however small the expectation (a share of 0 flags every
    window), so a crowd of users with a few lines here and there leaves nothing.
    Every window of a user must be in ``user_lines``. Computed over arrays
    (``arrays.users_burst_candidates``).
    """
    users = Columns.of([user_lines]).users()
    table = Table.of(window_lines)

    def usual_of(which: Any) -> Any:
        return arrays.user_rates(users, table, settings).usual_of(which)

    return arrays.users_burst_candidates(users, usual_of, share_floor, table, settings)


def detect_bursts(p: Partial, settings: Settings) -> list[Found]:
    """user_burst anomalies, one per run of adjacent flagged windows of a user with enough lines."""
    share = busiest_share(p, settings)
    candidates = burst_candidates(p.user_lines, p.window_lines, share, settings)
    return bursts(candidates, share, p.window_lines, settings)
