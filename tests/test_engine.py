"""The batch engine against the oracle: same files in, the same summary.json and anomalies.json
bytes out, for every worker count and chunk size (docs/outputs.md)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import reference
import strategies
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mapreduce_logs import (
    Executor,
    PoolExecutor,
    SerialExecutor,
    Settings,
    Split,
    build_anomalies,
    build_summary,
    discover,
    map_split,
    run_files,
    to_json,
)
from mapreduce_logs.ingest import scan
from mapreduce_logs.report.html import page_data

DEFAULT_CHUNK = Settings().chunk_size
CHUNK_SIZES = [1, 2, 7, 64, 4096, DEFAULT_CHUNK]


def engine_documents(files: list[str], knobs: Settings, executor: Executor) -> tuple[bytes, bytes]:
    return engine_outputs(files, knobs, executor)[0]


def engine_outputs(files: list[str], knobs: Settings, executor: Executor
                   ) -> tuple[tuple[bytes, bytes], tuple[dict[str, int] | None, ...]]:
    """Both documents, and the error lines of the top services and users report.html shows."""
    partial = run_files(files, knobs, executor)
    summary, anomalies = build_summary(partial, knobs), build_anomalies(partial, knobs)
    page = page_data(partial, summary, anomalies, knobs.window)
    return (to_json(summary), to_json(anomalies)), (page.service_errors, page.user_errors)


def assert_same(got: tuple[bytes, bytes], expected: tuple[bytes, bytes], what: str) -> None:
    """Line by line first, for a readable diff, then byte for byte."""
    for name, g, e in zip(("summary.json", "anomalies.json"), got, expected, strict=True):
        assert g.decode().splitlines() == e.decode().splitlines(), f"{name}, {what}"
        assert g == e, f"{name}, {what}"


def options_of(knobs: Settings) -> reference.Options:
    return reference.Options(
        top=knobs.top, peak_hours=knobs.peak_hours, window=knobs.window,
        clock_skew=knobs.clock_skew, spike_factor=knobs.spike_factor,
        spike_min_errors=knobs.spike_min_errors, burst_factor=knobs.burst_factor,
        burst_min_lines=knobs.burst_min_lines,
    )


def check_run(files: list[strategies.LogFile], knobs: Settings, executor: Executor,
              chunk_sizes: list[int]) -> tuple[bytes, bytes]:
    """Write ``files``, then compare discovery and both documents with the oracle."""
    with tempfile.TemporaryDirectory() as folder:
        strategies.write_run(folder, files)
        listed = reference.list_folder(folder)
        assert discover([folder]) == listed
        options = options_of(knobs)
        expected = reference.documents(listed, options)
        errors = reference.top_errors(reference.tally(listed, options), options)
        for chunk in chunk_sizes:
            tuned = dataclasses.replace(knobs, chunk_size=chunk)
            documents, got_errors = engine_outputs(listed, tuned, executor)
            assert_same(documents, expected, f"chunk size {chunk}")
            assert got_errors == errors, f"top errors, chunk size {chunk}"
    return expected


pytestmark = pytest.mark.usefixtures("each_kernel")


@pytest.fixture(scope="module")
def pools(each_kernel: str) -> Iterator[dict[int, PoolExecutor]]:
    with PoolExecutor(2) as two, PoolExecutor(3) as three:
        yield {2: two, 3: three}


@settings(max_examples=strategies.examples(300))
@given(files=strategies.runs())
def test_serial_engine_equals_oracle(files: list[strategies.LogFile]) -> None:
    """For hostile files, one worker and every chunk size give the oracle's bytes."""
    check_run(files, Settings(), SerialExecutor(), CHUNK_SIZES)


@settings(max_examples=strategies.examples(25))
@given(files=strategies.runs(strategies.with_long_lines, max_files=3, max_lines=8))
def test_long_lines_equal_oracle(files: list[strategies.LogFile]) -> None:
    """Lines around 65,536 bytes and giant blank lines, with every chunk size."""
    check_run(files, Settings(), SerialExecutor(), CHUNK_SIZES)


@settings(max_examples=strategies.examples(50))
@given(
    files=strategies.runs(strategies.with_long_lines, max_lines=12),
    workers=st.sampled_from([2, 3]),
    chunk=st.sampled_from(CHUNK_SIZES),
)
def test_pool_engine_equals_oracle(
    pools: dict[int, PoolExecutor], files: list[strategies.LogFile], workers: int, chunk: int
) -> None:
    """Two or three worker processes give the oracle's bytes too."""
    check_run(files, Settings(workers=workers), pools[workers], [chunk])


small_knobs = st.builds(
    Settings,
    top=st.integers(0, 3),
    peak_hours=st.integers(0, 3),
    window=st.sampled_from([1, 7, 60, 3600]),
    clock_skew=st.sampled_from([0, 1, 59, 300, 3600]),
    spike_factor=st.sampled_from([1.0, 1.5, 3.0]),
    spike_min_errors=st.integers(1, 3),
    burst_factor=st.sampled_from([1.0, 2.5]),
    burst_min_lines=st.integers(1, 3),
)
"""Small --top, --peak-hours, --window, --clock-skew and detector thresholds that fire often."""


@settings(max_examples=strategies.examples(200))
@given(files=strategies.runs(), knobs=small_knobs)
def test_small_options_equal_oracle(files: list[strategies.LogFile], knobs: Settings) -> None:
    """With small options (ties cut by --top, windows of 1 s, no clock skew), still the same."""
    check_run(files, knobs, SerialExecutor(), [1, 7, DEFAULT_CHUNK])


def _traffic_files(t: strategies.Traffic) -> list[strategies.LogFile]:
    lines = strategies.traffic_lines(t)
    half = len(lines) // 2
    mtime = strategies.NOON * 1_000_000_000
    return [
        strategies.LogFile("a.log", tuple(lines[:half]), True, mtime),
        strategies.LogFile("b.log.gz", tuple(lines[half:]), False, mtime),
    ]


@settings(max_examples=strategies.examples(25))
@given(t=strategies.traffic)
@example(t=strategies.Traffic(windows=4, window=10, services=((8, 1), (12, 0), (9, 1)), users=3,
                              spike_service=0, spike_window=1, spike_errors=52, burst_window=0,
                              start=strategies.NOON + 7))
def test_detectors_fire_and_equal_oracle(t: strategies.Traffic) -> None:
    """Steady traffic with one service's errors spiking and one user bursting: the engine
    reports the same error_spike and user_burst anomalies as the oracle, and there are some."""
    knobs = Settings(window=t.window)
    _, anomalies = check_run(_traffic_files(t), knobs, SerialExecutor(), [64, DEFAULT_CHUNK])
    text = anomalies.decode()
    assert '"error_spike": 0' not in text
    assert '"user_burst": 0' not in text
    assert '"service": "svc' in text
    assert '"user": "spammer"' in text


@settings(max_examples=strategies.examples(4))
@given(t=strategies.traffic, workers=st.sampled_from([2, 3]))
def test_detectors_with_pool(pools: dict[int, PoolExecutor], t: strategies.Traffic,
                             workers: int) -> None:
    """The window detectors see the same totals when the work is spread over processes."""
    check_run(_traffic_files(t), Settings(window=t.window, workers=workers), pools[workers],
              [256])


@pytest.mark.parametrize("burst", [15, 300])
def test_dominant_user_burst(burst: int) -> None:
    """One user writes every line but one: its share is capped at 0.99, so its expectation is its
    own usual rate (2 lines a window); 300 lines in a window is a burst, 15 is under the 20-line
    floor."""
    minute = strategies.NOON // 60 * 60
    lines = []
    for w in range(5):
        lines += [strategies.log_line(minute + 60 * w + k, b"INFO", b"svc", b"A") for k in range(2)]
    lines += [strategies.log_line(minute + 300 + k % 60, b"INFO", b"svc", b"A") for k in range(burst)]
    lines.append(strategies.log_line(minute + 359, b"INFO", b"svc", b"B"))
    files = [strategies.LogFile("a.log", tuple(lines), True, strategies.NOON * 10**9)]
    _, anomalies = check_run(files, Settings(), SerialExecutor(), [4096])
    fired = '"user": "A"' in anomalies.decode()
    assert fired == (burst == 300)
    if fired:
        assert '"baseline": 2.0' in anomalies.decode()


@settings(max_examples=strategies.examples(40))
@given(files=strategies.runs(max_files=2, max_lines=12), block=st.sampled_from([1, 2, 7, 100]))
def test_tiny_read_blocks_equal_oracle(files: list[strategies.LogFile], block: int) -> None:
    """Reading a split a few bytes at a time (as a 1 MiB block cuts a big file) changes nothing:
    lines carried across reads are counted once, where they belong."""
    with mock.patch.object(scan, "BLOCK", block):
        check_run(files, Settings(), SerialExecutor(), [1, 64, DEFAULT_CHUNK])


@settings(max_examples=strategies.examples(25))
@given(files=strategies.runs(strategies.with_long_lines, max_files=2, max_lines=6),
       block=st.sampled_from([1000, 4097, 65_535, 65_536, 65_537, 65_538, 100_000]))
def test_long_lines_across_read_blocks_equal_oracle(files: list[strategies.LogFile],
                                                    block: int) -> None:
    """A line over 65,536 bytes that spans reads is streamed, never held whole, and still
    counted as too_long (or blank, when it is whitespace only) with the right example."""
    with mock.patch.object(scan, "BLOCK", block):
        check_run(files, Settings(), SerialExecutor(), [7, DEFAULT_CHUNK])


def test_big_file_with_giant_lines_equals_oracle() -> None:
    """A few MiB, so real 1 MiB reads cut lines: giant lines, blank giants, lines at the edges."""
    mib = 1 << 20
    valid = strategies.log_line(strategies.NOON, b"INFO", b"auth", b"u1")
    parts = [valid + b"\n"] * 1000
    size = sum(map(len, parts))
    parts.append(b"x" * (mib - size - 10) + b"\n")  # ends 9 bytes before the first read's end
    parts.append(b"2025-07-22T12:00:00Z INFO a u " + b"m" * (3 * mib) + b"\n")  # spans 4 reads
    parts.append(b" " * (2 * mib) + b"\r\n")  # a blank giant
    parts.append(valid + b" " + b"m" * (65_536 - len(valid) - 1) + b"\n")  # exactly the limit
    parts.append(b"\t" * 70_000 + b"x\n")  # whitespace, then one byte: too_long
    parts.append(valid)  # no final newline
    content = b"".join(parts)
    files = [strategies.LogFile("big.log", tuple(content.split(b"\n")), False, 0)]
    assert files[0].content == content
    _, anomalies = check_run(files, Settings(), SerialExecutor(), [mib // 3, DEFAULT_CHUNK])
    assert b'"reason": "too_long"' in anomalies


@pytest.mark.parametrize("fill", [b"x", b" "])
def test_giant_line_is_streamed(tmp_path: Path, fill: bytes) -> None:
    """A 48 MiB line is never held whole: the mapper's Python allocations stay a few MiB, and
    the line is too_long (or blank, when it is whitespace only)."""
    path = tmp_path / "giant.log"
    valid = strategies.log_line(strategies.NOON, b"INFO", b"auth", b"u1")
    with open(path, "wb") as f:
        f.write(valid + b"\n")
        for _ in range(48):
            f.write(fill * (1 << 20))
        f.write(b"\n" + valid + b"\n")
    size = path.stat().st_size
    split = Split(str(path), 0, size, path.stat().st_mtime_ns)
    tracemalloc.start()
    try:
        partial = map_split(split, Settings())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * (1 << 20), f"peak {peak / (1 << 20):.1f} MiB"
    assert (partial.lines, partial.valid, partial.bytes_read) == (3, 2, size)
    assert partial.malformed["too_long"] == (1 if fill == b"x" else 0)
    assert partial.blank == (1 if fill == b" " else 0)


def _steady_run(lines: list[bytes]) -> dict[str, int]:
    """The anomaly counts of a run over ``lines``, after checking the engine equals the oracle."""
    files = [strategies.LogFile("steady.log", tuple(lines), True, strategies.NOON * 10**9)]
    _, anomalies = check_run(files, Settings(), SerialExecutor(), [DEFAULT_CHUNK])
    counts: dict[str, int] = json.loads(anomalies)["counts"]
    return counts


def test_steady_error_only_windows_are_quiet() -> None:
    """A batch job logs 30 ERROR lines every minute for an hour (and one INFO line every 20
    minutes): perfectly steady, so no error_spike."""
    minute = strategies.NOON // 60 * 60
    lines = []
    for m in range(60):
        lines += [strategies.log_line(minute + 60 * m + k, b"ERROR", b"batch", b"cron")
                  for k in range(30)]
        lines += [strategies.log_line(minute + 60 * m + 30 + k, b"INFO", b"web", b"u%d" % (k % 7))
                  for k in range(20)]
        if m % 20 == 0:
            lines.append(strategies.log_line(minute + 60 * m + 59, b"INFO", b"batch", b"cron"))
    assert _steady_run(lines)["error_spike"] == 0


def test_periodic_user_is_quiet() -> None:
    """Ten users log 10 lines a minute; a cron user logs 60 lines every other minute, the same
    every time, for an hour: steady, so no user_burst."""
    minute = strategies.NOON // 60 * 60
    lines = []
    for m in range(61):
        lines += [strategies.log_line(minute + 60 * m + k, b"INFO", b"web", b"user%d" % u)
                  for u in range(10) for k in range(10)]
        if m % 2:
            lines += [strategies.log_line(minute + 60 * m + k, b"INFO", b"cron", b"cron")
                      for k in range(60)]
    assert _steady_run(lines)["user_burst"] == 0


def test_oracle_serialises_like_to_json() -> None:
    """The oracle's json.dumps and the product's to_json agree on hostile text and floats."""
    doc = {"a": "\r\t\x0b\x00\u2028é😀\ufffd\"\\", "b": [], "c": {}, "d": 0.1, "e": 2.0,
           "f": None, "g": [1, {"h": 12.35}]}
    assert reference.dump(doc) == to_json(doc)
