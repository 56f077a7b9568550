"""Each detector fires on the case SPEC.md section 4 names and stays quiet on steady traffic."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from mapreduce_logs import SerialExecutor, Settings, build_anomalies, run_files

START = 1_753_142_400  # 2025-07-22T00:00:00Z


def stamp(seconds: int) -> str:
    from mapreduce_logs.parse import NS, format_utc

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
) -> list[tuple[int, str]]:
    """(second, line) for steady traffic: per service (other lines, errors) per window, Poisson."""
    out: list[tuple[int, str]] = []
    for w in range(windows):
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
