"""The compiled kernel against the pure-Python path: for any bytes, cut into any splits and read
in any block size, both mappers give the same Partial (docs/input.md). The kernel reads
untrusted bytes, so the inputs are hostile: NUL bytes, invalid UTF-8, lines of separators only,
CRLF, tabs, lines around 65,536 bytes, stamps cut at block edges, leap days, years 0000 and 9999
and every malformed reason. ``tests/sanitize.sh`` runs this module under ASan and UBSan."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
import strategies
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mapreduce_logs import Partial, Settings, Split, map_split
from mapreduce_logs.cli import main
from mapreduce_logs.ingest import kernel as native
from mapreduce_logs.ingest import scan
from mapreduce_logs.ingest.parse import parse_timestamp
from mapreduce_logs.ingest.split import split_files

pytestmark = pytest.mark.skipif(native.compiled is None, reason="the compiled kernel was not built")

NOON = strategies.NOON


def canonical(parts: tuple[int, bytes, int, int]) -> bytes:
    """A line of the common form, as most real files hold (the kernel's hot path)."""
    second, level, service, user = parts
    return strategies.log_line(NOON + second, level, b"svc%d" % service, b"user%d" % user)


canonical_lines = st.tuples(
    st.integers(-400, 4000), st.sampled_from([b"INFO", b"ERROR", b"WARN", b"DEBUG", b"FATAL"]),
    st.integers(0, 3), st.integers(0, 12),
).map(canonical)

nasty_lines = st.sampled_from([
    b"\x00", b"\x00\x00\x00\x00", b"2025-07-22T12:00:00Z INFO a\x00 u\x00",
    b"\x002025-07-22T12:00:00Z INFO auth u1", b"2025-07-22T12:00:00Z\x00 INFO auth u1",
    b"2025-07-22T12:00:00Z INFO auth \xff\xfe", b"2025-07-22T12:00:00Z INFO \xc3 u",
    b"2025-07-22T12:00:00Z INFO \xed\xa0\x80 u", b"2025-07-22T12:00:00Z INFO \xf4\x90\x80\x80 u",
    b"2025-07-22T12:00:00Z INFO \xf0\x9f\x98\x80 \xe6\x97\xa5",
    b" \t\x0b\x0c\r", b"\r", b"\t\t", b" " * 40, b"\x1c\x1d\x1e\x1f", b"\x85\xa0",
    b"2025-07-22T12:00:00Z INFO auth u1\r", b"2025-07-22T12:00:00Z\tINFO\tauth\tu1\tm",
    b"2024-02-29T23:59:59Z INFO a b", b"2023-02-29T00:00:00Z INFO a b",
    b"2000-02-29T00:00:00Z INFO a b", b"1900-02-29T00:00:00Z INFO a b",
    b"0000-01-01T00:00:00Z INFO a b", b"0000-12-31T23:59:59-00:01 INFO a b",
    b"0001-01-01T00:00:00+00:01 INFO a b", b"0001-01-01T00:00:00-00:01 INFO a b",
    b"9999-12-31T23:59:59.999999999Z INFO a b", b"9999-12-31T23:59:59-00:01 INFO a b",
    b"9999-12-31T23:30:00+23:59 INFO a b", b"1969-12-31T23:59:59.5Z ERROR a b",
    b"2025-07-22T12:00:0", b"2025-07-22T12:00:00Z INFO", b"2025-07-22T12:00:00Z INFO auth",
    b"2025-07-22T12:00:00.1234567890Z INFO a b", b"2025-07-22T12:00:00.Z INFO a b",
    b"2025-07-22T12:00:00+05 INFO a b", b"2025-07-22T12:00:00+0530 INFO a b",
    b"2025-07-22T12:00:00+05:30: INFO a b", b"2025-07-22T12:00:00+24:00 INFO a b",
    b"2025-07-22T12:00:00-23:59 INFO a b", b"2025-07-22T24:00:00Z INFO a b",
    b"2025-13-01T00:00:00Z INFO a b", b"2025-00-10T00:00:00Z INFO a b",
    b"2025-07-22T12:00:00Z info a b", b"2025-07-22T12:00:00Z wArNiNg a b",
    b"2025-07-22T12:00:00Z VERBOSE a b", b"2025-07-22T12:00:00Z \xff a b",
    b"2025-07-22T12:00:00Z INFOS a b", b"2025-07-22T12:00:00Z CRITICALS a b",
    b"2025-07-22t12:00:00z critical a b", b"2025-07-22T12:00:00z NOTICE a b c d e",
])
"""Lines picked for the kernel's edges: bytes it must not trip on, and the grammar's corners."""

mixed_lines = st.one_of(canonical_lines, canonical_lines, canonical_lines, nasty_lines,
                        strategies.lines)


def _file(parts: tuple[list[bytes], int, bool]) -> bytes:
    lines, repeat, final_newline = parts
    return b"\n".join(lines * repeat) + (b"\n" if final_newline and lines else b"")


def contents(line_strategy: st.SearchStrategy[bytes], max_lines: int,
             repeats: tuple[int, ...] = (1, 1, 3, 12)) -> st.SearchStrategy[bytes]:
    """A file's bytes: lines, repeated so that a segment has more than five of a kind (past its
    examples, the kernel counts them itself), with or without a final newline."""
    return st.tuples(st.lists(line_strategy, max_size=max_lines), st.sampled_from(repeats),
                     st.booleans()).map(_file)


def facts(p: Partial) -> dict[str, Any]:
    """Every field of a Partial, Counters as plain dicts (so a zero count is a difference)."""
    return {f.name: dict(v) if isinstance(v := getattr(p, f.name), Counter) else v
            for f in dataclasses.fields(p)}


@contextmanager
def mapper(kernel: str, block: int) -> Iterator[None]:
    with mock.patch.dict(os.environ, {native.ENV: kernel}), mock.patch.object(scan, "BLOCK", block):
        yield


def map_both(content: bytes, knobs: Settings, chunk: int, block: int,
             run: Callable[[Split], list[dict[str, Any]]]) -> None:
    """Write ``content``, cut it into splits of ``chunk`` bytes, map each with both mappers."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "a.log")
        with open(path, "wb") as f:
            f.write(content)
        os.utime(path, ns=(NOON * 10**9, NOON * 10**9 + 120 * 10**9))
        splits = [s for s in split_files([path], chunk) if isinstance(s, Split)]
        results = {}
        for kernel in ("compiled", "python"):
            with mapper(kernel, block):
                results[kernel] = [run(split) for split in splits]
        assert results["compiled"] == results["python"]


knobs = st.builds(
    Settings, window=st.sampled_from([1, 7, 60, 3600, 86_400]),
    clock_skew=st.sampled_from([0, 1, 300, 0.5]),
)
chunks = st.sampled_from([1, 2, 7, 64, 4096, 1 << 25])
blocks = st.sampled_from([1, 2, 7, 19, 20, 64, 4096, 1 << 20])


@settings(max_examples=strategies.examples(300))
@given(content=contents(mixed_lines, 60), knobs=knobs, chunk=chunks, block=blocks,
       future=st.booleans())
@example(content=b"2025-07-22T12:00:00Z INFO a b\n" * 3, knobs=Settings(), chunk=1, block=1,
         future=False)
def test_kernel_equals_python(content: bytes, knobs: Settings, chunk: int, block: int,
                              future: bool) -> None:
    """Any bytes, any split and block size: the same Partial, segments and examples included
    (with ``future_lines``, as watch asks, too)."""
    map_both(content, knobs, chunk, block,
             lambda split: [facts(map_split(split, knobs, future_lines=future))])


name_bytes = st.lists(st.sampled_from(list(b"abuser019-_.\x00\x01\x08\t\x0b\x1c\x1f !\x7f\x80\xc3\xa9\xff")),
                     max_size=40).map(bytes)
named_lines = st.tuples(st.integers(0, 90), st.sampled_from([b"INFO", b"ERROR"]), name_bytes,
                        name_bytes).map(lambda p: strategies.log_line(NOON + p[0], *p[1:]))
"""Valid-looking lines whose service and user run from 0 to 40 bytes (the hash's and the compare's
tails), with control bytes and spaces anywhere (where the tokenizer reads eight bytes at once)."""


@settings(max_examples=strategies.examples(200))
@given(content=contents(named_lines, 40), block=st.sampled_from([7, 64, 1 << 20]))
def test_kernel_equals_python_on_names(content: bytes, block: int) -> None:
    """Names of any length and byte: the same Partial from both mappers."""
    map_both(content, Settings(), 1 << 25, block, lambda split: [facts(map_split(split, Settings()))])


@settings(max_examples=strategies.examples(25))
@given(seed=st.integers(0, 2**32), users=st.integers(1, 40), spread=st.sampled_from([60, 4 * 3600]))
def test_kernel_equals_python_on_many_hits(seed: int, users: int, spread: int) -> None:
    """Hundreds of lines in one kernel, out of time order and in it: the hits' radix sort (short
    lists take qsort), by id and window, and by id alone when the windows come in order."""
    rng = random.Random(seed)
    lines = [strategies.log_line(NOON + rng.randrange(spread), rng.choice([b"INFO", b"ERROR"]),
                                 b"svc%d" % rng.randrange(3), b"user%d" % rng.randrange(users))
             for _ in range(rng.randrange(300, 1500))]
    for content in (b"\n".join(lines) + b"\n", b"\n".join(sorted(lines)) + b"\n"):
        map_both(content, Settings(), 1 << 25, 1 << 20,
                 lambda split: [facts(map_split(split, Settings()))])


@settings(max_examples=strategies.examples(40))
@given(content=contents(strategies.with_long_lines, 8, (1, 1, 3)), chunk=chunks,
       block=st.sampled_from([1000, 65_535, 65_536, 65_537, 100_000, 1 << 20]))
def test_long_lines_equal(content: bytes, chunk: int, block: int) -> None:
    """Lines of 65,535, 65,536 and 65,537 bytes and longer, across read blocks."""
    map_both(content, Settings(), chunk, block, lambda split: [facts(map_split(split, Settings()))])


@settings(max_examples=strategies.examples(60))
@given(content=contents(mixed_lines, 80), block=st.sampled_from([7, 64, 1 << 20]),
       every=st.sampled_from([1, 50, 500]))
def test_flushed_partials_equal(content: bytes, block: int, every: int) -> None:
    """A split flushed as it is read (a big compressed file) hands over the same counts at every
    flush: the kernel's tables are drained into the Partial before each."""

    def run(split: Split) -> list[dict[str, Any]]:
        shipped: list[dict[str, Any]] = []

        def flush(part: Partial) -> None:
            shipped.append({k: dict(t) for k, t in part.take_tables()._asdict().items()})

        final = map_split(split, Settings(), flush=flush, flush_bytes=every)
        return [*shipped, facts(final)]

    map_both(content, Settings(), 1 << 25, block, run)


@settings(max_examples=strategies.examples(500))
@given(token=strategies.timestamps | st.binary(max_size=40))
@example(token=b"0000-12-31T23:59:59-00:01")
@example(token=b"9999-12-31T23:59:59.999999999Z")
def test_timestamp_grammar_equals_parse(token: bytes) -> None:
    """The kernel's timestamp grammar alone gives parse_timestamp's instant, or none."""
    assert native.compiled is not None
    assert native.compiled.parse_timestamp(token) == parse_timestamp(token)


def test_many_examples_then_counted_natively() -> None:
    """Past five examples of a reason the kernel counts the lines itself: still the same."""
    lines = [b"2025-07-22T12:00:00Z INFO a b"]
    for k in range(40):
        lines += [b"x y", b"bad-stamp INFO a b", b"2025-07-22T12:00:00Z INFO \xff b",
                  strategies.log_line(NOON - 3600 * (k % 3), b"INFO", b"a", b"b"),
                  strategies.log_line(NOON + 10**6, b"INFO", b"a", b"b"), b"", b" \r"]
    content = b"\n".join(lines) + b"\n"
    for chunk in (64, 1 << 25):
        map_both(content, Settings(), chunk, 1 << 20,
                 lambda split: [facts(map_split(split, Settings()))])


@settings(max_examples=strategies.examples(40))
@given(content=contents(mixed_lines, 60, (1, 5, 30)), threshold=st.sampled_from([1, 3, 64]))
def test_compacted_hits_equal(content: bytes, threshold: int) -> None:
    """The (user, window) list compacted (sorted, summed) every few lines: still the same."""
    assert native.compiled is not None
    old = native.compiled.set_compact_threshold(threshold)
    try:
        map_both(content, Settings(window=1), 1 << 25, 1 << 20,
                 lambda split: [facts(map_split(split, Settings(window=1)))])
    finally:
        native.compiled.set_compact_threshold(old)


def test_env_chooses_the_mapper() -> None:
    """MAPREDUCE_LOGS_KERNEL=python forces the pure path; the kernel is used otherwise."""
    split = Split(os.devnull, 0, None, 0)
    with mock.patch.dict(os.environ, {native.ENV: "python"}):
        assert type(scan.scanner_for(split, Settings())) is scan.Scanner
        assert native.name(Settings()) == "python"
    for value in ("compiled", "", "auto"):
        with mock.patch.dict(os.environ, {native.ENV: value}):
            assert type(scan.scanner_for(split, Settings())) is scan.KernelScanner
            assert native.name(Settings()) == "compiled"
    assert not native.applies(Settings(window=native.MAX_WINDOW + 1))
    assert not native.applies(Settings(tz="Europe/Paris"))
    assert not native.applies(Settings(since_ns=0))
    assert not native.applies(Settings(until_ns=0))


def test_compiled_missing_is_a_clear_error() -> None:
    """Insisting on the compiled kernel where it was not built is an error that says so."""
    with mock.patch.object(native, "compiled", None), \
            mock.patch.dict(os.environ, {native.ENV: "compiled"}), \
            pytest.raises(native.KernelUnavailableError, match="not built"):
        native.applies(Settings())


@pytest.mark.parametrize(("buf", "pos", "end"), [
    (b"a\n", 0, 3), (b"a\n", 3, 2), (b"a\n", -1, 2), (b"a\n", 0, -1), (b"ab", 0, 2),
    (b"a\nb", 0, 3),
])
def test_scan_refuses_a_bad_range(buf: bytes, pos: int, end: int) -> None:
    """Positions outside the buffer, or a block not ending in a newline: ValueError, no read."""
    assert native.compiled is not None
    k = native.compiled.Kernel(60, 0, 0)
    with pytest.raises(ValueError, match="newline"):
        k.scan(buf, pos, end, None, 0)


def test_drain_empties_the_kernel() -> None:
    """After drain the counts start again from zero."""
    assert native.compiled is not None
    k = native.compiled.Kernel(60, 0, 0)
    block = b"2025-07-22T12:00:00Z INFO a b\n" * 3
    status, *_ = k.scan(block, 0, len(block), 0, 0)
    assert status == native.compiled.DONE
    first = k.drain()
    assert (first["valid"], first["users"], first["user_lines"]) == (3, {b"b": 3}, {(b"b", 29219760): 3})
    second = k.drain()
    assert (second["lines"], second["users"], second["min_ts"]) == (0, {}, None)


@pytest.mark.parametrize("kernel", ["compiled", "python"])
def test_metrics_say_which_mapper_ran(tmp_path: Any, kernel: str) -> None:
    """metrics.json has "kernel": the mapper MAPREDUCE_LOGS_KERNEL chose; the outputs agree."""
    (tmp_path / "a.log").write_bytes(b"2025-07-22T12:00:00Z INFO auth u1\n")
    out = tmp_path / "out"
    with mock.patch.dict(os.environ, {native.ENV: kernel}):
        assert main(["run", str(tmp_path / "a.log"), "--quiet", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["kernel"] == kernel
    assert json.loads((out / "summary.json").read_text())["user_counts"] == {"u1": 1}


def _scan_all(k: Any, block: bytes) -> None:
    """Scan ``block`` (ending in a newline) whole, with no example wanted."""
    assert native.compiled is not None
    pos, last = 0, None
    while pos < len(block):
        status, _start, stop, _n, ts, last = k.scan(block, pos, len(block), last, 0)
        pos = len(block) if status == native.compiled.DONE else stop + 1
        last = ts if ts is not None else last


def _as_dicts(columns: dict[str, Any]) -> dict[str, Any]:
    """A ``drain(columns=True)`` answer in the terms of ``drain()``."""
    import numpy as np

    from mapreduce_logs.model.names import Names

    out = {k: v for k, v in columns.items()
           if k not in ("user_names", "service_names", "window_errors")}
    listed = {key: list(Names(columns[key][0], np.frombuffer(columns[key][1], np.int64)))
              for key in ("user_names", "service_names")}
    users: Counter[bytes] = Counter()
    services: Counter[bytes] = Counter()
    for table, names, totals in (("user_lines", "user_names", users),
                                 ("user_errors", "user_names", None),
                                 ("service_errors", "service_names", services),
                                 ("service_others", "service_names", services)):
        ids, windows, counts = (np.frombuffer(c, np.int64).tolist() for c in columns[table])
        pairs: Counter[tuple[bytes, int]] = Counter()
        for i, w, n in zip(ids, windows, counts, strict=True):
            assert n > 0
            pairs[(listed[names][i], w)] += n
            if totals is not None:
                totals[listed[names][i]] += n
        out[table] = dict(pairs)
    out["users"], out["services"] = dict(users), dict(services)
    return out


@settings(max_examples=strategies.examples(200))
@given(content=contents(mixed_lines, 60), window=st.sampled_from([1, 60, 86_400]),
       compact=st.sampled_from([1, 3, 1 << 20]))
def test_columns_hold_what_the_dicts_hold(content: bytes, window: int, compact: int) -> None:
    """drain(columns=True) gives the same counts as drain(), as names and int64 columns, each
    (user, window) once, plus the error lines per window."""
    assert native.compiled is not None
    block = content if content.endswith(b"\n") or not content else content + b"\n"
    previous = native.compiled.set_compact_threshold(compact)
    try:
        one = native.compiled.Kernel(window, 1 << 80, 0)
        two = native.compiled.Kernel(window, 1 << 80, 0)
        _scan_all(one, block)
        _scan_all(two, block)
        dicts, columns = one.drain(), two.drain(True)
    finally:
        native.compiled.set_compact_threshold(previous)
    assert _as_dicts(columns) == dicts
    errors: Counter[int] = Counter()
    for (_, w), n in dicts["service_errors"].items():
        errors[w] += n
    assert columns["window_errors"] == dict(errors)
    import numpy as np

    ids, windows, _ = (np.frombuffer(c, np.int64) for c in columns["user_lines"])
    assert len(set(zip(ids.tolist(), windows.tolist(), strict=True))) == len(ids)
    assert two.drain(True)["user_names"] == (b"", b"")
