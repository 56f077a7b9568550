"""Names (byte strings end to end): the compiled helpers against plain Python, and bad input."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapreduce_logs.model import names as module
from mapreduce_logs.model.names import Names

compiled = module.compiled
needs_compiled = pytest.mark.skipif(compiled is None, reason="the compiled helpers were not built")

# Few distinct strings among many (so numbering finds repeats), empty ones, NUL bytes, invalid
# UTF-8, long ones, and lengths around 8 (the hash reads 8 bytes at a time).
strings = st.lists(
    st.one_of(st.sampled_from([b"", b"a", b"user1", b"\x00", b"\xff\xfe", b"x" * 8, b"x" * 9]),
              st.binary(max_size=40)),
    max_size=60)


def plain_numbered(items: list[bytes]) -> tuple[list[bytes], list[int]]:
    first: dict[bytes, int] = {}
    index = [first.setdefault(s, len(first)) for s in items]
    return list(first), index


@given(items=strings)
def test_a_list_of_strings_reads_back_the_same(items: list[bytes]) -> None:
    names = Names.of(items)
    assert len(names) == len(items)
    assert list(names) == items
    assert [names[i] for i in range(len(items))] == items
    assert names == items
    assert pickle.loads(pickle.dumps(names)) == items
    for a, b in [(0, len(items)), (1, 3), (len(items) // 2, len(items))]:
        assert list(names[a:b]) == items[a:b]


@given(parts=st.lists(strings, max_size=5))
def test_joined_names_are_the_parts_one_after_another(parts: list[list[bytes]]) -> None:
    joined = Names.join([Names.of(p) for p in parts]) if parts else Names()
    assert list(joined) == [s for p in parts for s in p]


@pytest.mark.parametrize("kind", ["compiled", "python"])
@given(items=strings, data=st.data())
def test_crc32_take_and_numbering_match_plain_python(kind: str, items: list[bytes],
                                                     data: st.DataObject) -> None:
    if kind == "compiled" and compiled is None:
        pytest.skip("the compiled helpers were not built")
    saved = module.compiled
    module.compiled = compiled if kind == "compiled" else None
    try:
        names = Names.of(items)
        assert names.crc32().tolist() == [zlib.crc32(s) for s in items]
        order = data.draw(st.lists(st.integers(0, max(0, len(items) - 1)),
                                   max_size=2 * len(items) if items else 0))
        assert list(names.take(np.array(order, dtype=np.int64))) == [items[i] for i in order]
        distinct, index = names.numbered()
        want_distinct, want_index = plain_numbered(items)
        assert list(distinct) == want_distinct
        assert index.tolist() == want_index
    finally:
        module.compiled = saved


@needs_compiled
def test_numbering_tells_apart_strings_that_share_a_hash_prefix() -> None:
    # Many strings differing in one byte past the first eight, and one repeated: every one is
    # compared on its bytes, not only its hash.
    items = [b"prefix--" + bytes([i]) for i in range(256)] * 2 + [b"prefix--"]
    distinct, index = Names.of(items).numbered()
    assert list(distinct) == [*items[:256], b"prefix--"]
    assert index.tolist() == list(range(256)) * 2 + [256]


@needs_compiled
@pytest.mark.parametrize("ends", [
    [5, 3],      # not ascending
    [-1],        # before the blob
    [100],       # past the blob
])
def test_bad_offsets_are_refused_before_any_byte_is_read(ends: list[int]) -> None:
    assert compiled is not None
    blob, e = b"abcdef", np.array(ends, dtype=np.int64)
    for call in (lambda: compiled.crc32s(blob, e), lambda: compiled.number(blob, e),
                 lambda: compiled.take(blob, e, np.zeros(1, dtype=np.int64))):
        with pytest.raises(ValueError, match="ends"):
            call()


@needs_compiled
def test_bad_indexes_and_buffers_are_refused() -> None:
    assert compiled is not None
    blob, ends = b"abcdef", np.array([2, 6], dtype=np.int64)
    for order in ([2], [-1], [1 << 40]):
        with pytest.raises(IndexError):
            compiled.take(blob, ends, np.array(order, dtype=np.int64))
    with pytest.raises(ValueError, match="int64"):
        compiled.take(blob, ends, b"\x00" * 7)
    with pytest.raises(ValueError, match="int64"):
        compiled.number(blob, b"\x00" * 9)


def test_the_pure_path_is_chosen_by_the_variable() -> None:
    code = "import mapreduce_logs.model.names as n; print(n.compiled is None)"
    for value, pure in (("python", "True"), ("", str(compiled is None))):
        env = {**os.environ, "MAPREDUCE_LOGS_KERNEL": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == pure
