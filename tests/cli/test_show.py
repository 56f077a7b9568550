"""mapreduce-logs show: the JSON outputs at a glance, aligned, coloured only on a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mapreduce_logs.cli import main
from mapreduce_logs.cli.show import Outputs, cells, fit, render

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "data")


@pytest.fixture(scope="module")
def shipped_out(tmp_path_factory: Any) -> str:
    out = str(tmp_path_factory.mktemp("show") / "out")
    assert main(["run", SHIPPED, "--out", out, "--quiet", "--workers", "1"]) == 0
    return out


def test_show_prints_what_the_outputs_hold(shipped_out: str, capsys: Any) -> None:
    assert main(["show", shipped_out]) == 0
    shown = capsys.readouterr().out
    summary = json.loads(Path(shipped_out, "summary.json").read_bytes())
    anomalies = json.loads(Path(shipped_out, "anomalies.json").read_bytes())
    assert "\x1b[" not in shown  # captured: not a terminal, no colour
    for level, n in summary["log_levels"].items():
        assert any(line.split()[:2] == [level, f"{n:,}"] for line in shown.splitlines())
    for name in summary["top_services"] + summary["top_users"]:
        assert name in shown
    for hour in summary["peak_hours"]:
        assert f"peak {hour}" in shown
    for severity in ("critical", "warning", "info"):
        n = sum(a["severity"] == severity for a in anomalies["anomalies"])
        assert (f"{severity} ({n:,})" in shown) == (n > 0)


def test_columns_line_up(shipped_out: str, capsys: Any) -> None:
    """The counts of a list end in the same terminal column, wide characters included."""
    assert main(["show", shipped_out]) == 0
    shown = capsys.readouterr().out.splitlines()
    start = shown.index("Top services  of 10")
    rows = shown[start + 1 : start + 11]
    ends = {cells(row.split("%")[0]) for row in rows}
    assert len(ends) == 1, rows


def test_colour_on_request_and_never_when_piped(shipped_out: str, capsys: Any) -> None:
    assert main(["show", shipped_out, "--color", "always"]) == 0
    assert "\x1b[1m" in capsys.readouterr().out
    piped = subprocess.run([sys.executable, "-m", "mapreduce_logs", "show", shipped_out],
                           capture_output=True, check=True, env={**os.environ, "TERM": "xterm"})
    assert b"\x1b" not in piped.stdout and piped.stderr == b""


def test_no_outputs_is_a_clear_usage_error(tmp_path: Any, capsys: Any) -> None:
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no summary.json in" in err
    assert main(["show", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text("{not json")
    assert main(["show", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_show_defaults_to_output(tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", SHIPPED, "--quiet", "--workers", "1"]) == 0
    assert main(["show"]) == 0
    assert "Top users" in capsys.readouterr().out


def test_names_cannot_drive_the_terminal() -> None:
    summary = {"totals": {"valid": 3}, "log_levels": {"INFO": 3},
               "user_counts": {"\x1b]0;pwned\x07\x1b[2J": 3}, "service_counts": {"検索": 3},
               "hourly_counts": {}, "peak_hours": []}
    anomalies = {"anomalies": [{"type": "user_burst", "severity": "critical", "user": "\x1b[31m",
                                "window_start": "2025-07-22T10:00:00Z", "lines": 50, "baseline": 1}],
                 "counts": {"user_burst": 1}}
    text = render(Outputs(summary, anomalies, None))
    assert "\x1b" not in text and "\x07" not in text
    assert "\u241b]0;pwned\u2407" in text


def test_fit_counts_wide_characters() -> None:
    assert cells("検索abc") == 7
    assert cells(fit("検索サービス", 7)) == 7
    assert fit("abc", 5) == "abc  "
    assert fit("abcdef", 4) == "abc\u2026"


def test_an_empty_run_shows(tmp_path: Any, capsys: Any) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    out = str(tmp_path / "out")
    assert main(["run", str(tmp_path / "empty.log"), "--out", out, "--quiet"]) == 0
    assert main(["show", out]) == 0
    shown = capsys.readouterr().out
    assert "no valid line" in shown and "Anomalies  0" in shown
