"""The documents (``report``): every ranking's tie-break, the hour labels, the order of the
anomalies and their examples, on fixed examples whose expectations come from the documented
rules (by hand), with ties written to the file in the order the rule does not give them, so
that a ranking that fell back on arrival order would show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mapreduce_logs import SerialExecutor, Settings, build_anomalies, build_summary, run_files
from mapreduce_logs.report.documents import HOURS

DAY = "2024-03-01"


def summarise(tmp_path: Path, lines: list[str], *more: list[str],
              **options: Any) -> tuple[dict[str, Any], ...]:
    """The summary and anomalies of ``lines`` as a.log (and each of ``more`` as a file after)."""
    paths = []
    for i, content in enumerate([lines, *more]):
        path = tmp_path / f"{'abcdefgh'[i]}.log"
        path.write_bytes("".join(f"{line}\n" for line in content).encode())
        paths.append(str(path))
    settings = Settings(workers=1, **options)
    partial = run_files(paths, settings, SerialExecutor())
    return build_summary(partial, settings), build_anomalies(partial, settings)


def at(hour: int, level: str = "INFO", service: str = "svc", user: str = "u") -> str:
    return f"{DAY}T{hour:02d}:00:00Z {level} {service} {user} m"


def test_hour_labels() -> None:
    """Hour h is ``hh:00-(h+1):00``, and hour 23 ends at 00:00."""
    assert HOURS[0] == "00:00-01:00"
    assert HOURS[9] == "09:00-10:00"
    assert HOURS[23] == "23:00-00:00"
    assert len(set(HOURS)) == 24


def test_levels_by_count_then_name(tmp_path: Path) -> None:
    """WARN, ERROR and DEBUG tie (3 each, in that arrival order): by name after the count."""
    lines = [at(1, level) for level in ["WARN"] * 3 + ["ERROR"] * 3 + ["DEBUG"] * 3 + ["INFO"] * 4
             + ["FATAL"]]
    summary, _ = summarise(tmp_path, lines)
    assert list(summary["log_levels"].items()) == [
        ("INFO", 4), ("DEBUG", 3), ("ERROR", 3), ("WARN", 3), ("FATAL", 1)]


@pytest.mark.parametrize("top", [1, 3, 10])
def test_top_services_and_users_by_count_then_code_point(tmp_path: Path, top: int) -> None:
    """Five names tie at 3 lines (arriving é, b, a, Z, B); code-point order puts upper case
    first and é (U+00E9) after every ASCII letter. "c" leads with 5."""
    names = ["é", "b", "a", "Z", "B"]
    lines = [at(2, service=n, user=n) for n in names for _ in range(3)]
    lines += [at(2, service="c", user="c")] * 5 + [at(2, service="d", user="d")]
    ranked = ["c", "B", "Z", "a", "b", "é", "d"][:top]
    counts = {"c": 5, "d": 1, **dict.fromkeys(names, 3)}
    summary, _ = summarise(tmp_path, lines, top=top)
    for kind in ("services", "users"):
        assert summary[f"top_{kind}"] == ranked
        assert list(summary[f"{kind[:-1]}_counts"].items()) == [(n, counts[n]) for n in ranked]
        assert summary[f"distinct_{kind}"] == 7


@pytest.mark.parametrize("peaks", [0, 1, 3, 4, 6])
def test_peak_hours_by_count_then_hour_without_empty_hours(tmp_path: Path, peaks: int) -> None:
    """Hours 23, 10 and 3 tie at 5 lines (arriving in that order), hour 4 has 2, the rest none:
    the peaks are 03, 10, 23 then 04, and never an hour without lines."""
    lines = [at(h) for h in (23, 10, 3) for _ in range(5)] + [at(4)] * 2
    summary, _ = summarise(tmp_path, lines, peak_hours=peaks)
    assert summary["peak_hours"] == ["03:00-04:00", "10:00-11:00", "23:00-00:00",
                                     "04:00-05:00"][:peaks]
    hourly = summary["hourly_counts"]
    assert list(hourly) == HOURS
    assert hourly["23:00-00:00"] == 5 and sum(hourly.values()) == 17


def test_an_offset_moves_a_line_into_hour_23_of_the_day_before(tmp_path: Path) -> None:
    summary, _ = summarise(tmp_path, ["2025-07-22T01:30:00+02:00 INFO a b"])
    assert summary["hourly_counts"]["23:00-00:00"] == 1
    assert summary["peak_hours"] == ["23:00-00:00"]
    assert summary["time_range"] == {"first": "2025-07-21T23:30:00Z",
                                     "last": "2025-07-21T23:30:00Z"}


def test_malformed_reasons_in_their_order_with_zeros(tmp_path: Path) -> None:
    summary, _ = summarise(tmp_path, ["x y", "2024-02-30T00:00:00Z INFO a b", "x y z"])
    assert list(summary["malformed"].items()) == [
        ("too_long", 0), ("too_few_fields", 2), ("bad_timestamp", 1), ("unknown_level", 0),
        ("bad_encoding", 0)]


def spiky(service: str, spikes: set[int]) -> list[str]:
    """30 windows of a minute: 1 error and 10 other lines each, 40 errors in ``spikes`` (each
    error from a user of its own: no user bursts)."""
    lines = []
    for w in range(30):
        stamp = f"{DAY}T05:{w:02d}:00Z"
        lines += [f"{stamp} INFO {service} u{w % 3} m"] * 10
        lines += [f"{stamp} ERROR {service} {service}{w}e{i} m"
                  for i in range(40 if w in spikes else 1)]
    return lines


def test_anomalies_by_type_then_time_then_subject(tmp_path: Path) -> None:
    """Written zeta first, unknown levels BETA before ALPHA, a bad timestamp before a line of
    too few fields: the list goes by type (documented order), then window start, then subject
    (the service, the reason, the upper-cased level token)."""
    lines = ["2024-03-01T05:00:00Z beta s u", "2024-02-30T00:00:00Z INFO a b", "x y",
             "2024-03-01T05:00:00Z alpha s u"]
    _, doc = summarise(tmp_path, lines + spiky("zeta", {5, 12}), spiky("alpha", {12, 20}))
    keys = [(a["type"], a.get("window_start"), a.get("service") or a.get("reason")
             or a.get("level")) for a in doc["anomalies"]]
    assert keys == [
        ("malformed_lines", None, "bad_timestamp"),
        ("malformed_lines", None, "too_few_fields"),
        ("malformed_lines", None, "unknown_level"),
        ("unknown_level", None, "ALPHA"),
        ("unknown_level", None, "BETA"),
        ("error_spike", f"{DAY}T05:05:00Z", "zeta"),
        ("error_spike", f"{DAY}T05:12:00Z", "alpha"),
        ("error_spike", f"{DAY}T05:12:00Z", "zeta"),
        ("error_spike", f"{DAY}T05:20:00Z", "alpha"),
    ]


def test_examples_are_the_first_five_with_1_based_line_numbers(tmp_path: Path) -> None:
    lines = [at(1)] + [f"bad {i}" for i in range(8)]
    _, doc = summarise(tmp_path, lines)
    (malformed,) = doc["anomalies"]
    assert malformed["count"] == 8
    assert [(e["line"], e["text"]) for e in malformed["examples"]] == [
        (i + 2, f"bad {i}") for i in range(5)]


def test_at_most_five_examples_over_several_files(tmp_path: Path) -> None:
    """The first five in input order, across files: four of a.log, then one of b.log."""
    first = [f"bad a{i}" for i in range(4)]
    second = [f"bad b{i}" for i in range(4)]
    _, doc = summarise(tmp_path, first, second)
    (malformed,) = doc["anomalies"]
    assert malformed["count"] == 8
    assert [(e["file"][-5:], e["line"], e["text"]) for e in malformed["examples"]] == [
        *[("a.log", i + 1, f"bad a{i}") for i in range(4)], ("b.log", 1, "bad b0")]
