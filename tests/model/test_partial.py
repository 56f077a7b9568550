"""The laws of ``merge`` (associative, commutative, ``Partial()`` the identity), on real
partials: random files cut at random line boundaries, each piece mapped by ``map_split``, so the
segments, line numbers, examples and counters are the ones a run really merges."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import strategies
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce_logs import (
    Partial,
    SerialExecutor,
    Settings,
    Split,
    build_anomalies,
    build_summary,
    map_split,
    merge,
    run_files,
    split_file,
    to_json,
)

KNOBS = Settings()

pytestmark = pytest.mark.usefixtures("each_kernel")

piece_files = st.lists(
    st.builds(
        strategies.LogFile,
        name=st.sampled_from(["a.log", "b.log", "c.log.gz"]),
        lines=st.lists(strategies.lines, min_size=3, max_size=14).map(tuple),
        final_newline=st.booleans(),
        mtime_ns=strategies.mtimes,
    ),
    min_size=1, max_size=2, unique_by=lambda f: f.name,
)
"""One or two files of at least three lines (one may be gzip, which is never cut)."""


def boundaries(content: bytes) -> list[int]:
    """Offsets just after each newline, inside the file: where a split may start."""
    return [i + 1 for i, byte in enumerate(content) if byte == 10 and i + 1 < len(content)]


@contextmanager
def pieces(files: list[strategies.LogFile], data: st.DataObject,
           knobs: Settings = KNOBS) -> Iterator[tuple[list[str], list[Partial]]]:
    """Write ``files``, cut them at drawn line boundaries, map every piece."""
    with tempfile.TemporaryDirectory() as folder:
        strategies.write_run(folder, files)
        paths, partials = [], []
        for f in files:
            path = os.path.join(folder, f.name)
            paths.append(path)
            mtime = os.stat(path).st_mtime_ns
            if f.name.endswith(".gz"):
                partials.append(map_split(Split(path, 0, None, mtime), knobs))
                continue
            content = f.content
            inner = boundaries(content)
            cuts = sorted(data.draw(st.sets(st.sampled_from(inner), min_size=min(2, len(inner)))
                                    if inner else st.just(set[int]())))
            edges = [0, *cuts, len(content)]
            for start, end in itertools.pairwise(edges):
                partials.append(map_split(Split(path, start, end, mtime), knobs))
        yield sorted(paths), partials


def canonical(p: Partial) -> dict[str, Any]:
    """Everything a Partial holds, with empty segments and zero counts dropped."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(p):
        value = getattr(p, f.name)
        if f.name == "segments":
            value = {
                source: [dataclasses.astuple(s) for s in segs if s.start != s.end]
                for source, segs in sorted(value.items())
            }
            value = {source: segs for source, segs in value.items() if segs}
        elif isinstance(value, Counter):
            value = {k: n for k, n in value.items() if n}
        out[f.name] = value
    return out


def documents(p: Partial, knobs: Settings = KNOBS) -> tuple[bytes, bytes]:
    return to_json(build_summary(p, knobs)), to_json(build_anomalies(p, knobs))


def assert_equal(x: Partial, y: Partial, knobs: Settings = KNOBS) -> None:
    assert canonical(x) == canonical(y)
    assert documents(x, knobs) == documents(y, knobs)


def three(partials: list[Partial], data: st.DataObject, knobs: Settings = KNOBS
          ) -> tuple[Partial, Partial, Partial]:
    """Three distinct pieces (an empty partial stands in when there are fewer)."""
    order = data.draw(st.permutations(range(len(partials))))
    chosen = [partials[i] for i in order[:3]]
    while len(chosen) < 3:
        chosen.append(Partial(clock_skew_ns=knobs.clock_skew_ns))
    return chosen[0], chosen[1], chosen[2]


@settings(max_examples=strategies.examples(150))
@given(files=piece_files, data=st.data())
def test_merge_is_associative(files: list[strategies.LogFile], data: st.DataObject) -> None:
    """merge(merge(a, b), c) == merge(a, merge(b, c))."""
    with pieces(files, data) as (_, partials):
        a, b, c = three(partials, data)
        assert_equal(merge(merge(a, b), c), merge(a, merge(b, c)))


@settings(max_examples=strategies.examples(150))
@given(files=piece_files, data=st.data())
def test_merge_is_commutative(files: list[strategies.LogFile], data: st.DataObject) -> None:
    """merge(a, b) == merge(b, a), and neither argument changes."""
    with pieces(files, data) as (_, partials):
        a, b, _ = three(partials, data)
        before = canonical(a), canonical(b)
        assert_equal(merge(a, b), merge(b, a))
        assert (canonical(a), canonical(b)) == before


@settings(max_examples=strategies.examples(60))
@given(files=piece_files, data=st.data())
def test_empty_partial_is_the_identity(files: list[strategies.LogFile],
                                       data: st.DataObject) -> None:
    """merge(Partial(), a) == a == merge(a, Partial()) (default settings)."""
    with pieces(files, data) as (_, partials):
        a, _, _ = three(partials, data)
        assert_equal(merge(Partial(), a), a)
        assert_equal(merge(a, Partial()), a)
        assert_equal(merge(Partial(), Partial()), Partial())


@settings(max_examples=strategies.examples(60))
@given(files=piece_files, data=st.data(), skew=st.sampled_from([0, 1, 60, 3600]))
def test_any_order_gives_the_run(files: list[strategies.LogFile], data: st.DataObject,
                                 skew: int) -> None:
    """Folding all the pieces in any order, into an empty partial of the run's settings, gives
    exactly what run_files gives for the same files."""
    knobs = Settings(clock_skew=skew)
    with pieces(files, data, knobs) as (paths, partials):
        order = data.draw(st.permutations(range(len(partials))))
        shuffled = [partials[i] for i in order]
        folded = functools.reduce(merge, shuffled, Partial(clock_skew_ns=knobs.clock_skew_ns))
        expected = run_files(paths, knobs, SerialExecutor())
        assert documents(folded, knobs) == documents(expected, knobs)
        tree = _tree_merge(shuffled, data) if shuffled else folded
        assert documents(merge(Partial(clock_skew_ns=knobs.clock_skew_ns), tree), knobs) == \
            documents(expected, knobs)


def _tree_merge(items: list[Partial], data: st.DataObject) -> Partial:
    """Merge in a random binary tree shape."""
    if len(items) == 1:
        return items[0]
    cut = data.draw(st.integers(1, len(items) - 1))
    return merge(_tree_merge(items[:cut], data), _tree_merge(items[cut:], data))


def test_empty_partial_is_the_identity_with_another_clock_skew() -> None:
    """With --clock-skew 60, two pieces of one file 120 s apart backwards must count one
    time_went_backwards whether or not an empty Partial() was merged in first."""
    knobs = Settings(clock_skew=60)
    content = b"2025-07-22T12:10:00Z INFO a u\n2025-07-22T12:08:00Z INFO a u\n"
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "a.log")
        with open(path, "wb") as f:
            f.write(content)
        mtime = os.stat(path).st_mtime_ns
        a = map_split(Split(path, 0, 30, mtime), knobs)
        b = map_split(Split(path, 30, 60, mtime), knobs)
        assert documents(merge(a, b), knobs)[1].count(b'"time_went_backwards": 1') == 1
        assert documents(merge(merge(Partial(), a), b), knobs) == documents(merge(a, b), knobs)


def test_a_file_failing_twice_keeps_one_reason_whatever_the_order() -> None:
    """Two splits of one file failing for different reasons: the merge keeps the smaller
    reason, so the outputs do not depend on which worker finished first."""
    for first, second in (("No such file", "Permission denied"),
                          ("Permission denied", "No such file")):
        merged = Partial(failures={"a.log": first}).update(Partial(failures={"a.log": second}))
        assert merged.failures == {"a.log": "No such file"}


def test_a_segment_keeps_at_most_five_examples_of_each_kind(tmp_path: Any) -> None:
    """Joined a line at a time, a file of eight malformed lines keeps the first five examples
    of its reason (the report shows five: more would only cost memory in every segment)."""
    path = os.path.join(str(tmp_path), "a.log")
    with open(path, "wb") as f:
        f.write(b"".join(b"bad %d\n" % i for i in range(8)))
    total = Partial()
    for split in split_file(path, 1):
        total.update(map_split(split, Settings()))
    (segment,) = total.segments[(path, 0)]
    assert segment.malformed_examples["too_few_fields"] == [(i, f"bad {i}") for i in range(5)]
