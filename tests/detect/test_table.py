"""The window table of the array rules: lookups in any order, mapped or not, and its searches
kept to the stretch they need."""

from __future__ import annotations

from array import array

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce_logs.detect import arrays
from mapreduce_logs.detect.arrays import Table
from mapreduce_logs.model.windows import WindowLines, load, merged, run_of, save


class _Mapped(WindowLines):
    def __init__(self) -> None:
        super().__init__(array("q"), array("q"))


window_sets = st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=200, unique=True)


@given(windows=window_sets, keys=st.lists(st.integers(-10**6 - 5, 10**6 + 5), max_size=80),
       side=st.sampled_from(["left", "right"]))
def test_a_search_between_the_first_and_last_key_is_numpys(windows: list[int], keys: list[int],
                                                           side: str) -> None:
    order = np.array(sorted(windows), dtype=np.int64)
    table = Table(order, np.ones(len(order), dtype=np.int64), len(order), 0, {})
    table.source = _Mapped()  # searched as mapped windows are (their keys ascending)
    ascending = np.array(sorted(keys), dtype=np.int64)
    want = np.searchsorted(order, ascending, side)  # type: ignore[call-overload]
    assert table._search(ascending, side).tolist() == want.tolist()


@settings(max_examples=40, deadline=None)
@given(lines=st.dictionaries(st.integers(-10**5, 10**5), st.integers(1, 99), min_size=1,
                             max_size=300),
       data=st.data())
def test_lookups_in_any_order_read_the_same_mapped_or_not(
    tmp_path_factory: pytest.TempPathFactory, lines: dict[int, int], data: st.DataObject
) -> None:
    """Windows looked up in any order (a partition's users one after another) give the same
    positions, lines and neighbourhoods from the mapped file as from the dict, a stretch at a
    time or all at once."""
    path = str(tmp_path_factory.mktemp("t") / "windows.bin")
    save(path, merged([run_of(lines)]))
    mapped, plain = Table.of(load(path)), Table.of(lines)
    order = sorted(lines)
    picked = data.draw(st.lists(st.sampled_from(order), max_size=120))
    w = np.array(picked, dtype=np.int64)
    positions = np.array([order.index(x) for x in picked], dtype=np.int64)
    for stretch in (1, 3, 1 << 16):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(arrays, "STRETCH", stretch)
            for table in (mapped, plain):
                pos, got = table.find(w)
                assert pos.tolist() == positions.tolist()
                assert got.tolist() == [lines[x] for x in picked]
                for side in (-1, 1):
                    want = [np.searchsorted(np.array(order), order[p] + side * 2,
                                            "left" if side < 0 else "right") for p in positions]
                    assert table.edges(positions, side).tolist() == [int(x) for x in want]
    assert mapped.all_lines == plain.all_lines == sum(lines.values())
