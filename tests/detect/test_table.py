"""The window table of the array rules: lookups in any order, mapped or not, a stretch of the
file at a time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce_logs.detect import table as table_module
from mapreduce_logs.detect.table import Table
from mapreduce_logs.model.windows import load, merged, run_of, save

# Scattered windows, and every window of a range (the table's no-search path).
window_lines = st.one_of(
    st.dictionaries(st.integers(-10**5, 10**5), st.integers(1, 99), min_size=1, max_size=300),
    st.tuples(st.integers(-100, 100), st.lists(st.integers(1, 99), min_size=1, max_size=300)).map(
        lambda t: {t[0] + i: n for i, n in enumerate(t[1])}))


@settings(max_examples=40, deadline=None)
@given(lines=window_lines, data=st.data())
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
            patch.setattr(table_module, "STRETCH", stretch)
            for table in (mapped, plain):
                pos, got = table.find(w)
                assert pos.tolist() == positions.tolist()
                assert got.tolist() == [lines[x] for x in picked]
                for side in (-1, 1):
                    want = [np.searchsorted(np.array(order), order[p] + side * 2,
                                            "left" if side < 0 else "right") for p in positions]
                    assert table.edges(positions, side).tolist() == [int(x) for x in want]
    assert mapped.all_lines == plain.all_lines == sum(lines.values())
