"""Each detector fires on the case docs/anomalies.md names and stays quiet on steady traffic."""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mapreduce_logs import SerialExecutor, Settings, build_anomalies, run_files

START = 1_753_142_400  # 2025-07-22T00:00:00Z


def stamp(seconds: int) -> str:
    from mapreduce_logs.ingest.parse import NS, format_utc

    return format_utc(seconds * NS)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, normal approximation above 30)."""
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def steady_lines(
    rng: random.Random,
    windows: int,
    services: dict[str, tuple[float, float]],
    users: list[str],
    user_weights: list[float],
    diurnal: bool = False,
    scale_of: Callable[[int], float] | None = None,
) -> list[tuple[int, str]]:
    """(second, line) for steady traffic: per service (other lines, errors) per window, Poisson;
    the means are multiplied by ``scale_of(window)`` (default 1, or 5 in the second half of each
    240 windows when ``diurnal``)."""
    out: list[tuple[int, str]] = []
    for w in range(windows):
        if scale_of is not None:
            scale = scale_of(w)
        else:
            scale = 1.0 + 4.0 * (w % 240 >= 120) if diurnal else 1.0
        for service, (others, errors) in services.items():
            for level, mean in (("INFO", others), ("ERROR", errors)):
                for _ in range(poisson(rng, mean * scale)):
                    user = rng.choices(users, user_weights)[0]
                    out.append((START + w * 60 + rng.randrange(60), f"{level} {service} {user} m"))
    return out


def write_log(path: Path, lines: list[tuple[int, str]]) -> str:
    lines.sort(key=lambda sl: sl[0])
    path.write_text("".join(f"{stamp(s)} {text}\n" for s, text in lines))
    return str(path)


def anomalies_of(files: list[str], settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings()
    return build_anomalies(run_files(files, settings, SerialExecutor()), settings)


def of_type(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for a in doc["anomalies"] if a["type"] == kind]


def zipf_weights(n: int, exponent: float) -> list[float]:
    return [1 / (i + 1) ** exponent for i in range(n)]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("exponent", [0.0, 1.2, 2.0])
def test_quiet_on_steady_skewed_traffic(tmp_path: Path, seed: int, exponent: float) -> None:
    """No error_spike and no user_burst on steady traffic, however skewed, diurnal or not."""
    rng = random.Random(seed)
    services = {f"svc{i}": (60 / (i + 1) ** exponent, 8 / (i + 1) ** exponent) for i in range(4)}
    users = [f"user{i}" for i in range(200)]
    lines = steady_lines(rng, 240, services, users, zipf_weights(200, exponent), diurnal=seed % 2 == 1)
    doc = anomalies_of([write_log(tmp_path / "a.log", lines)])
    assert of_type(doc, "error_spike") == []
    assert of_type(doc, "user_burst") == []


@pytest.mark.parametrize("usual", [0.5, 2.0, 10.0, 40.0])
@pytest.mark.parametrize("length", [1, 3])
def test_error_spike_fires_at_ten_times_the_usual_rate(tmp_path: Path, usual: float, length: int) -> None:
    """A service's errors at 10x its usual rate (at least 20) for `length` windows: one anomaly."""
    rng = random.Random(int(usual * 10) + length)
    services = {"steady": (40.0, 2.0), "target": (40.0, usual)}
    users = [f"user{i}" for i in range(50)]
    lines = steady_lines(rng, 200, services, users, zipf_weights(50, 1.0))
    burst = max(20, round(10 * usual))
    first = 120
    for w in range(first, first + length):
        lines = [(s, t) for s, t in lines if not (t.startswith("ERROR target") and (s - START) // 60 == w)]
        lines += [(START + w * 60 + i % 60, f"ERROR target user{i % 50} boom") for i in range(burst)]
    doc = anomalies_of([write_log(tmp_path / "a.log", lines)])
    spikes = of_type(doc, "error_spike")
    assert [(s["service"], s["window_start"], s["window_end"]) for s in spikes] == [
        ("target", stamp(START + first * 60), stamp(START + (first + length) * 60))
    ]
    assert spikes[0]["errors"] == burst * length
    assert spikes[0]["baseline"] <= usual * 1.5 + 1
    assert doc["counts"]["error_spike"] == 1


def with_errors(lines: list[tuple[int, str]], service: str, first: int, count: int,
                per_window: int) -> list[tuple[int, str]]:
    """``lines`` with the errors of ``service`` in windows ``first`` .. ``first + count - 1``
    replaced by ``per_window`` errors each."""
    burst = range(first, first + count)
    out = [(s, t) for s, t in lines
           if not (t.startswith(f"ERROR {service} ") and (s - START) // 60 in burst)]
    for w in burst:
        out += [(START + w * 60 + i % 60, f"ERROR {service} user{i % 50} boom")
                for i in range(per_window)]
    return out


def long_bursts(blocks: list[tuple[int, int]], seed: int = 3) -> list[tuple[int, str]]:
    """120 windows: ``target`` logs 150 other lines and 3 errors a window, and 30 errors (10x)
    in each window of the (first window, count) ``blocks``; ``steady`` logs along."""
    rng = random.Random(seed)
    services = {"steady": (40.0, 2.0), "target": (150.0, 3.0)}
    lines = steady_lines(rng, 120, services, [f"user{i}" for i in range(50)], zipf_weights(50, 1.0))
    for first, count in blocks:
        lines = with_errors(lines, "target", first, count, 30)
    return lines


@pytest.mark.parametrize(
    "blocks",
    [
        [(40, 30)],  # a quarter of the windows
        [(10, 18), (70, 18)],  # two bursts, 30% of the windows (like busy-s12 of the evaluation)
        [(10, 21), (70, 21)],  # 35%
        [(30, 48)],  # 40% in one run
    ],
)
def test_error_spike_fires_on_bursts_over_a_large_share_of_the_windows(
    tmp_path: Path, blocks: list[tuple[int, int]]
) -> None:
    """10x a service's errors (30 a window where it logs 3) lasting from a quarter to 40% of its
    windows: each burst is one anomaly, on its exact windows, with the usual rate as baseline.
    Trimming only the tenth of the windows with most errors left the rest of the burst in the
    baseline, which then rose with it: none of these was reported."""
    doc = anomalies_of([write_log(tmp_path / "a.log", long_bursts(blocks))])
    spikes = of_type(doc, "error_spike")
    assert [(s["service"], s["window_start"], s["window_end"], s["errors"]) for s in spikes] == [
        ("target", stamp(START + first * 60), stamp(START + (first + count) * 60), 30 * count)
        for first, count in blocks
    ]
    assert all(s["baseline"] <= 3 * 1.5 for s in spikes)


def test_a_burst_over_most_windows_is_the_usual_rate(tmp_path: Path) -> None:
    """Past half of the windows (here 66 of 120) the burst is what the service usually does:
    nothing tells it from its ordinary rate, and the quiet windows are not spikes either."""
    doc = anomalies_of([write_log(tmp_path / "a.log", long_bursts([(30, 66)]))])
    assert of_type(doc, "error_spike") == []


def test_a_traffic_surge_at_the_usual_error_ratio_is_not_a_spike(tmp_path: Path) -> None:
    """A service with 0.3% errors logs 0 errors in most windows, so the windows with no error
    hold most of its traffic and its traffic-weighted median ratio is 0. One window with 80x
    its traffic and 24 errors, at its usual ratio, is suspect under that median but not a spike:
    the ratio the window is judged by is summed over the windows that are not suspect."""
    rng = random.Random(4)
    services = {"sparse": (100.0, 0.3)}
    lines = steady_lines(rng, 240, services, [f"user{i}" for i in range(50)], zipf_weights(50, 1.0))
    w = 150
    lines = [(s, t) for s, t in lines if (s - START) // 60 != w]
    lines += [(START + w * 60 + i % 60, f"INFO sparse user{i % 50} busy") for i in range(8000)]
    lines += [(START + w * 60 + i % 60, f"ERROR sparse user{i % 50} oops") for i in range(24)]
    doc = anomalies_of([write_log(tmp_path / "a.log", lines)])
    assert of_type(doc, "error_spike") == []


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_quiet_on_office_hours(tmp_path: Path, exponent: float) -> None:
    """Steady skewed services busy 72 windows of 240 and almost silent the rest: most windows
    have no error at all, so a baseline taken over windows (not traffic) would sit near 0."""
    rng = random.Random(int(exponent * 10))
    services = {f"svc{i}": (150 / (i + 1) ** exponent, 4 / (i + 1) ** exponent) for i in range(4)}
    users = [f"user{i}" for i in range(200)]
    lines = steady_lines(rng, 240, services, users, zipf_weights(200, exponent),
                         scale_of=lambda w: 1.0 if 100 <= w < 172 else 0.005)
    doc = anomalies_of([write_log(tmp_path / "a.log", lines)])
    assert of_type(doc, "error_spike") == []
    assert of_type(doc, "user_burst") == []


def test_weighted_median_ratio() -> None:
    """The smallest ratio at or below which windows hold half of the other lines."""
    import numpy as np

    from mapreduce_logs.detect.arrays import _weighted_median_ratio

    def weighted_median_ratio(pairs: list[tuple[int, int]]) -> float:
        return _weighted_median_ratio(np.array([e for e, _ in pairs], dtype=np.int64),
                                      np.array([n for _, n in pairs], dtype=np.int64))

    assert weighted_median_ratio([(1, 100), (2, 100), (50, 100)]) == 2 / 100
    assert weighted_median_ratio([(1, 100), (3, 100)]) == 1 / 100  # exactly half: the lower
    assert weighted_median_ratio([(0, 10), (0, 10), (0, 10), (1, 1000)]) == 1 / 1000
    assert weighted_median_ratio([(30, 10), (0, 1000), (5, 0)]) == 0.0  # no weight without others
    assert weighted_median_ratio([(5, 0)]) == weighted_median_ratio([]) == 0.0


def test_user_burst_fires_at_ten_times_the_busiest_user(tmp_path: Path) -> None:
    """A user at 10x the busiest ordinary user's rate for two adjacent windows: one anomaly."""
    rng = random.Random(7)
    users = [f"user{i}" for i in range(100)]
    weights = zipf_weights(100, 1.1)
    services = {"api": (150.0, 2.0)}
    lines = steady_lines(rng, 200, services, users, weights)
    busiest = 152 * weights[0] / sum(weights)
    spam = round(10 * busiest) + 1
    for w in (120, 121):
        lines += [(START + w * 60 + i % 60, "INFO api spammer hi") for i in range(spam)]
    doc = anomalies_of([write_log(tmp_path / "a.log", lines)])
    bursts = of_type(doc, "user_burst")
    assert [(b["user"], b["window_start"], b["window_end"], b["lines"]) for b in bursts] == [
        ("spammer", stamp(START + 120 * 60), stamp(START + 122 * 60), 2 * spam)
    ]
    assert bursts[0]["severity"] in {"info", "warning", "critical"}


def test_clock_anomalies_name_exact_lines(tmp_path: Path) -> None:
    """time_went_backwards and future_timestamp: per file, exact 1-based line numbers."""
    text = (
        f"{stamp(START + 1000)} INFO a u1 x\n"
        "\n"
        f"{stamp(START + 1001)} INFO a u1 x\n"
        f"{stamp(START + 600)} INFO a u1 back by 401 s\n"
        "garbage\n"
        f"{stamp(START + 400)} INFO a u1 back by 200 s only\n"
        f"{stamp(START + 100_000)} INFO a u1 from the future\n"
    )
    path = tmp_path / "clock.log"
    path.write_text(text)
    os.utime(path, (START + 2000, START + 2000))
    doc = anomalies_of([str(path)])
    back = of_type(doc, "time_went_backwards")
    assert [(a["file"], a["count"], [e["line"] for e in a["examples"]]) for a in back] == [
        (str(path), 1, [4])
    ]
    future = of_type(doc, "future_timestamp")
    assert [(a["count"], [e["line"] for e in a["examples"]]) for a in future] == [(1, [7])]
    assert future[0]["examples"][0]["text"].endswith("from the future")


# --- user_burst: the floor is on the run's lines, not on each window's -------------------------


def quiet_uniform(rng: random.Random, windows: int = 200, per_window: float = 30.0,
                  users: int = 100) -> list[tuple[int, str]]:
    """Uniform users on quiet traffic: with 30 lines a window over 100 users, the busiest
    ordinary user writes about 0.3 lines a window."""
    names = [f"user{i}" for i in range(users)]
    return steady_lines(rng, windows, {"api": (per_window, 0.0)}, names, [1.0] * users)


def with_user_lines(lines: list[tuple[int, str]], user: str, first: int,
                    per_window: list[int]) -> list[tuple[int, str]]:
    """``lines`` plus ``per_window[i]`` lines of ``user`` in window ``first + i``."""
    out = list(lines)
    for i, count in enumerate(per_window):
        w = first + i
        out += [(START + w * 60 + k * 60 // count, f"INFO api {user} again") for k in range(count)]
    return out


def test_long_low_rate_burst_fires(tmp_path: Path) -> None:
    """4 lines a window for 8 windows (32 lines), where the busiest ordinary user writes about
    0.3 a window: 13x the busiest user, no window near 20 lines, reported as one anomaly."""
    lines = with_user_lines(quiet_uniform(random.Random(11)), "spammer", 120, [4] * 8)
    doc = anomalies_of([write_log(tmp_path / "a.log", lines)])
    bursts = of_type(doc, "user_burst")
    assert [(b["user"], b["window_start"], b["window_end"], b["lines"]) for b in bursts] == [
        ("spammer", stamp(START + 120 * 60), stamp(START + 128 * 60), 32)
    ]
    assert bursts[0]["baseline"] < 0.4
    # 32 lines against a floor of 20: the weaker bar decides the severity (32 / 20 = 1.6).
    assert bursts[0]["severity"] == "warning"


@pytest.mark.parametrize("seed", range(3))
def test_single_line_windows_on_quiet_uniform_traffic_stay_quiet(tmp_path: Path, seed: int) -> None:
    """500 users sharing 3 lines a window: no user is seen in more than a tenth of the windows,
    so the busiest share is 0 and every window of every user reaches 5x its expectation. The run
    floor keeps them quiet; without it (a floor of 1 line) they would all be reported."""
    rng = random.Random(seed)
    lines = quiet_uniform(rng, windows=300, per_window=3.0, users=500)
    path = write_log(tmp_path / "a.log", lines)
    assert of_type(anomalies_of([path]), "user_burst") == []
    noisy = of_type(anomalies_of([path], Settings(burst_min_lines=1)), "user_burst")
    assert len(noisy) > 100


@pytest.mark.parametrize(
    ("per_window", "fires"),
    [
        ([3, 3, 3, 3, 3, 4], False),  # 19 lines: just under the floor
        ([3, 3, 3, 3, 4, 4], True),  # 20 lines: at the floor
        ([4, 4, 4, 4, 0, 4, 4, 4, 4], False),  # 32 lines, but a quiet window splits them: 16 + 16
        ([2] * 10, True),  # 20 lines, 2 a window
    ],
)
def test_run_floor_just_under_and_at(tmp_path: Path, per_window: list[int], fires: bool) -> None:
    """A run is reported when its windows' lines add up to --burst-min-lines (20), not before;
    windows apart (a window between them not flagged) are separate runs."""
    lines = with_user_lines(quiet_uniform(random.Random(5)), "spammer", 100, per_window)
    doc = anomalies_of([write_log(tmp_path / "a.log", lines)])
    bursts = [(b["user"], b["lines"], b["severity"]) for b in of_type(doc, "user_burst")]
    assert bursts == ([("spammer", sum(per_window), "info")] if fires else [])


def test_burst_candidates_are_bounded_by_long_runs() -> None:
    """With a share of 0 every window is at least 5x its expectation; the candidates a partition
    keeps are still only the windows of runs with --burst-min-lines lines or more: none of a
    crowd of users with a few lines here and there, nor of runs of 19 lines."""
    from mapreduce_logs.detect.digest import burst_candidates

    rng = random.Random(3)
    user_lines: dict[tuple[bytes, int], int] = {}
    for u in range(5000):
        for w in rng.sample(range(1000), 5):
            user_lines[(b"u%d" % u, w)] = rng.choice([1, 1, 1, 2, 3])
    for w in range(100, 119):  # 19 lines in 19 windows
        user_lines[(b"short", w)] = 1
    user_lines[(b"short", 150)] = 19  # and 19 in one window
    for w in range(200, 220):  # 20 lines in 20 windows, then 2 apart
        user_lines[(b"long", w)] = 1
    user_lines[(b"long", 230)] = 2
    user_lines[(b"big", 300)] = 25
    window_lines: Counter[int] = Counter()
    for (_, w), n in user_lines.items():
        window_lines[w] += n
    got = burst_candidates(user_lines, window_lines, 0.0, Settings())
    assert sorted((u, w, n) for u, w, n, _ in got) == [(b"big", 300, 25)] + [
        (b"long", w, 1) for w in range(200, 220)
    ]
    # and under a floor of 1 line every window is a candidate: the run floor is what bounds them
    assert len(burst_candidates(user_lines, window_lines, 0.0, Settings(burst_min_lines=1))) == len(
        user_lines
    )


def assert_same_when_spilled_and_chunked(
    path: str, monkeypatch: pytest.MonkeyPatch, spill_dir: Path, workers: int
) -> bytes:
    """anomalies.json of ``path`` comes out byte for byte the same with small chunks, ``workers``
    workers, and every chunk spilled to partitions of at most 50 entries digested one by one;
    returns it."""
    import mapreduce_logs.pipeline as pipeline
    import mapreduce_logs.reduce.budget as budget_mod
    from mapreduce_logs import PoolExecutor, build_summary, to_json

    expected = to_json(anomalies_of([path]))
    monkeypatch.setattr(pipeline, "SPILL_DIR", str(spill_dir))
    monkeypatch.setattr(
        pipeline, "plan",
        lambda knobs, workers, in_flight: budget_mod.Budget(knobs.chunk_size, spill_entries=0,
                                                        partition_entries=50),
    )
    for chunk in (997, 8192):
        knobs = Settings(chunk_size=chunk, workers=workers)
        if workers == 1:
            partial = run_files([path], knobs, SerialExecutor())
        else:
            with PoolExecutor(workers) as pool:
                partial = run_files([path], knobs, pool)
        assert partial.digest is not None, "the run spilled"
        build_summary(partial, knobs)
        assert to_json(build_anomalies(partial, knobs)) == expected
    return expected


@pytest.mark.parametrize("workers", [1, 2])
def test_low_rate_burst_same_when_spilled_and_chunked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The multi-window low-rate burst (and the rest of the document) comes out byte for byte
    the same with small chunks, several workers, and every chunk spilled to partitions of at
    most 50 entries digested one by one."""
    lines = with_user_lines(quiet_uniform(random.Random(11)), "spammer", 120, [4] * 8)
    lines = with_user_lines(lines, "user7", 60, [3, 3, 3, 3, 3, 3, 2])
    path = write_log(tmp_path / "a.log", lines)
    expected = assert_same_when_spilled_and_chunked(path, monkeypatch, tmp_path, workers)
    assert b'"user": "spammer"' in expected and b'"user": "user7"' in expected


@pytest.mark.parametrize("workers", [1, 2])
def test_long_error_bursts_same_when_spilled_and_chunked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Two error bursts over 35% of a service's windows, found the same whatever the chunks,
    workers and spilling."""
    path = write_log(tmp_path / "a.log", long_bursts([(10, 21), (70, 21)]))
    expected = assert_same_when_spilled_and_chunked(path, monkeypatch, tmp_path, workers)
    assert expected.count(b'"service": "target"') == 2


# --- user_burst: a spammer over a large share of the windows ------------------------------------


def spam(blocks: list[tuple[int, int]], spammer: str = "spammer", seed: int = 3,
         scale_of: Callable[[int], float] | None = None) -> tuple[list[tuple[int, str]], int]:
    """120 windows of 50 Zipf users sharing 100 lines a window (the busiest writes about 22),
    and ``spammer`` writing 10x the busiest user's rate in each window of the (first window,
    count) ``blocks``; with the spammer's lines a window."""
    rng = random.Random(seed)
    weights = zipf_weights(50, 1.0)
    lines = steady_lines(rng, 120, {"api": (100.0, 0.0)}, [f"user{i}" for i in range(50)],
                         weights, scale_of=scale_of)
    per_window = round(10 * 100 * weights[0] / sum(weights))
    for first, count in blocks:
        lines = with_user_lines(lines, spammer, first, [per_window] * count)
    return lines, per_window


LONG_BURSTS = [
    [(40, 24)],  # a fifth of the windows
    [(10, 18), (70, 18)],  # 30%, in two runs
    [(10, 21), (70, 21)],  # 35%
    [(30, 48)],  # 40% in one run
]


@pytest.mark.parametrize("blocks", LONG_BURSTS)
def test_user_burst_fires_on_a_spammer_over_a_large_share_of_the_windows(
    tmp_path: Path, blocks: list[tuple[int, int]]
) -> None:
    """A new user at 10x the busiest ordinary user's rate over a fifth to 40% of the windows:
    each run is one anomaly, on its exact windows, against the busiest user's rate. Trimming
    only the tenth of the windows where each user wrote most left the rest of the burst in the
    spammer's share (which then became the busiest share, raising everyone's expectation) and
    in its usual rate: from 30% of the windows on, none of these was reported."""
    lines, per_window = spam(blocks)
    bursts = of_type(anomalies_of([write_log(tmp_path / "a.log", lines)]), "user_burst")
    assert [(b["user"], b["window_start"], b["window_end"], b["lines"]) for b in bursts] == [
        ("spammer", stamp(START + first * 60), stamp(START + (first + count) * 60),
         per_window * count)
        for first, count in blocks
    ]
    assert all(b["baseline"] <= per_window / 10 * 1.5 for b in bursts)


@pytest.mark.parametrize("blocks", [LONG_BURSTS[1], LONG_BURSTS[2]])
def test_an_ordinary_user_spamming_over_a_third_of_the_windows_is_caught(
    tmp_path: Path, blocks: list[tuple[int, int]]
) -> None:
    """The same (30% and 35% of the windows) from the 21st busiest user, who writes its usual
    line or so a window all along: its bursts are reported on their exact windows, with its
    usual lines in them. Neither was reported before."""
    lines, per_window = spam(blocks, spammer="user20")
    bursts = of_type(anomalies_of([write_log(tmp_path / "a.log", lines)]), "user_burst")
    assert [(b["user"], b["window_start"], b["window_end"]) for b in bursts] == [
        ("user20", stamp(START + first * 60), stamp(START + (first + count) * 60))
        for first, count in blocks
    ]
    for b, (_, count) in zip(bursts, blocks, strict=True):
        assert per_window * count <= b["lines"] <= per_window * count * 1.2


def test_a_spammer_over_most_windows_is_its_usual_rate(tmp_path: Path) -> None:
    """Past half of the windows (here 66 of 120) the spammer's rate is what it usually does,
    and the busiest share: nothing tells it from an always-busy user, and the windows where it
    is silent are not bursts either. The limit of the rule."""
    lines, _ = spam([(30, 66)])
    assert of_type(anomalies_of([write_log(tmp_path / "a.log", lines)]), "user_burst") == []


@pytest.mark.parametrize("diurnal", [False, True])
def test_a_user_busy_all_the_time_is_quiet(tmp_path: Path, diurnal: bool) -> None:
    """The real busiest user, steady: a bot writing 300 lines a window (three times everyone
    else together), every window. With ``diurnal``, everyone else writes 5 times more in the
    second half, so the bot's share of a window swings from 75% to 37%: its usual rate, not the
    busiest share, is what it is judged by in the quiet half."""
    rng = random.Random(17)
    scale: Callable[[int], float] = (lambda w: 5.0 if w >= 60 else 1.0) if diurnal else (
        lambda w: 1.0)
    lines = steady_lines(rng, 120, {"api": (100.0, 0.0)}, [f"user{i}" for i in range(50)],
                         zipf_weights(50, 1.2), scale_of=scale)
    lines += [(START + w * 60 + rng.randrange(60), "INFO api bot tick")
              for w in range(120) for _ in range(poisson(rng, 300.0))]
    doc = anomalies_of([write_log(tmp_path / "a.log", lines)])
    assert of_type(doc, "user_burst") == []


@pytest.mark.parametrize(("on", "period"), [(1, 3), (2, 5)])
def test_a_job_every_few_windows_is_quiet(tmp_path: Path, on: int, period: int) -> None:
    """A job writing 100 lines a window (4.5x the busiest user's rate) in the first ``on``
    windows of every ``period``: in under half of the windows, so its median lines are 0 and
    each of its windows would be suspect, but its local mean (over 5 windows) is 40 or more all
    along, so it is judged by its usual rate, as before (and found steady)."""
    lines, _ = spam([])
    for w in range(120):
        if w % period < on:
            lines = with_user_lines(lines, "cron", w, [100])
    assert of_type(anomalies_of([write_log(tmp_path / "a.log", lines)]), "user_burst") == []


def _one_user(counts: dict[int, int], window_lines: dict[int, int]) -> tuple[float, float]:
    """(weighted median share, local median) of one user, from the array rules."""
    import numpy as np

    from mapreduce_logs.detect import arrays
    from mapreduce_logs.detect.table import Table

    table = Table.of(window_lines)
    w = np.array(sorted(counts), dtype=np.int64)
    c = np.array([counts[x] for x in sorted(counts)], dtype=np.int64)
    seg, starts, lengths = np.zeros(len(w), dtype=np.int64), np.array([0]), np.array([len(w)])
    pos, lines = table.find(w)
    share = arrays._weighted_median_shares(seg, c, lines, starts, lengths, np.array([0]), table)
    return float(share[0]), float(arrays._local_medians(seg, c, pos, starts, table)[0])


def test_weighted_median_share_and_local_median() -> None:
    """The user's share at the median of everyone else's lines; its local mean over 5 windows."""
    def share(counts: dict[int, int], window_lines: dict[int, int]) -> float:
        return _one_user(counts, window_lines)[0]

    def median(counts: dict[int, int], window_lines: dict[int, int]) -> float:
        return _one_user(counts, window_lines)[1]

    table = {0: 100, 1: 100, 2: 100, 3: 400}
    # shares 0.1, 0.2, 0.5 and (window 3) 0.75, with 90 + 80 + 50 + 100 lines of the others
    assert share({0: 10, 1: 20, 2: 50, 3: 300}, table) == 0.2
    # windows 2 and 3 without the user (share 0) hold 500 of the others' 680: more than half
    assert share({0: 10, 1: 20}, table) == 0.0
    assert share({0: 100, 1: 100, 2: 100, 3: 400}, table) == 1.0  # alone
    table = dict.fromkeys(range(20), 10)
    assert median({w: 5 for w in range(0, 20, 2)}, table) == 2.0  # 2 or 3 of 5 windows
    # means 3, 4, 5 (six times), 4, 3, 2, 1 and eight 0s
    assert median({w: 5 for w in range(10)}, table) == (2 + 3) / 2
    assert median({w: 5 for w in range(8)}, table) == 0.5  # (1 + 0) / 2: 10 windows > 0
    assert median({5: 50}, {5: 50, 10**9: 1}) == 5.0  # neighbours only


@pytest.mark.parametrize("workers", [1, 2])
def test_long_user_bursts_same_when_spilled_and_chunked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Two spammer runs over 35% of the windows, found the same whatever the chunks, workers
    and spilling: each partition filters its burst candidates with its own users' busiest share,
    which is never above the run's."""
    lines, _ = spam([(10, 21), (70, 21)])
    path = write_log(tmp_path / "a.log", lines)
    expected = assert_same_when_spilled_and_chunked(path, monkeypatch, tmp_path, workers)
    assert expected.count(b'"user": "spammer"') == 2


# --- the trimmed tenth, fixed examples ------------------------------------------------------------

TRIM_SIZES = [1, 2, 9, 10, 11, 19, 20, 21]


def tenth(windows: int) -> int:
    """The documented trim: a tenth of the windows, rounded up, never all of them."""
    return min(math.ceil(windows / 10), max(windows - 1, 0))


@pytest.mark.parametrize("n", TRIM_SIZES)
def test_trim_count_is_a_tenth_rounded_up_never_all(n: int) -> None:
    from mapreduce_logs.detect.rules import trim_count

    assert trim_count(n) == tenth(n)
    assert {9: 1, 10: 1, 11: 2, 19: 2}.get(n, tenth(n)) == tenth(n)


QUIET_KNOBS = Settings(burst_factor=10.0, burst_min_lines=20)
"""Thresholds no window of the examples below reaches: no suspect, the plain rate alone."""


@pytest.mark.parametrize("n", TRIM_SIZES[1:])
def test_user_rate_trims_its_tenth_of_busiest_windows(n: int) -> None:
    """A user with w + 1 lines in window w of 100: its busiest tenth (the last) is left out of
    its share (of all lines there) and its usual rate (per window kept)."""
    from mapreduce_logs.detect.digest import UserRate, WindowTable, user_rate

    k = tenth(n)
    kept = sum(range(1, n - k + 1))
    table = WindowTable.of(dict.fromkeys(range(n), 100))
    got = user_rate({w: w + 1 for w in range(n)}, table, QUIET_KNOBS)
    assert got == UserRate(kept / (100 * (n - k)), kept / (n - k))


@pytest.mark.parametrize("n", TRIM_SIZES[1:])
def test_user_rate_ties_drop_the_earlier_windows(n: int) -> None:
    from mapreduce_logs.detect.digest import UserRate, WindowTable, user_rate

    k = tenth(n)
    table = WindowTable.of({w: 100 + w for w in range(n)})
    got = user_rate(dict.fromkeys(range(n), 5), table, QUIET_KNOBS)
    assert got == UserRate(5 * (n - k) / sum(100 + w for w in range(k, n)), 5 * (n - k) / (n - k))


def test_a_user_in_at_most_a_tenth_of_the_windows_has_no_rate() -> None:
    from mapreduce_logs.detect.digest import WindowTable, user_rate

    table = WindowTable.of(dict.fromkeys(range(11), 100))  # a tenth of 11, rounded up: 2
    assert user_rate({0: 50, 5: 50}, table, QUIET_KNOBS) is None
    assert user_rate({0: 50, 5: 50, 7: 1}, table, QUIET_KNOBS) is not None


# --- ties and floors, fixed examples -------------------------------------------------------------


@pytest.mark.parametrize(("count", "lines", "severity"), [
    (1, 1001, "info"), (1, 1000, "warning"), (9, 1000, "warning"), (10, 1000, "critical")])
def test_line_severity_bounds(count: int, lines: int, severity: str) -> None:
    """info under 0.1% of the lines, warning under 1%, critical from 1%."""
    from mapreduce_logs.detect.rules import severity_for_count

    assert severity_for_count(count, lines) == severity


@pytest.mark.parametrize(("excess", "severity"), [
    (1.0, "info"), (1.49, "info"), (1.5, "warning"), (4.99, "warning"), (5.0, "critical")])
def test_window_severity_bounds(excess: float, severity: str) -> None:
    from mapreduce_logs.detect.rules import severity_for_excess

    assert severity_for_excess(excess) == severity


def test_adjacent_windows_form_one_anomaly_and_a_gap_splits_them() -> None:
    from mapreduce_logs.detect.rules import Flagged, _window_anomalies

    flagged = [Flagged(w, 30, 3.0, 10.0) for w in (1, 2, 4)]
    found = _window_anomalies(flagged, "user", b"u", "lines", Settings(window=60))
    assert [(f.body["window_start"], f.body["window_end"], f.body["lines"]) for f in found] == [
        ("1970-01-01T00:01:00Z", "1970-01-01T00:03:00Z", 60),
        ("1970-01-01T00:04:00Z", "1970-01-01T00:05:00Z", 30)]
    # a floor on the run: exactly the floor is enough
    assert len(_window_anomalies(flagged[:2], "user", b"u", "lines", Settings(), least=60)) == 1
    assert _window_anomalies(flagged[:2], "user", b"u", "lines", Settings(), least=61) == []


def test_runs_of_exactly_the_floor_are_suspect() -> None:
    import numpy as np

    from mapreduce_logs.detect.arrays import _in_long_runs

    windows, counts = np.array([1, 2, 5, 8]), np.array([10, 10, 19, 20])
    assert _in_long_runs(np.arange(4), windows, counts, 20).tolist() == [0, 1, 3]
    users = np.array([0, 0, 0, 1])  # a run does not go on from one user to the next
    assert _in_long_runs(np.arange(4), np.array([1, 2, 3, 4]), counts, 21, users).tolist() == [
        0, 1, 2]


def test_the_busiest_share_is_capped_below_one() -> None:
    """A user's expected lines take at most 0.99 of everyone else's, so one user holding all
    the traffic still has a finite expectation."""
    from mapreduce_logs.detect.rules import _burst_limits

    expected, threshold = _burst_limits(1.0, 0.0, 0, 1000, Settings(burst_factor=2.0))
    assert (expected, threshold) == (0.99 * 1000, 2.0 * 0.99 * 1000)
    assert _burst_limits(0.5, 0.0, 0, 1000, Settings(burst_factor=2.0))[0] == 500.0


def test_a_service_without_other_lines_is_judged_by_its_median() -> None:
    """With no other lines the ratio gives 0 expected errors; the median of its errors per
    window is the floor: median 5, so the threshold is max(20, 5 x 5) = 25 (22 is not a spike,
    40 is)."""
    from mapreduce_logs.detect.digest import spikes

    counts = dict.fromkeys(range(20), 5)
    counts.update({7: 22, 20: 40})
    found = spikes({(b"s", w): n for w, n in counts.items()}, {}, Settings(window=60))
    assert [(f.body["window_start"], f.body["errors"], f.body["baseline"]) for f in found] == [
        ("1970-01-01T00:20:00Z", 40, 5.0)]
