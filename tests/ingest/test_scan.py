"""The mapper (``scan``) and its fast path (``fast``) on fixed edge examples.

Every rule the docs state about single lines gets an example here, run through ``map_split``
over a real file, so both routes are taken: canonical lines (``YYYY-MM-DDTHH:MM:SSZ LEVEL
SERVICE USER``) go through the fast path, and the same lines made non-canonical (a lower-case
level) force the exact path for their whole block. Expectations come from the rules (the
standard library's calendar for dates), never from the engine.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from pathlib import Path

import pytest

from mapreduce_logs import Settings, build_anomalies, map_split
from mapreduce_logs.ingest import scan as scan_module
from mapreduce_logs.ingest.fast import all_lines_short
from mapreduce_logs.ingest.split import Split, split_file
from mapreduce_logs.model.partial import Partial

LIMIT = 65_536
"""The longest line (bytes before its newline) that is not too_long."""
REASON_ORDER = ("too_long", "too_few_fields", "bad_timestamp", "unknown_level", "bad_encoding")
"""The order the reasons are checked in (a line gets the first that applies)."""
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HEAD = b"2024-03-01T10:00:00Z INFO auth u1"


def scan(path: Path, settings: Settings | None = None) -> Partial:
    settings = settings or Settings()
    size = path.stat().st_size
    return map_split(Split(str(path), 0, size, path.stat().st_mtime_ns), settings)


def padded(length: int, canonical: bool = True, fill: bytes = b"m") -> bytes:
    """A valid line of exactly ``length`` bytes: the head, a space, a message of ``fill``."""
    head = HEAD if canonical else HEAD.replace(b"INFO", b"info")
    line = head + b" " + fill * (length - len(head) - 1)
    assert len(line) == length
    return line


def neighbours(canonical: bool) -> list[bytes]:
    level = b"ERROR" if canonical else b"error"
    return [b"2024-03-01T10:00:%02dZ %s db n%d" % (i, level, i) for i in range(1, 4)]


@pytest.mark.parametrize("block", [1 << 20, 4096, LIMIT])
@pytest.mark.parametrize("canonical", [True, False], ids=["fast", "exact"])
@pytest.mark.parametrize("length", [LIMIT - 1, LIMIT, LIMIT + 1])
@pytest.mark.parametrize("where", ["first", "middle", "last", "unterminated"])
def test_line_lengths_at_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, length: int,
                                   canonical: bool, where: str, block: int) -> None:
    """65,535 and 65,536 bytes are a valid line, 65,537 is too_long, wherever the line is in
    the file and whatever the read size (the line whole in a block, or carried over reads)."""
    monkeypatch.setattr(scan_module, "BLOCK", block)
    others = neighbours(canonical)
    line = padded(length, canonical)
    lines = {"first": [line, *others], "middle": [others[0], line, *others[1:]],
             "last": [*others, line], "unterminated": [*others, line]}[where]
    data = b"\n".join(lines) + (b"" if where == "unterminated" else b"\n")
    path = tmp_path / "a.log"
    path.write_bytes(data)
    p = scan(path)
    too_long = length > LIMIT
    assert (p.lines, p.valid, p.malformed["too_long"]) == (4, 4 - too_long, int(too_long))
    assert p.users[b"u1"] == (0 if too_long else 1)
    assert p.bytes_read == len(data)


@pytest.mark.parametrize("length", [LIMIT - 1, LIMIT, LIMIT + 1, LIMIT + 2])
def test_all_lines_short_at_the_limit(length: int) -> None:
    """The fast path's check: a block may be scanned in bulk only when no line in it is longer
    than the limit (the line alone, between two others, or after a newline-only line)."""
    line = b"x" * length
    short = length <= LIMIT
    for block in (line + b"\n", b"a\n" + line + b"\nb\n", b"\n" + line + b"\n",
                  b"a\n" * 40_000 + line + b"\n"):
        assert all_lines_short(block) is short, len(block)
    assert all_lines_short((b"y" * LIMIT + b"\n") * 3) is True


@pytest.mark.parametrize("length", [LIMIT + 1, 3 * LIMIT])
def test_a_long_whitespace_line_is_blank(tmp_path: Path, length: int) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(HEAD + b"\n" + b" \t" * (length // 2) + b"\r" * (length % 2) + b"\n" + HEAD)
    p = scan(path)
    assert (p.lines, p.valid, p.blank, sum(p.malformed.values())) == (3, 2, 1, 0)


def line_breaking(reasons: frozenset[str]) -> bytes:
    """A line that breaks exactly the rules named (padding glued to the last field, so that a
    too_long line keeps the number of fields)."""
    stamp = b"2023-02-29T10:00:00Z" if "bad_timestamp" in reasons else b"2024-03-01T10:00:00Z"
    level = b"LOUD" if "unknown_level" in reasons else b"INFO"
    service = b"s\xff" if "bad_encoding" in reasons else b"svc"
    fields = [stamp, level, service] + ([] if "too_few_fields" in reasons else [b"user"])
    line = b" ".join(fields)
    if "too_long" in reasons:
        line += b"p" * (LIMIT + 1 - len(line))
    return line


ALL_SUBSETS = [frozenset(c) for n in range(1, 6) for c in itertools.combinations(REASON_ORDER, n)]


@pytest.mark.parametrize("canonical_neighbours", [True, False], ids=["fast", "exact"])
def test_each_malformed_reason_wins_in_its_order(tmp_path: Path,
                                                 canonical_neighbours: bool) -> None:
    """Of several broken rules, the first in the documented order is the line's reason: every
    combination of the five, among canonical lines (fast path) or not (exact path)."""
    expected = dict.fromkeys(REASON_ORDER, 0)
    got = Partial()
    # Apart, the lines of normal length: a block holding a too_long line takes the exact path.
    for long in (True, False):
        lines = []
        for reasons in ALL_SUBSETS:
            if ("too_long" in reasons) is long:
                lines += [line_breaking(reasons), *neighbours(canonical_neighbours)[:1]]
                expected[next(r for r in REASON_ORDER if r in reasons)] += 1
        path = tmp_path / f"{long}.log"
        path.write_bytes(b"\n".join(lines) + b"\n")
        got.update(scan(path))
    assert {r: got.malformed[r] for r in REASON_ORDER} == expected
    assert got.valid == len(ALL_SUBSETS)
    assert dict(got.unknown_levels) == {b"LOUD": expected["unknown_level"]}


def test_warning_is_reported_as_warn_on_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"2024-03-01T10:00:00Z WARNING a u\n2024-03-01T10:00:01Z WARN a u\n"
                     b"2024-03-01T10:00:02Z warning a u\n2024-03-01T10:00:03Z Warning a u\n")
    p = scan(path)
    assert dict(p.levels) == {b"WARN": 4}


def utc_of(stamp: str) -> dt.datetime | None:
    """The UTC instant of a timestamp token by the standard library, None when it is not a
    real date and time or falls outside years 1-9999 in UTC."""
    try:
        moment = dt.datetime.fromisoformat(stamp)
        return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        return None


STAMPS = [
    "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "1900-02-29T12:00:00Z",
    "2000-02-29T12:00:00Z", "2024-02-30T12:00:00Z", "2100-02-29T00:00:00Z",
    "0001-01-01T00:00:00Z", "0000-12-31T23:59:59Z", "9999-12-31T23:59:59Z",
    "9999-12-31T23:00:00-01:00", "9999-12-31T22:59:59-01:00", "0001-01-01T01:00:00+01:00",
    "0001-01-01T00:59:59+01:00",
    "0001-01-01T00:30:00+01:00", "0001-01-01T00:30:00-01:00", "9999-12-31T23:30:00-01:00",
    "9999-12-31T23:30:00+01:00", "2025-07-22T01:30:00+02:00", "2025-12-31T23:30:00-01:00",
    "2024-02-28T23:30:00-01:00", "2023-02-28T23:30:00-01:00", "2024-03-01T00:30:00+01:00",
]
"""Leap days, year bounds, offsets that cross midnight (and a month, a year, a leap day)."""


@pytest.mark.parametrize("stamp", STAMPS)
@pytest.mark.parametrize("level", ["INFO", "info"], ids=["fast", "exact"])
def test_calendar_edges(tmp_path: Path, stamp: str, level: str) -> None:
    """Validity, UTC instant and UTC hour of each stamp as the standard library sees them."""
    path = tmp_path / "a.log"
    path.write_bytes(f"{stamp} {level} auth u\n".encode())
    p = scan(path)
    moment = utc_of(stamp)
    if moment is None:
        assert (p.valid, p.malformed["bad_timestamp"]) == (0, 1)
        return
    assert p.valid == 1
    seconds = (moment - EPOCH) // dt.timedelta(seconds=1)
    assert p.min_ts == p.max_ts == seconds * 1_000_000_000
    assert p.hours[moment.hour] == 1 and sum(p.hours) == 1


def write_stamped(path: Path, seconds: list[int], mtime: int) -> None:
    path.write_bytes(b"".join(
        (dt.datetime.fromtimestamp(s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + " INFO a u\n")
        .encode() for s in seconds))
    os.utime(path, ns=(mtime * 1_000_000_000, mtime * 1_000_000_000))


T = 1_709_287_200  # 2024-03-01T10:00:00Z
SKEW = 300


@pytest.mark.parametrize("chunk", [None, 1, 40], ids=["one split", "a split a line", "40"])
def test_clock_checks_at_exactly_the_skew(tmp_path: Path, chunk: int | None) -> None:
    """A line more than --clock-skew seconds before the previous valid line went backwards;
    exactly --clock-skew before did not. A line more than --clock-skew after the file's mtime
    is in the future; exactly --clock-skew after is not. The same across split seams."""
    seconds = [T, T - SKEW, T, T - SKEW - 1, T + SKEW, T + SKEW + 1, T + SKEW + 1 - SKEW]
    backwards = sum(b < a - SKEW for a, b in itertools.pairwise(seconds))
    future = sum(s > T + SKEW for s in seconds)
    assert (backwards, future) == (1, 1)
    path = tmp_path / "a.log"
    write_stamped(path, seconds, mtime=T)
    settings = Settings(clock_skew=SKEW)
    mtime = path.stat().st_mtime_ns
    total = Partial(clock_skew_ns=settings.clock_skew_ns)
    splits = ([Split(str(path), 0, path.stat().st_size, mtime)] if chunk is None
              else list(split_file(str(path), chunk)))
    for split in splits:
        total.update(map_split(split, settings))
    found = {a["type"]: a for a in build_anomalies(total, settings)["anomalies"]}
    assert found["time_went_backwards"]["count"] == backwards
    assert found["future_timestamp"]["count"] == future
    assert [e["line"] for e in found["time_went_backwards"]["examples"]] == [4]
    assert [e["line"] for e in found["future_timestamp"]["examples"]] == [6]


@pytest.mark.parametrize("route", ["fast", "exact"])
def test_error_levels_on_both_paths(tmp_path: Path, route: str) -> None:
    """ERROR, CRITICAL and FATAL lines are a service's errors; the other levels are not."""
    levels = ["ERROR", "CRITICAL", "FATAL", "WARN", "INFO", "WARNING", "DEBUG"]
    if route == "exact":
        levels = [level.lower() for level in levels]  # not canonical: the exact path
    path = tmp_path / "a.log"
    path.write_bytes("".join(f"2024-03-01T10:00:0{i}Z {level} svc u\n"
                             for i, level in enumerate(levels)).encode())
    p = scan(path)
    window = T // 60
    assert (p.service_errors[(b"svc", window)], p.service_others[(b"svc", window)]) == (3, 4)


def test_hours_count_every_line_of_a_stamp(tmp_path: Path) -> None:
    """Lines sharing a timestamp each count in its hour (the fast path counts stamps in bulk)."""
    path = tmp_path / "a.log"
    write_stamped(path, [T, T, T, T + 3600, T + 3600 * 14], mtime=T + 3600 * 15)
    p = scan(path)
    assert (p.hours[10], p.hours[11], p.hours[0]) == (3, 1, 1)


def test_an_unreadable_split_is_a_failure_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.log"
    path.write_bytes(HEAD + b"\n")
    split = Split(str(path), 0, path.stat().st_size, 0)
    path.unlink()
    p = map_split(split, Settings())
    assert (p.files, p.lines) == (0, 0) and str(path) in p.failures


def test_order_checks_see_a_block_whose_ends_are_in_order(tmp_path: Path) -> None:
    """A line more than the skew before the previous one goes backwards even when the block's
    first and last stamps are in order (and none is in the future)."""
    path = tmp_path / "a.log"
    write_stamped(path, [T, T - 400, T + 10], mtime=T + 3600)
    p = scan(path, Settings(clock_skew=SKEW))
    (segment,) = p.segments[(str(path), 0)]
    assert (segment.backwards, segment.future) == (1, 0)


def test_the_time_range_spans_every_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Later blocks of one split with earlier stamps lower its first time (and vice versa)."""
    monkeypatch.setattr(scan_module, "BLOCK", 64)
    path = tmp_path / "a.log"
    seconds = [T + 100, T + 50, T, T + 200, T + 20]
    write_stamped(path, seconds, mtime=T + 3600)
    p = scan(path)
    assert (p.min_ts, p.max_ts) == (T * 1_000_000_000, (T + 200) * 1_000_000_000)


def test_a_long_line_with_text_amid_whitespace_is_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line streamed over many reads is blank only if every part of it is whitespace."""
    monkeypatch.setattr(scan_module, "BLOCK", 4096)
    path = tmp_path / "a.log"
    path.write_bytes(b" " * 70_000 + b"x" + b" " * 70_000 + b"\n" + b" " * 70_000 + b"\n")
    p = scan(path)
    assert (p.lines, p.blank, p.malformed["too_long"]) == (2, 1, 1)


def test_seams_keep_line_numbers_and_the_previous_time(tmp_path: Path) -> None:
    """One split a line: the backwards line is named by its line number in the file, the
    previous valid time crosses a split holding only a malformed line, and no more than five
    examples are kept."""
    path = tmp_path / "a.log"
    write_stamped(path, [T], mtime=T + 3600)
    with path.open("ab") as f:
        f.write(b"".join(b"bad %d\n" % i for i in range(7)))
    write_stamped(tmp_path / "b.log", [T - SKEW - 1], mtime=T + 3600)
    with path.open("ab") as f:
        f.write((tmp_path / "b.log").read_bytes())
    settings = Settings(clock_skew=SKEW)
    total = Partial(clock_skew_ns=settings.clock_skew_ns)
    for split in split_file(str(path), 1):
        total.update(map_split(split, settings))
    doc = build_anomalies(total, settings)
    by_type = {a["type"]: a for a in doc["anomalies"]}
    assert [e["line"] for e in by_type["time_went_backwards"]["examples"]] == [9]
    assert [e["line"] for e in by_type["malformed_lines"]["examples"]] == [2, 3, 4, 5, 6]
