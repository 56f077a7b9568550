"""--tz, --since / --until and standard input (docs/options.md) against the oracle: the same
summary.json and anomalies.json bytes for every worker count and chunk size."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import os
import subprocess
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
import reference
import strategies
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_engine import CHUNK_SIZES, DEFAULT_CHUNK, assert_same, options_of

from mapreduce_logs import (
    PoolExecutor,
    SerialExecutor,
    Settings,
    build_anomalies,
    build_summary,
    run_files,
    to_json,
)
from mapreduce_logs.cli import main
from mapreduce_logs.ingest import split, zones

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZONES = sorted(zoneinfo.available_timezones())
NS = 1_000_000_000
UTC = datetime.UTC
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
CYCLE = reference.FOUR_CENTURIES


# --- instants that matter: around a zone's changes of offset, and in years 1 and 9999 ---------


@functools.lru_cache(maxsize=4096)
def changes(tz: str, year: int) -> tuple[int, ...]:
    """UTC seconds at which ``tz`` changes its offset during ``year`` (scanned day by day, then
    to the second); years 1 and 9999 are scanned 400 years nearer and moved back."""
    shift = CYCLE if year == 1 else -CYCLE if year == 9999 else 0
    info = zoneinfo.ZoneInfo(tz)

    def offset(second: int) -> datetime.timedelta | None:
        return (EPOCH + datetime.timedelta(seconds=second)).astimezone(info).utcoffset()

    start = int((datetime.datetime(year, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) + shift
    found = []
    for day in range(365):
        low, high = start + day * 86_400, start + (day + 1) * 86_400
        if offset(low) != offset(high):
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if offset(mid) == offset(low) else (low, mid)
            found.append(high - shift)
    return tuple(found)


YEARS = [1, 1, 1883, 1918, 1937, 1942, 1970, 1972, 1996, 2007, 2025, 2025, 2038, 2100, 9999, 9999]
ODD_ZONES = ["America/St_Johns", "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Kathmandu",
             "Pacific/Chatham", "Europe/Dublin", "Africa/Casablanca", "Antarctica/Troll",
             "Pacific/Apia", "Europe/Amsterdam", "Africa/Monrovia", "America/New_York"]
"""Changes at half hours and odd seconds, negative daylight saving, skipped days."""
zone_names = st.sampled_from(ZONES) | st.sampled_from(ODD_ZONES)


def _instant(parts: tuple[str, int, int, int, int]) -> tuple[str, int]:
    """(zone, UTC second near its change number ``which`` of ``year``, or of the year's start)."""
    tz, year, which, delta, day = parts
    found = changes(tz, year)
    if found:
        base = found[which % len(found)]
    else:
        base = int((datetime.datetime(year, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
        base += day * 86_400
    low = reference.FIRST_SECOND
    high = reference.AFTER_LAST_SECOND - 1
    return tz, min(max(base + delta, low), high)


deltas = st.sampled_from([0, -1, 1, -1800, 1800, -3600, 3599, 3600, -5400, 7200, -86_399]) | st.integers(-90_000, 90_000)

zoned_instants = st.tuples(
    zone_names, st.sampled_from(YEARS), st.integers(0, 5), deltas, st.integers(0, 364)
).map(_instant)
"""(IANA zone, an instant near one of its changes of offset or in years 1 and 9999)."""

fixed_zones = st.tuples(st.sampled_from("+-"), st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]),
                        st.booleans()).map(lambda t: f"{t[0]}{t[1]:02d}{':' if t[3] else ''}{t[2]:02d}")


def stamp(second: int, nanos: int, form: int, tz_offset: int = 0) -> bytes:
    """A timestamp token for a UTC second: canonical (form 0), with a fraction (1), or written
    with an offset (2: +05:30, 3: -0800 style, from ``tz_offset`` seconds)."""
    if form >= 2:
        offset = tz_offset
        wall = second + offset
    else:
        offset, wall = 0, second
    text = reference.utc_text(wall)[:-1]
    if form == 1 or (form >= 2 and nanos):
        text += "." + f"{nanos:09d}"
    if form == 0 or form == 1:
        return (text + "Z").encode()
    sign = "-" if offset < 0 else "+"
    hh, mm = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{hh:02d}{':' if form == 2 else ''}{mm:02d}".encode()


def _line(parts: tuple[int, int, int, int, bytes, bytes]) -> bytes:
    second, nanos, form, offset, level, user = parts
    if form >= 2 and not (reference.FIRST_SECOND <= second + offset < reference.AFTER_LAST_SECOND):
        form = 0  # the wall time would not be a year 0001-9999
    return stamp(second, nanos, form, offset) + b" " + level + b" svc " + user + b" m"


def lines_near(seconds: list[int]) -> st.SearchStrategy[list[bytes]]:
    """Valid lines at and around ``seconds``, in every form, with some hostile lines between."""
    one = st.tuples(
        st.sampled_from(seconds), st.sampled_from([0, 0, 1, 999_999_999]) | st.integers(0, NS - 1),
        st.sampled_from([0, 0, 0, 1, 2, 3]), st.sampled_from([0, 3600, -28_800, 19_800, -1]),
        st.sampled_from([b"INFO", b"ERROR", b"warn"]), st.sampled_from([b"u1", b"u2", b"u3"]),
    ).map(_line)
    return st.lists(st.one_of(one, one, one, strategies.lines), min_size=1, max_size=30)


# --- running both --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[int, PoolExecutor]]:
    with PoolExecutor(2) as two, PoolExecutor(3) as three:
        yield {2: two, 3: three}


def _documents(files: list[str], knobs: Settings, executor: Any, stdin: bytes | None = None,
               mtime_ns: int = 0) -> tuple[bytes, bytes]:
    stream = None if stdin is None else io.BytesIO(stdin)
    partial = run_files(files, knobs, executor, stream=stream, stream_mtime_ns=mtime_ns)
    return to_json(build_summary(partial, knobs)), to_json(build_anomalies(partial, knobs))


def oracle_options(knobs: Settings, since: str | None, until: str | None) -> reference.Options:
    return dataclasses.replace(options_of(knobs), tz=knobs.tz, since=since, until=until)


def knobs_for(tz: str, since: str | None = None, until: str | None = None, **more: Any) -> Settings:
    return Settings(
        tz=tz, since_ns=None if since is None else zones.parse_time(since, tz),
        until_ns=None if until is None else zones.parse_time(until, tz), **more)


def check(contents: list[bytes], knobs: Settings, since: str | None, until: str | None,
          executors: list[Any], chunk_sizes: list[int], stdin: bytes | None = None) -> bytes:
    """Write ``contents`` as files, then the engine (with ``stdin`` as ``-`` when given) must
    give the oracle's bytes for every executor and chunk size; returns the summary."""
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, content in enumerate(contents):
            path = os.path.join(folder, f"{i}.log")
            with open(path, "wb") as f:
                f.write(content)
            os.utime(path, ns=(strategies.NOON * NS, strategies.NOON * NS))
            paths.append(path)
        listed = paths + (["-"] if stdin is not None else [])
        expected = reference.documents(listed, oracle_options(knobs, since, until),
                                       stdin=stdin or b"", stdin_mtime_ns=strategies.NOON * NS)
        for executor in executors:
            for chunk in chunk_sizes:
                tuned = dataclasses.replace(knobs, chunk_size=chunk)
                got = _documents(paths, tuned, executor, stdin, strategies.NOON * NS)
                assert_same(got, expected, f"chunk size {chunk}, {executor}")
    return expected[0]


def _joined(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


# --- --tz ------------------------------------------------------------------------------------------


@settings(max_examples=strategies.examples(300))
@given(point=zoned_instants, step=st.sampled_from([-3600, -1, 0, 1, 1800, 3600]))
@example(point=("America/New_York", 1_741_503_599), step=1)  # 01:59:59 EST, then 03:00 EDT
@example(point=("Australia/Lord_Howe", 1_743_863_400), step=0)  # a 30-minute change
@example(point=("Pacific/Kiritimati", reference.AFTER_LAST_SECOND - 1), step=0)
@example(point=("America/St_Johns", 1_741_498_200), step=-1)  # 01:59:59 NST, at 05:29:59Z
@example(point=("America/St_Johns", 1_741_498_200), step=0)  # 03:00 NDT, at 05:30Z
@example(point=("Europe/Amsterdam", -1_029_190_772), step=0)  # +00:19:32 -> +01:19:32
@example(point=("Etc/GMT+12", reference.FIRST_SECOND), step=0)
def test_local_hour_equals_the_oracle(point: tuple[str, int], step: int) -> None:
    """The per-hour table gives, second for second, the hour zoneinfo gives for one instant."""
    tz, second = point
    second = min(max(second + step, reference.FIRST_SECOND), reference.AFTER_LAST_SECOND - 1)
    assert zones.zone(tz).hour_of(second) == reference.local_hour(second, tz)


@settings(max_examples=strategies.examples(100))
@given(data=st.data(), tz=zone_names, year=st.sampled_from(YEARS))
def test_zones_equal_oracle(data: st.DataObject, tz: str, year: int) -> None:
    """Lines around a zone's changes of offset (and in years 1 and 9999) are counted in their
    local hour as the oracle counts them, with one worker and every chunk size."""
    found = changes(tz, year) or (_instant((tz, year, 0, 0, 0))[1],)
    seconds = sorted({min(max(s + d, reference.FIRST_SECOND), reference.AFTER_LAST_SECOND - 1)
                      for s in found[:3] for d in (-3601, -1, 0, 1, 1799, 3600)})
    lines = data.draw(lines_near(seconds))
    summary = check([_joined(lines)], knobs_for(tz, peak_hours=24), None, None,
                    [SerialExecutor()], CHUNK_SIZES)
    assert f'"time_zone": "{tz}"'.encode() in summary


@settings(max_examples=strategies.examples(60))
@given(tz=fixed_zones, files=strategies.runs(max_files=2, max_lines=10))
def test_fixed_offsets_equal_oracle(tz: str, files: list[strategies.LogFile]) -> None:
    """A fixed offset, of whole hours or not, moves every line's hour the same way."""
    contents = [f.content for f in files]
    check(contents, knobs_for(tz, peak_hours=5), None, None, [SerialExecutor()], [1, 64, DEFAULT_CHUNK])


@settings(max_examples=strategies.examples(20))
@given(point=zoned_instants, workers=st.sampled_from([2, 3]), chunk=st.sampled_from(CHUNK_SIZES),
       data=st.data())
def test_zones_with_a_pool_equal_oracle(pools: dict[int, PoolExecutor], point: tuple[str, int],
                                        workers: int, chunk: int, data: st.DataObject) -> None:
    """Worker processes build their own tables and agree."""
    tz, second = point
    lines = data.draw(lines_near([second - 1, second, second + 1, second + 3600]))
    check([_joined(lines), _joined(lines[::-1])], knobs_for(tz, workers=workers), None, None,
          [pools[workers]], [chunk])


# --- --since / --until -----------------------------------------------------------------------------


def _wall_text(instant_ns: int, tz: str, form: int) -> str:
    """A TIME for ``instant_ns``: UTC with Z and nanoseconds (0), a local wall time in ``tz``
    without an offset (1), or the local date (2: its midnight)."""
    second, nanos = divmod(instant_ns, NS)
    if form == 0:
        return reference.utc_text(second)[:-1] + f".{nanos:09d}Z"
    if tz == "UTC":
        local = second
    else:
        offset = reference.fixed_offset(tz)
        if offset is None:
            moved = reference.near_the_ends(second)
            when = (EPOCH + datetime.timedelta(seconds=moved)).astimezone(zoneinfo.ZoneInfo(tz))
            offset = int(when.utcoffset().total_seconds())  # type: ignore[union-attr]
        local = second + offset
    local = min(max(local, reference.FIRST_SECOND), reference.AFTER_LAST_SECOND - 1)
    text = reference.utc_text(local)[:-1]
    if form == 2:
        return text[:10]
    return text + (f".{nanos:09d}" if nanos else "")


range_zones = st.sampled_from(["UTC", "UTC", "America/New_York", "Europe/London",
                               "Australia/Lord_Howe", "Asia/Kolkata", "+05:30", "-0800"])


RANGE_BASE = 1_741_500_000
"""Around New York's change of 9 March 2025."""
RANGE_SECONDS = [RANGE_BASE + k * 1800 for k in range(8)]


def _valid_instants(lines: list[bytes]) -> list[int]:
    return sorted({line.instant for line in map(reference.classify, lines) if line.kind == "valid"})


@settings(max_examples=strategies.examples(200))
@given(lines=lines_near(RANGE_SECONDS), tz=range_zones, picks=st.tuples(st.integers(), st.integers()),
       forms=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       edges=st.tuples(st.sampled_from([-1, 0, 1, 0]), st.sampled_from([-1, 0, 1, 0])),
       open_end=st.sampled_from([None, None, "since", "until"]))
def test_since_until_equal_oracle(lines: list[bytes], tz: str, picks: tuple[int, int],
                                  forms: tuple[int, int], edges: tuple[int, int],
                                  open_end: str | None) -> None:
    """since <= t < until at exact nanoseconds (bounds on lines and one nanosecond either side),
    given in UTC, as local wall times or as dates, with and without --tz; lines outside count
    only in lines and outside, and are not there for the clock checks."""
    instants = [*_valid_instants(lines), RANGE_SECONDS[2] * NS, RANGE_SECONDS[5] * NS]
    # One nanosecond either side of a line, but inside years 1-9999: a TIME outside them does
    # not parse (a usage error, tested below).
    first, last = reference.FIRST_SECOND * NS, reference.AFTER_LAST_SECOND * NS - 1
    low, high = sorted(min(max(instants[pick % len(instants)] + edge, first), last)
                       for pick, edge in zip(picks, edges, strict=True))
    since, until = _wall_text(low, tz, forms[0]), _wall_text(high, tz, forms[1])
    if open_end == "since":
        since = None
    elif open_end == "until":
        until = None
    knobs = knobs_for(tz, since, until, clock_skew=0)
    if knobs.since_ns is not None and knobs.until_ns is not None and knobs.since_ns >= knobs.until_ns:
        return  # a usage error on the command line (tested below)
    check([_joined(lines), _joined(lines[::-1])], knobs, since, until, [SerialExecutor()], CHUNK_SIZES)


def test_since_until_on_lines_at_the_bounds() -> None:
    """Lines exactly at since are in, lines exactly at until are out, to the nanosecond; a line
    left out is not the previous line of a clock check."""
    lines = [_line((s, n, f, 0, b"INFO", b"u1")) for s in RANGE_SECONDS for n in (0, 5) for f in (0, 1)]
    lines.insert(3, b"2025-03-09T06:00:00Z INFO svc backwards")
    since = reference.utc_text(RANGE_SECONDS[2])[:-1] + ".000000005Z"
    until = reference.utc_text(RANGE_SECONDS[5])
    local_until = "2025-03-09T04:30:00"  # 08:30Z, daylight time
    for tz, end in (("UTC", until), ("America/New_York", local_until)):
        knobs = knobs_for(tz, since, end, clock_skew=0)
        summary = check([_joined(lines)], knobs, since, end, [SerialExecutor()], [1, DEFAULT_CHUNK])
        assert b'"outside": ' in summary and b'"outside": 0' not in summary


@settings(max_examples=strategies.examples(20))
@given(files=strategies.runs(max_files=2, max_lines=12), workers=st.sampled_from([2, 3]),
       chunk=st.sampled_from(CHUNK_SIZES), tz=range_zones,
       since=st.sampled_from([None, "2025-07-22T12:00:00", "2025-07-22T11:59:59.5Z", "2025-07-22"]),
       until=st.sampled_from([None, "2025-07-22T12:30:00.000000001", "2025-07-23", "9999-12-31"]))
def test_ranges_with_a_pool_equal_oracle(pools: dict[int, PoolExecutor],
                                         files: list[strategies.LogFile], workers: int,
                                         chunk: int, tz: str, since: str | None,
                                         until: str | None) -> None:
    """Hostile files, a time range and a zone, spread over processes."""
    knobs = knobs_for(tz, since, until, workers=workers)
    if knobs.since_ns is not None and knobs.until_ns is not None and knobs.since_ns >= knobs.until_ns:
        return
    check([f.content for f in files], knobs, since, until, [pools[workers]], [chunk])


def test_canonical_blocks_inside_outside_and_across_the_range() -> None:
    """The fast path's three cases: a block wholly inside, wholly outside, and across a bound
    (which takes the exact path), with malformed lines among them."""
    lines = []
    for k in range(3000):
        lines.append(strategies.log_line(strategies.NOON + k, b"INFO", b"svc", b"u%d" % (k % 7)))
        if k % 500 == 0:
            lines.append(b"garbage line")
    content = _joined(lines)
    since = reference.utc_text(strategies.NOON + 1000)
    until = reference.utc_text(strategies.NOON + 2000)
    summary = check([content], knobs_for("UTC", since, until), since, until, [SerialExecutor()],
                    [4096, DEFAULT_CHUNK])
    assert b'"outside": 2000' in summary


# --- standard input --------------------------------------------------------------------------------


@settings(max_examples=strategies.examples(60))
@given(files=strategies.runs(strategies.with_long_lines, max_files=2, max_lines=8),
       block=st.sampled_from([1, 7, 1000, 65_536, 65_537, 1 << 20]),
       with_files=st.booleans())
def test_stdin_equals_oracle(files: list[strategies.LogFile], block: int, with_files: bool) -> None:
    """A stream, alone or after files, read in blocks of any size (long lines cut across them
    and kept only in part), gives the oracle's bytes for every chunk size."""
    stream = files[0].content
    others = [f.content for f in files[1:]] if with_files else []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(split, "STREAM_BLOCK", block)
        check(others, Settings(), None, None, [SerialExecutor()], CHUNK_SIZES, stdin=stream)


@pytest.mark.parametrize("content", [b"", b"\n", b"no newline at all",
                                     b"2025-07-22T12:00:00Z INFO a b\n2025-07-22T12:00:01Z INFO a b"])
def test_stdin_small_streams_equal_oracle(content: bytes) -> None:
    """An empty stream is a file of no lines; a last line without a newline is a line."""
    summary = check([], Settings(), None, None, [SerialExecutor()], [1, DEFAULT_CHUNK], stdin=content)
    assert b'"files": 1' in summary


@pytest.mark.parametrize("block", [1000, 65_536, 65_537, 1 << 20])
def test_stdin_long_lines_whose_text_is_past_what_is_kept(block: int) -> None:
    """Of a long line only its first 65,537 bytes are kept: a line of whitespace whose only
    text comes after them is still too_long, not blank; whitespace alone is blank."""
    giants = [b" " * 70_000 + b"x", b"\t" * 65_537 + b"y", b" " * 65_536 + b"z",
              b" " * 200_000, b"\x0b" * 65_537 + b" " * 10 + b"\xff", b"2025-07-22T12:00:00Z INFO a "
              + b"b" * 100_000]
    valid = strategies.log_line(strategies.NOON, b"INFO", b"svc", b"u1")
    content = b"\n".join(line for giant in giants for line in (valid, giant)) + b"\n" + giants[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(split, "STREAM_BLOCK", block)
        summary = check([], Settings(), None, None, [SerialExecutor()], [7, 100_000, DEFAULT_CHUNK],
                        stdin=content)
    assert b'"too_long": 6' in summary and b'"blank": 1' in summary


def test_stdin_with_a_pool_equals_oracle(pools: dict[int, PoolExecutor]) -> None:
    lines = [strategies.log_line(strategies.NOON + k // 3, b"INFO" if k % 5 else b"ERROR",
                                 b"svc%d" % (k % 3), b"u%d" % (k % 50)) for k in range(5000)]
    content = _joined(lines[:2500]) + b"bad\n" + _joined(lines[2500:])
    for workers in (2, 3):
        check([_joined(lines[:100])], Settings(workers=workers), None, None, [pools[workers]],
              [1000, DEFAULT_CHUNK], stdin=content)


def test_a_giant_line_on_stdin_is_never_held_whole() -> None:
    """A 40 MiB line: every split holds at most a read block and a line's first 64 KiB."""
    class Giant:
        def __init__(self) -> None:
            self.left = 40

        def read(self, size: int = -1) -> bytes:
            if self.left == 0:
                return b""
            self.left -= 1
            return b"x" * (1 << 20) if self.left else b"y\n2025-07-22T12:00:00Z INFO a b\n"

    got = list(split.stream_splits(Giant(), 1 << 20, 0))
    assert all(isinstance(s, split.Split) for s in got)
    assert max(len(s.data) for s in got) <= (1 << 20) + 65_537 + 64  # type: ignore[union-attr]
    assert sum(s.end - s.start for s in got) == 39 * (1 << 20) + 32  # type: ignore[union-attr]


def _run_command(*args: str, stdin: Any = None, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "mapreduce_logs", "run", *args], cwd=ROOT,
                          stdin=stdin, input=input, capture_output=True, timeout=120, check=False)


def test_stdin_from_a_real_pipe_mixed_with_files(tmp_path: Any) -> None:
    """``producer | mapreduce-logs run a.log - b.log``: the stream after the files, named - in
    examples, its modification time the run's start (2999 is in the future, 2025 is not)."""
    lines = [strategies.log_line(strategies.NOON + k, b"INFO", b"svc", b"u%d" % (k % 4)) for k in range(300)]
    lines += [b"2999-01-01T00:00:00Z INFO svc future", b"broken"]
    content = b"\n".join(lines)  # no final newline
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(_joined(lines[:10]))
    b.write_bytes(_joined(lines[-5:]))
    started = time.time_ns()
    producer = subprocess.Popen([sys.executable, "-c",
                                 "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = tmp_path / "out"
    consumer = subprocess.Popen(
        [sys.executable, "-m", "mapreduce_logs", "run", str(a), "-", str(b), "--out", str(out),
         "--quiet", "--workers", "2", "--chunk-size", "700", "--tz", "Asia/Kolkata"],
        cwd=ROOT, stdin=producer.stdout, stderr=subprocess.PIPE)
    assert producer.stdout is not None and producer.stdin is not None
    producer.stdout.close()
    producer.stdin.write(content)
    producer.stdin.close()
    assert producer.wait(60) == 0
    _, err = consumer.communicate(timeout=120)
    assert consumer.returncode == 0, err
    options = reference.Options(tz="Asia/Kolkata")
    expected = reference.documents([str(a), str(b), "-"], options, stdin=content,
                                   stdin_mtime_ns=started)
    got = ((out / "summary.json").read_bytes(), (out / "anomalies.json").read_bytes())
    assert_same(got, expected, "a pipe")
    assert b'"file": "-"' in got[1]


def test_an_empty_stdin_is_one_file_of_no_lines(tmp_path: Any) -> None:
    result = _run_command("-", "--out", str(tmp_path), "--quiet", input=b"")
    assert result.returncode == 0, result.stderr
    expected = reference.documents(["-"], reference.Options(), stdin=b"")
    assert (tmp_path / "summary.json").read_bytes() == expected[0]


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["run", "-", "-"],
    ["run", "x.log", "-", "--quiet", "-"],
    ["watch", "-"],
    ["run", "-", "--tz", "Mars/Olympus_Mons"],
    ["run", "-", "--tz", ""],
    ["run", "-", "--tz", "../../etc/passwd"],
    ["run", "-", "--tz", "+24:00"],
    ["run", "-", "--tz", "+05:60"],
    ["run", "-", "--tz", "+5:30"],
    ["run", "-", "--since", "yesterday"],
    ["run", "-", "--since", "2025-02-30"],
    ["run", "-", "--until", "2025-07-22T24:00:00"],
    ["run", "-", "--until", "2025-07-22T12:00:00.1234567890Z"],
    ["run", "-", "--since", "0000-12-31T23:59:59.999999999Z"],
    ["run", "-", "--until", "10000-01-01"],
    ["run", "-", "--since", "2025-07-22", "--until", "2025-07-22"],
    ["run", "-", "--since", "2025-07-23", "--until", "2025-07-22T23:59:59.999999999"],
    ["run", "-", "--since", "2025-03-09T02:00:00", "--until", "2025-03-09T03:00:00",
     "--tz", "America/New_York"],
    ["watch", ".", "--tz", "Nowhere/City"],
    ["watch", ".", "--since", "2025-07-23", "--until", "2025-07-22"],
])
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Any,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 2, one line on stderr, no traceback, nothing read or written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.log").write_bytes(b"")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not to be read\n")))
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_time_zone_is_shown_as_given(tmp_path: Any) -> None:
    """``--tz -08:00`` (a value argparse would take for an option) and ``--tz -0800``."""
    (tmp_path / "a.log").write_bytes(b"2025-07-22T12:00:00Z INFO a b\n")
    for tz, hour in (("-08:00", "04:00-05:00"), ("-0800", "04:00-05:00"), ("+05:45", "17:00-18:00")):
        assert main(["run", str(tmp_path / "a.log"), "--tz", tz, "--out", str(tmp_path / tz),
                     "--quiet"]) == 0
        summary = (tmp_path / tz / "summary.json").read_text()
        assert f'"time_zone": "{tz}"' in summary
        assert f'"peak_hours": [\n    "{hour}"\n  ]' in summary


def test_a_time_without_offset_is_local_in_tz() -> None:
    """Wall times: a repeated one is its first occurrence; a skipped one is read with the offset
    before the change; a date is its local midnight; an offset wins over --tz."""
    ny = "America/New_York"
    assert zones.parse_time("2025-11-02T01:30:00", ny) == 1_762_061_400 * NS  # 05:30Z (EDT)
    assert zones.parse_time("2025-03-09T02:30:00", ny) == 1_741_505_400 * NS  # 07:30Z
    assert zones.parse_time("2025-07-22", "+05:30") == (1_753_142_400 - 19_800) * NS
    assert zones.parse_time("2025-07-22T00:00:00.5+02:00", ny) == (1_753_142_400 - 7200) * NS + NS // 2
    assert zones.parse_time("0001-01-01", "Asia/Tokyo") < reference.FIRST_SECOND * NS
    assert zones.parse_time("9999-12-31T23:59:59.999999999", "Etc/GMT+12") > (reference.AFTER_LAST_SECOND - 1) * NS
