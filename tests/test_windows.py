"""windows: lines per window as sorted arrays read the same as the dict they replace."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce_logs import Settings
from mapreduce_logs.anomalies import WindowTable, user_rate
from mapreduce_logs.windows import WindowLines, load, merged, run_of, save, with_more

KNOBS = Settings(workers=1)
window_counts = st.dictionaries(st.integers(-10**12, 10**12), st.integers(1, 50), min_size=1,
                                max_size=60)


@given(window_counts, st.lists(st.integers(1, 9), min_size=1, max_size=60))
@settings(max_examples=150, deadline=None)
def test_a_window_table_of_sorted_arrays_is_the_table_of_the_dict(
    lines: dict[int, int], mine: list[int]
) -> None:
    """WindowTable.of and every user's rate read the same from a WindowLines as from a dict,
    and ``merged`` sums runs into exactly the dict's counts."""
    items = sorted(lines.items())
    half = len(items) // 2
    compact = merged([run_of(dict(items[:half])), run_of(dict(items[half:])),
                      run_of(dict(items[:1]))])
    first_key, first_n = items[0]
    want = {**lines, first_key: first_n * 2}
    assert dict(compact.items()) == want
    a, b = WindowTable.of(want), WindowTable.of(compact)
    assert (a.all_lines, a.drop, list(a.order), list(a.first), list(a.end)) == (
        b.all_lines, b.drop, list(b.order), list(b.first), list(b.end))
    counts = {w: min(n, want[w]) for w, n in zip(sorted(want), mine, strict=False)}
    assert user_rate(counts, a, KNOBS) == user_rate(counts, b, KNOBS)


@given(window_counts, window_counts)
@settings(max_examples=60, deadline=None)
def test_saved_windows_map_back_and_more_adds_up(
    tmp_path_factory: pytest.TempPathFactory, base: dict[int, int], more: dict[int, int]
) -> None:
    """``save`` then ``load`` (a mapped file) gives the same mapping, lookups and misses
    included; ``with_more`` is the sum of the base and the rest."""
    folder = tmp_path_factory.mktemp("w")
    path = str(folder / "windows.bin")
    save(path, merged([run_of(base)]))
    loaded = load(path)
    assert isinstance(loaded, WindowLines)
    assert dict(loaded.items()) == base and len(loaded) == len(base)
    assert all(loaded[w] == n for w, n in base.items())
    assert all(loaded.get(w) is None for w in more if w not in base)
    total = dict(base)
    for w, n in more.items():
        total[w] = total.get(w, 0) + n
    assert dict(with_more(loaded, more).items()) == total
    assert with_more(None, more) is more and with_more(loaded, {}) is loaded
