"""windows: lines per window as sorted arrays read the same as the dict they replace."""

from __future__ import annotations

import mmap
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce_logs import Settings
from mapreduce_logs.detect.digest import WindowTable, user_rate
from mapreduce_logs.model import windows
from mapreduce_logs.model.windows import WindowLines, load, merged, run_of, save, with_more

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
    assert (a.all_lines, a.drop, list(a.order)) == (b.all_lines, b.drop, list(b.order))
    assert (a.arrays.order.tolist(), a.arrays.lines.tolist(), a.arrays.all_lines) == (
        b.arrays.order.tolist(), b.arrays.lines.tolist(), b.arrays.all_lines)
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


@given(runs=st.lists(st.dictionaries(st.integers(-10**6, 10**6), st.integers(1, 10**9),
                                     max_size=40), max_size=6))
@settings(max_examples=60, deadline=None)
def test_run_files_merge_into_the_sum(tmp_path_factory: pytest.TempPathFactory,
                                      runs: list[dict[int, int]]) -> None:
    """``merge_files`` streams runs saved to files (a block at a time, here 3 windows) into one
    file of their sums, and removes them."""
    folder = tmp_path_factory.mktemp("m")
    paths = []
    for i, run in enumerate(runs):
        paths.append(str(folder / f"{i}.run"))
        save(paths[-1], run)
    total: dict[int, int] = {}
    for run in runs:
        for w, n in run.items():
            total[w] = total.get(w, 0) + n
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows, "BLOCK", 3)
        windows.merge_files(paths, str(folder / "out.bin"))
    merged_back = load(str(folder / "out.bin"))
    assert list(merged_back.items()) == sorted(total.items())
    assert sorted(os.listdir(folder)) == ["out.bin"]


def test_mapped_pages_are_let_go_every_so_many_lookups(tmp_path: Any) -> None:
    """Lookups in a mapped file release the pages they touched every RELEASE_EVERY lookups,
    and release() leaves every answer as it was."""
    path = str(tmp_path / "windows.bin")
    base = {w * 7: w + 1 for w in range(1000)}
    save(path, base)
    loaded = load(path)
    calls = []

    class Recorder:
        def madvise(self, option: int) -> None:
            calls.append(option)

    mapped = loaded._mapped
    loaded._mapped = Recorder()  # type: ignore[assignment]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows, "RELEASE_EVERY", 10)
        assert all(loaded[w] == n for w, n in base.items())
    assert len(calls) == 100 and set(calls) == {mmap.MADV_DONTNEED}
    loaded._mapped = mapped
    loaded.release()
    assert all(loaded[w] == n for w, n in base.items())


@given(base=window_counts, pick=st.lists(st.integers(0, 59), max_size=30))
@settings(max_examples=60, deadline=None)
def test_lines_at_reads_blocks_of_a_mapped_file_as_lookups_do(
    tmp_path_factory: pytest.TempPathFactory, base: dict[int, int], pick: list[int]
) -> None:
    """``lines_at`` gives what one lookup each gives, from a dict or a mapped file read a block
    (here 2 windows) at a time."""
    keys = sorted(base)
    wanted = sorted({keys[i % len(keys)] for i in pick})
    path = str(tmp_path_factory.mktemp("l") / "windows.bin")
    save(path, base)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows, "LOOKUP_BLOCK", 2)
        assert windows.lines_at(load(path), wanted) == [base[w] for w in wanted]
    assert windows.lines_at(base, wanted) == [base[w] for w in wanted]
