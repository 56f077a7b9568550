"""The benchmark generator: deterministic, the size asked for, the shares asked for, and a ground
truth that an independent recount of the file (with the exact parser) confirms."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("numpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.generate import (
    MAX_LINE,
    REASONS,
    Params,
    generate,
    generate_giant_line,
    parse_duration,
    parse_size,
    truth_path,
)
from mapreduce_logs.ingest.parse import NS, Malformed, Record, parse_line

SMALL = dict(lines=4000, users=300, services=8, skew=1.2, malformed=0.03, blank=0.01,
             variants=0.05, incidents=1, seed=7)


def _params(**changes: Any) -> Params:
    values = {**SMALL, **changes}
    each = values.pop("incidents")
    return Params(**values, error_bursts=each, user_bursts=each, clock_jumps=each,
                  future_stamps=each, error_floor=25, user_floor=60)


def recount(path: Path, skew: int = 300) -> dict[str, Any]:
    """What the documented rules say about a file, one line at a time."""
    lines = valid = blank = backwards = future = 0
    malformed: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    previous = None
    mtime = os.stat(path).st_mtime_ns
    for line in path.read_bytes().split(b"\n")[:-1]:
        lines += 1
        parsed = parse_line(line)
        if parsed is None:
            blank += 1
        elif isinstance(parsed, Malformed):
            malformed[parsed.reason] += 1
            if parsed.reason == "unknown_level":
                unknown[parsed.level.decode()] += 1
        else:
            assert isinstance(parsed, Record)
            valid += 1
            levels[parsed.level.decode()] += 1
            if previous is not None and parsed.ts_ns < previous - skew * NS:
                backwards += 1
            previous = parsed.ts_ns
            future += parsed.ts_ns > mtime + skew * NS
    return {"lines": lines, "valid": valid, "blank": blank, "malformed": malformed,
            "unknown": unknown, "levels": levels, "backwards": backwards, "future": future}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    ta, tb = generate(str(a), _params()), generate(str(b), _params())
    generate(str(c), _params(seed=8))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    ta.pop("timing"), tb.pop("timing")
    ta.pop("file"), tb.pop("file")
    assert ta == tb
    assert os.stat(a).st_mtime_ns == os.stat(b).st_mtime_ns


def test_lines_and_size_are_reached(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    generate(str(path), _params(lines=3000))
    assert path.read_bytes().count(b"\n") == 3000
    sized = tmp_path / "s.log"
    truth = generate(str(sized), Params(size=300_000, seed=3, malformed=0.01))
    data = sized.read_bytes()
    assert 300_000 <= len(data) < 300_000 + MAX_LINE + 50_000
    assert data.endswith(b"\n") and len(data) == truth["bytes"]
    assert truth["totals"]["lines"] == data.count(b"\n")


def test_malformed_share_is_honoured_over_every_reason(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    truth = generate(str(path), Params(lines=20_000, malformed=0.05, seed=11))
    share = truth["totals"]["malformed"] / truth["totals"]["lines"]
    assert 0.04 < share < 0.06
    assert all(truth["malformed"][reason] > 0 for reason in REASONS)


def test_ground_truth_matches_an_independent_recount(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    truth = generate(str(path), _params())
    got = recount(path)
    assert got["lines"] == truth["totals"]["lines"]
    assert got["valid"] == truth["totals"]["valid"]
    assert got["blank"] == truth["totals"]["blank"]
    assert dict(got["malformed"]) == {k: v for k, v in truth["malformed"].items() if v}
    assert dict(got["unknown"]) == truth["unknown_levels"]
    assert dict(got["levels"]) == truth["log_levels"]
    assert got["backwards"] == truth["expected"]["time_went_backwards"] > 0
    assert got["future"] == truth["expected"]["future_timestamp"] > 0
    incidents = truth["incidents"]
    assert len(incidents["error_spike"]) == len(incidents["user_burst"]) == 1
    spike = incidents["error_spike"][0]
    assert spike["min_errors_per_window"] >= 25 and spike["injected_lines"] >= 25
    assert Path(truth_path(str(path))).exists()


def test_one_giant_line_and_units(tmp_path: Path) -> None:
    path = tmp_path / "giant.log"
    truth = generate_giant_line(str(path), 3 * (1 << 20) + 5)
    assert os.path.getsize(path) == 3 * (1 << 20) + 5
    assert recount(path)["malformed"] == Counter(too_long=1) == Counter(
        {k: v for k, v in truth["malformed"].items() if v})
    assert parse_size("4G") == 4 << 30 and parse_size("100M") == 100 << 20
    assert parse_size("512k") == 512 << 10 and parse_size("1000") == 1000
    assert parse_duration("6h") == 6 * 3600 and parse_duration("1d") == 86_400


def test_long_bursts_of_a_very_skewed_population_leave_most_lines_to_the_traffic(
        tmp_path: Path) -> None:
    """The very-skewed evaluation file of seed 9: incidents sized on the traffic (user bursts at
    5x-20x a busiest user holding most of the lines) outnumbered the lines left for it, and the
    planner swung to a file of nothing but bursts, longer than asked. The file has exactly the
    lines asked for, and most of them are ordinary traffic."""
    path = tmp_path / "very-skewed.log"
    truth = generate(str(path), Params(lines=72_000, users=20, skew=2.0, services=8,
                                       service_skew=1.8, span=7200, seed=9502, error_bursts=2,
                                       user_bursts=2))
    assert path.read_bytes().count(b"\n") == truth["totals"]["lines"] == 72_000
    incidents = truth["incidents"]
    assert len(incidents["error_spike"]) == len(incidents["user_burst"]) == 2
    injected = sum(i["injected_lines"] for kind in ("error_spike", "user_burst")
                   for i in incidents[kind])
    assert 0 < injected < 72_000 // 2


def test_share_sweep_catches_a_quarter_and_not_half() -> None:
    """The burst-length sweep of the evaluation runs on the product's rule: a 10x error burst
    over a quarter of the windows is caught at every usual rate, over half of them never."""
    from benchmarks.evaluate_anomalies import SWEEP_RATES, SWEEP_SHARES, share_sweep

    rows = [line.split("|")[1:-1] for line in share_sweep(trials=3).splitlines()
            if line.startswith("| ") and line[2].isdigit()]
    assert [float(row[0]) for row in rows] == list(SWEEP_RATES)
    quarter, half = SWEEP_SHARES.index(0.25) + 1, SWEEP_SHARES.index(0.5) + 1
    assert all(row[quarter].strip() == "1.00" and row[half].strip() == "0.00" for row in rows)


def test_burst_sweep_catches_a_third_and_not_half() -> None:
    """The user-burst sweep runs on the product's rule: a spammer at 10x the busiest user over
    35% of the windows is caught whenever the busiest user writes a line a window or more, over
    half of them never, and no other user or window is reported."""
    from benchmarks.evaluate_anomalies import BURST_RATES, BURST_SHARES, burst_sweep

    rows = [line.split("|")[1:-1] for line in burst_sweep(trials=2).splitlines()
            if line.startswith(("| new ", "| ordinary "))]
    assert [float(row[1]) for row in rows] == list(BURST_RATES) * 2
    third, half = BURST_SHARES.index(0.35) + 2, BURST_SHARES.index(0.5) + 2
    for row in rows:
        if float(row[1]) >= 1:
            assert row[third].strip() == "1.00"
        assert row[half].strip() == "0.00"
        assert row[-1].strip() == "0"
