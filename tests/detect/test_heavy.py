"""A subject alone in its partition is digested from arrays (heavy.py): the same results as the
dict digest (anomalies.py), to the last bit, subject by subject."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce_logs.detect import arrays as heavy
from mapreduce_logs.detect import digest
from mapreduce_logs.detect import rules as anomalies
from mapreduce_logs.model import columns, windows
from mapreduce_logs.model.digest import Tables
from mapreduce_logs.settings import Settings

KNOBS = Settings(window=10, spike_factor=2.0, spike_min_errors=2, burst_factor=2.0,
                 burst_min_lines=3)
OTHER_KNOBS = Settings(window=10, spike_factor=5.0, spike_min_errors=20, burst_factor=5.0,
                       burst_min_lines=20)

Key = tuple[bytes, int]


@pytest.fixture(autouse=True, scope="module")
def small_stretches() -> Iterator[None]:
    """Look windows up 3 at a time, so that the stretches' seams are crossed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(heavy, "STRETCH", 3)
        yield


@st.composite
def series(draw: st.DrawFn, span: int = 60) -> dict[int, int]:
    """A subject's lines per window: steady, with gaps, and now and then a burst."""
    base = draw(st.integers(1, 4))
    present = draw(st.lists(st.booleans(), min_size=span, max_size=span))
    out = {w: base + draw(st.integers(0, 2)) for w, here in enumerate(present) if here}
    for w in draw(st.lists(st.integers(0, span - 1), max_size=6)):
        out[w] = draw(st.integers(10, 200))
    return out


@st.composite
def traffic(draw: st.DrawFn) -> tuple[dict[Key, int], ...]:
    """(user lines, service errors, service other lines, user errors) of a few subjects."""
    names = [b"a", b"b", b"c"]
    tables: list[dict[Key, int]] = [{}, {}, {}]
    for table in tables:
        for name in names[: draw(st.integers(1, 3))]:
            table.update({(name, w): n for w, n in draw(series()).items()})
    divisor = draw(st.integers(1, 4))
    user_errors = {key: n // divisor for key, n in tables[0].items() if n // divisor}
    return tables[0], tables[1], tables[2], user_errors


def subject_of(name: bytes, tables: tuple[dict[Key, int], ...]) -> columns.Subject:
    """``name``'s entries, read as the spill records would bring them: in several records, a
    window's count split between two of them, windows in no order."""
    records = []
    for index, table in enumerate(tables):
        items = sorted(((key, n) for key, n in table.items() if key[0] == name), reverse=True)
        for part in ([(key, 1) for key, n in items if n > 1],
                     [(key, n - 1 if n > 1 else n) for key, n in items]):
            record: list[dict[Key, int]] = [{} for _ in tables]
            record[index] = dict(part)
            records.append(columns.Columns.of(record, summed=False))
    return columns.Subject.of(columns.Columns.gather(records))


def one(table: dict[Key, int], name: bytes) -> dict[Key, int]:
    return {key: n for key, n in table.items() if key[0] == name}


@settings(max_examples=300, deadline=None)
@given(t=traffic(), arrays=st.booleans(), knobs=st.sampled_from([KNOBS, OTHER_KNOBS]),
       floor=st.sampled_from([None, 0.0, 0.2]))
def test_a_subject_alone_digests_as_with_dicts(
    t: tuple[dict[Key, int], ...], arrays: bool, knobs: Settings, floor: float | None,
) -> None:
    user_lines, errors, others, user_errors = t
    counted: Counter[int] = Counter()
    for (_, window), n in user_lines.items():
        counted[window] += n
    window_lines: Mapping[int, int] = counted
    if arrays:
        window_lines = windows.merged([windows.run_of(counted)])
    table = digest.WindowTable.of(window_lines)
    arrays_table = heavy.Table.of(window_lines)
    assert arrays_table.all_lines == table.all_lines and arrays_table.drop == table.drop
    for name in (b"a", b"b", b"c"):
        mine = one(user_lines, name)
        tables = (mine, one(errors, name), one(others, name), one(user_errors, name))
        if not any(tables):
            continue
        subject = subject_of(name, tables)
        seen: list[list[anomalies.BurstCandidate]] = []
        got: list[list[anomalies.BurstCandidate]] = []
        expected = digest.digest_tables(Tables(*tables), window_lines, knobs, seen.append)
        assert digest.digest_subject(subject, window_lines, knobs, got.append) == expected
        assert sorted(c for g in got for c in g) == sorted(c for g in seen for c in g)
        if mine:
            counts = {w: n for (_, w), n in mine.items()}
            rate = digest.user_rate(counts, table, knobs)
            assert heavy.user_rate(subject, arrays_table, knobs) == rate
            share = expected.share if floor is None else floor
            assert heavy.burst_candidates(subject, rate, share, arrays_table, knobs) == (
                digest.burst_candidates(mine, window_lines, share, knobs))


def test_a_heavy_subject_is_flagged_the_same() -> None:
    """A case that goes through every branch: a user with a burst in busy traffic (suspect
    windows, a robust rate), a service with an error spike."""
    user_lines = {(b"a", w): 3 for w in range(200)}
    user_lines.update({(b"b", w): 1 for w in range(0, 200, 2)})
    for w in range(50, 56):
        user_lines[(b"a", w)] = 90
    errors = {(b"a", w): 1 for w in range(0, 200, 3)}
    errors.update({(b"a", w): 40 for w in (120, 121)})
    others = {(b"a", w): 10 for w in range(200)}
    counted: Counter[int] = Counter()
    for (_, window), n in user_lines.items():
        counted[window] += n
    user_errors = {key: n // 30 for key, n in user_lines.items() if key[0] == b"a" and n >= 30}
    tables = (one(user_lines, b"a"), errors, others, user_errors)
    subject = columns.Subject.of(columns.Columns.of(tables))
    seen: list[list[anomalies.BurstCandidate]] = []
    got: list[list[anomalies.BurstCandidate]] = []
    expected = digest.digest_tables(Tables(*tables), counted, KNOBS, seen.append)
    assert expected.spikes and any(seen) and expected.user_errors == {b"a": 18}
    assert digest.digest_subject(subject, counted, KNOBS, got.append) == expected
    assert got == seen


# --- the trimmed tenth on arrays, fixed examples (the rule restated, not the dict code) ---------

TRIM_SIZES = [2, 9, 10, 11, 19, 20, 21]
QUIET_KNOBS = Settings(burst_factor=10.0, burst_min_lines=20)
"""Thresholds no window of the examples below reaches: no suspect, the plain rate alone."""


def tenth(windows: int) -> int:
    """A tenth of the windows, rounded up, never all of them."""
    return min(math.ceil(windows / 10), max(windows - 1, 0))


def ints(values: list[int]) -> Any:
    return np.array(values, dtype=np.int64)


@pytest.mark.parametrize("n", TRIM_SIZES)
def test_error_ratio_trims_the_tenth_with_most_errors(n: int) -> None:
    k = tenth(n)
    windows = ints(list(range(n)))
    got = heavy._usual_ratio(windows, windows + 1, ints([10] * n), np.zeros(n, dtype=bool))
    assert got == sum(range(1, n - k + 1)) / (10 * (n - k))


@pytest.mark.parametrize("n", TRIM_SIZES)
def test_error_ratio_ties_drop_the_earlier_windows(n: int) -> None:
    k = tenth(n)
    windows = ints(list(range(n)))
    got = heavy._usual_ratio(windows, ints([5] * n), 10 * (windows + 1), np.zeros(n, dtype=bool))
    assert got == 5 * (n - k) / sum(10 * (w + 1) for w in range(k, n))


@pytest.mark.parametrize("n", TRIM_SIZES)
def test_user_rate_trims_its_tenth_of_busiest_windows(n: int) -> None:
    k = tenth(n)
    kept = sum(range(1, n - k + 1))
    subject = heavy.user(b"u", array("q", range(n)), array("q", range(1, n + 1)))
    got = heavy.user_rate(subject, heavy.Table.of(dict.fromkeys(range(n), 100)), QUIET_KNOBS)
    assert got == anomalies.UserRate(kept / (100 * (n - k)), kept / (n - k))


@pytest.mark.parametrize("n", TRIM_SIZES)
def test_user_rate_ties_drop_the_earlier_windows(n: int) -> None:
    k = tenth(n)
    subject = heavy.user(b"u", array("q", range(n)), array("q", [5] * n))
    table = heavy.Table.of({w: 100 + w for w in range(n)})
    got = heavy.user_rate(subject, table, QUIET_KNOBS)
    assert got == anomalies.UserRate(5 * (n - k) / sum(100 + w for w in range(k, n)), 5.0)


def test_a_suspect_run_of_exactly_the_floor_and_the_robust_tenth() -> None:
    """21 windows of 100 lines; the user has 2 lines in each, 3 in windows 1, 16 and 19, and
    10 in windows 8 to 11: a run of 40 lines, 5 times its usual local mean and share.

    With burst_min_lines 40 the run reaches the floor, so its windows are suspect: the robust
    pass leaves them out, and a tenth of all 21 windows rounded up (3) with most lines among the
    rest (the three 3s): 14 windows of 2 lines, share 28 / 1400, usual rate 2. With a floor of
    41 nothing is suspect, and the plain pass alone leaves out its 3 busiest windows (8 to 10):
    47 lines in 18 windows of 100."""
    counts = dict.fromkeys(range(21), 2) | dict.fromkeys((1, 16, 19), 3) | dict.fromkeys(
        range(8, 12), 10)
    subject = heavy.user(b"u", array("q", counts), array("q", counts.values()))
    table = heavy.Table.of(dict.fromkeys(range(21), 100))
    at_floor = heavy.user_rate(subject, table, Settings(burst_factor=2.0, burst_min_lines=40))
    assert at_floor == anomalies.UserRate(28 / 1400, 28 / 14)
    above = heavy.user_rate(subject, table, Settings(burst_factor=2.0, burst_min_lines=41))
    assert above == anomalies.UserRate(47 / 1800, 47 / 18)


def test_the_even_median_is_the_mean_of_the_middle_two() -> None:
    assert heavy._median(ints([1, 3, 10, 20]), 4, 1) == (3 + 10) / 2
    assert heavy._median(ints([4, 8]), 4, 1) == (0 + 4) / 2
    assert heavy._median(ints([4, 8, 9]), 3, 1) == 8.0


def test_weighted_median_ratio_on_arrays() -> None:
    """The smallest ratio at or below which the windows hold at least half of the other
    lines: exactly half is enough; windows without other lines weigh nothing."""
    def ratio(pairs: list[tuple[int, int]]) -> float:
        return heavy._weighted_median_ratio(ints([e for e, _ in pairs]), ints([n for _, n in pairs]))

    assert ratio([(1, 100), (2, 100), (50, 100)]) == 2 / 100
    assert ratio([(1, 100), (3, 100)]) == 1 / 100
    assert ratio([(3, 100), (1, 100)]) == 1 / 100
    assert ratio([(0, 10), (0, 10), (0, 10), (1, 1000)]) == 1 / 1000
    assert ratio([(30, 10), (0, 1000), (5, 0)]) == 0.0
    assert ratio([(5, 0)]) == 0.0


@st.composite
def crowd(draw: st.DrawFn) -> dict[Key, int]:
    """User lines of several users over the same windows, some with bursts."""
    lines: dict[Key, int] = {}
    for name in (b"a", b"b", b"c", b"d")[: draw(st.integers(1, 4))]:
        lines.update({(name, w): n for w, n in draw(series(span=40)).items()})
    return lines


@settings(max_examples=200, deadline=None)
@given(user_lines=crowd(), extra=st.lists(st.integers(0, 90), max_size=5),
       knobs=st.sampled_from([KNOBS, OTHER_KNOBS]))
def test_local_medians_dense_and_sparse_agree(user_lines: dict[Key, int], extra: list[int],
                                              knobs: Settings) -> None:
    """The local medians made from a dense table of users x windows (a few windows) and from
    the windows near each user's only (millions of windows) are the same, float for float,
    and so are the rates of every user, judged all at once or one at a time."""
    counted: Counter[int] = Counter()
    for (_, window), n in user_lines.items():
        counted[window] += n
    for w in extra:  # windows without any of these users
        counted[w * 7 + 1000] += 1
    users = columns.Columns.of([user_lines]).users()
    table = heavy.Table.of(counted)
    dense = heavy.user_rates(users, table, knobs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(heavy, "DENSE_CELLS", 1)
        patch.setattr(heavy, "SPARSE_ENTRIES", float("inf"))
        sparse = heavy.user_rates(users, table, knobs)
    assert dense.user.tolist() == sparse.user.tolist()
    assert dense.share.tolist() == sparse.share.tolist()
    assert dense.usual.tolist() == sparse.usual.tolist()
    one_by_one = digest.WindowTable.of(counted)
    for u, share, usual in zip(dense.user.tolist(), dense.share.tolist(), dense.usual.tolist(),
                               strict=True):
        name = users.names[u]
        counts = {w: n for (who, w), n in user_lines.items() if who == name}
        assert digest.user_rate(counts, one_by_one, knobs) == anomalies.UserRate(share, usual)
