"""The command line (docs/cli.md and docs/outputs.md), in-process through ``main(argv)``, and once as a
real ``python -m mapreduce_logs run`` subprocess."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import reference
import strategies

import mapreduce_logs.cli.common as common
import mapreduce_logs.cli.run as cli
import mapreduce_logs.pipeline as pipeline
import mapreduce_logs.reduce.budget as budget
import mapreduce_logs.reduce.reducer as reducer
import mapreduce_logs.reduce.spill as spill
import mapreduce_logs.reduce.tasks as tasks
import mapreduce_logs.report.output as output
from mapreduce_logs import Settings, map_split
from mapreduce_logs.cli import main
from mapreduce_logs.cli.parser import build_parser

OPTIONS = ["--out", "--workers", "--chunk-size", "--memory-mb", "--top", "--peak-hours",
           "--window", "--clock-skew", "--recursive", "--quiet"]
METRIC_KEYS = {"wall_seconds", "cpu_seconds", "peak_memory_mb", "workers", "chunks", "bytes",
               "lines", "throughput_mb_s"}


def sample(folder: Path) -> Path:
    """A small input folder with valid, malformed and blank lines in two files and a .gz."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [strategies.log_line(strategies.NOON + 37 * i, level, svc, user)
             for i, (level, svc, user) in enumerate(
                 [(b"INFO", b"auth", b"u1"), (b"ERROR", b"pay", b"u2"), (b"warning", b"auth", b"u1"),
                  (b"INFO", b"db", b"u3")] * 5)]
    (folder / "a.log").write_bytes(b"\n".join(lines[:10]) + b"\n\nnot a line\n")
    with gzip.open(folder / "b.log.gz", "wb") as f:
        f.write(b"\n".join(lines[10:]) + b"\r\n2025-07-22T12:00:00Z VERBOSE x y\n")
    (folder / ".hidden").write_bytes(b"2025-07-22T12:00:00Z INFO hidden u\n")
    for p in folder.iterdir():
        os.utime(p, ns=(strategies.NOON * 10**9, strategies.NOON * 10**9))
    return folder


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def assert_one_line_error(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mapreduce-logs: ")


# --- help and parsing -------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["watch", "--help"]])
def test_help_exits_0_and_lists_options(argv: list[str], capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    out = capsys.readouterr().out
    if argv == ["--help"]:
        assert "run" in out and "watch" in out
        return
    for option in OPTIONS:
        assert option in out
    if argv[0] == "watch":
        assert "--settle" in out and "--poll" in out


def test_defaults_follow_the_spec() -> None:
    args = build_parser().parse_args(["run", "x"])
    assert (args.out, args.workers, args.memory_mb, args.top, args.peak_hours, args.window,
            args.clock_skew) == ("output", os.cpu_count(), 500, 10, 3, 60, 300)
    assert not args.recursive and not args.quiet


def test_every_option_takes_effect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """All options at once: the outputs are the oracle's for the same options."""
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    (data / "sub").mkdir()
    (data / "sub" / "c.log").write_bytes(strategies.log_line(strategies.NOON, b"INFO", b"deep",
                                                             b"u9") + b"\n")
    status, _, err = run(["run", str(data), "--out", str(out), "--workers", "2",
                          "--chunk-size", "7", "--memory-mb", "300", "--top", "1",
                          "--peak-hours", "1", "--window", "30", "--clock-skew", "10",
                          "--recursive", "--quiet"], capsys)
    assert (status, err) == (0, "")
    files = sorted([*reference.list_folder(str(data)), str(data / "sub" / "c.log")])
    summary, anomalies = reference.documents(
        files, reference.Options(top=1, peak_hours=1, window=30, clock_skew=10))
    assert (out / "summary.json").read_bytes() == summary
    assert (out / "anomalies.json").read_bytes() == anomalies
    doc = read_json(out / "summary.json")
    assert len(doc["top_services"]) == 1 and len(doc["peak_hours"]) == 1
    assert doc["distinct_services"] == 4  # the recursive file was read
    assert read_json(out / "metrics.json")["workers"] == 2


def test_workers_and_chunk_size_do_not_change_the_outputs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = sample(tmp_path / "in")
    outputs = []
    for i, extra in enumerate([["--workers", "1"], ["--workers", "3", "--chunk-size", "1"],
                               ["--workers", "2", "--chunk-size", "64", "--memory-mb", "64"],
                               ["--workers", "1", "--chunk-size", str(10**18)]]):
        out = tmp_path / f"out{i}"
        assert run(["run", str(data), "--out", str(out), "--quiet", *extra], capsys)[0] == 0
        outputs.append(((out / "summary.json").read_bytes(), (out / "anomalies.json").read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2] == outputs[3]


@pytest.mark.parametrize("argv", [
    [],
    ["run"],
    ["frobnicate", "x"],
    ["run", "IN", "--bogus"],
    ["run", "IN", "--workers", "0"],
    ["run", "IN", "--workers", "two"],
    ["run", "IN", "--workers"],
    ["run", "IN", "--chunk-size", "0"],
    ["run", "IN", "--chunk-size", "-5"],
    ["run", "IN", "--chunk-size", "1.5"],
    ["run", "IN", "--memory-mb", "lots"],
    ["run", "IN", "--top", "-1"],
    ["run", "IN", "--peak-hours", "x"],
    ["run", "IN", "--window", "0"],
    ["run", "IN", "--clock-skew", "-1"],
    ["run", "IN", "--clock-skew", "1000000000001"],
    ["run", "IN", "--clock-skew", "1e13"],
    ["run", "IN", "--burst-factor", "inf"],
    ["run", "IN", "--spike-factor", "nan"],
    ["run", "IN", "--quiet", "--bogus", "IN"],
    ["run", "MISSING"],
    ["run", "IN", "MISSING"],
    ["run", "IN", "--spill-dir", "MISSING"],
])
def test_usage_errors_exit_2_in_one_line(argv: list[str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown options, missing paths and bad numbers: status 2, one line, no traceback, and
    no output written."""
    data = sample(tmp_path / "in")
    out = tmp_path / "out"
    argv = [str(data) if a == "IN" else str(tmp_path / "nope") if a == "MISSING" else a
            for a in argv]
    status, _, err = run([*argv, "--out", str(out)] if argv[:1] == ["run"] else argv, capsys)
    assert status == 2
    assert_one_line_error(err)
    if "MISSING" in argv or str(tmp_path / "nope") in argv:
        assert "nope" in err
    assert not (out / "summary.json").exists()


def test_messages_name_what_is_expected(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    data = sample(tmp_path / "in")
    for option, value, expected in [("--window", "0.5", "expected a whole number, got '0.5'"),
                                    ("--spike-factor", "x", "expected a number, got 'x'"),
                                    ("--burst-factor", "1e400", "expected a finite number")]:
        status, _, err = run(["run", str(data), option, value], capsys)
        assert status == 2 and expected in err, err


def test_clock_skew_takes_fractions_of_a_second(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--clock-skew 0.5: a line 0.7 s before the previous one went backwards, one 0.3 s
    before did not (the oracle with the same half second); 10 decimals are refused."""
    data, out = tmp_path / "in", tmp_path / "out"
    data.mkdir()
    (data / "a.log").write_bytes(
        b"2025-07-22T12:00:01.000Z INFO s u\n2025-07-22T12:00:00.300Z INFO s u\n"
        b"2025-07-22T12:00:00.900Z INFO s u\n2025-07-22T12:00:00.600Z INFO s u\n")
    assert run(["run", str(data), "--out", str(out), "--quiet", "--clock-skew", "0.5"],
               capsys)[0] == 0
    _, anomalies = reference.documents([str(data / "a.log")],
                                       reference.Options(clock_skew=Fraction(1, 2)))
    assert (out / "anomalies.json").read_bytes() == anomalies
    assert read_json(out / "anomalies.json")["counts"]["time_went_backwards"] == 1
    assert '"line": 2' in anomalies.decode() and '"line": 4' not in anomalies.decode()
    status, _, err = run(["run", str(data), "--clock-skew", "0.0000000001"], capsys)
    assert status == 2 and "9 decimals" in err


def test_paths_may_follow_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``run a.log --top 3 b.log`` reads both files, as ``run a.log b.log --top 3`` does."""
    data, one, two = sample(tmp_path / "in"), tmp_path / "one", tmp_path / "two"
    a, b = str(data / "a.log"), str(data / "b.log.gz")
    assert run(["run", a, "--top", "3", "--quiet", b, "--out", str(one)], capsys)[0] == 0
    assert run(["run", a, b, "--top", "3", "--quiet", "--out", str(two)], capsys)[0] == 0
    assert read_json(one / "summary.json")["totals"]["files"] == 2
    assert (one / "summary.json").read_bytes() == (two / "summary.json").read_bytes()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("mapreduce-logs ")


def test_an_output_that_cannot_be_written_is_a_usage_error_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder in the way of summary.json, or an output folder that refuses files: status 2
    at once, before the input is read."""
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    (out / "summary.json").mkdir(parents=True)
    monkeypatch.setattr(cli, "run_files", lambda *a, **k: pytest.fail("the input was read"))
    status, _, err = run(["run", str(data), "--out", str(out)], capsys)
    assert status == 2 and "it is a folder" in err
    assert_one_line_error(err)
    (out / "summary.json").rmdir()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(common.tempfile, "TemporaryFile", refuse)
    status, _, err = run(["run", str(data), "--out", str(out)], capsys)
    assert status == 2 and "cannot write in output folder" in err and "Permission denied" in err
    assert_one_line_error(err)


def test_the_outputs_of_an_earlier_run_are_not_input(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """--out inside the input folder: the second run reads the same logs as the first."""
    data = sample(tmp_path / "in")
    for _ in range(2):
        assert run(["run", str(data), "--out", str(data), "--quiet"], capsys)[0] == 0
    summary, _ = reference.documents([str(data / "a.log"), str(data / "b.log.gz")])
    assert (data / "summary.json").read_bytes() == summary


@pytest.mark.parametrize("where", ["out", "spill-dir"])
def test_spill_goes_to_a_hidden_folder_in_out_or_spill_dir(
        where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    data, out, elsewhere = sample(tmp_path / "in"), tmp_path / "out", tmp_path / "spill"
    elsewhere.mkdir()
    folders: list[str] = []

    class Recorded(spill.SpillStore):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            folders.append(self.folder)

    def tiny(knobs: Settings, workers: int, in_flight: int) -> budget.Budget:
        return budget.Budget(knobs.chunk_size, spill_entries=0, partition_entries=2)

    monkeypatch.setattr(pipeline, "plan", tiny)
    monkeypatch.setattr(reducer, "SpillStore", Recorded)
    extra = ["--spill-dir", str(elsewhere)] if where == "spill-dir" else []
    status, _, _ = run(["run", str(data), "--out", str(out), "--workers", "1", "--quiet", *extra],
                       capsys)
    assert status == 0
    assert len(folders) == 1
    parent, name = os.path.split(folders[0])
    assert parent == str(out if where == "out" else elsewhere)
    assert name.startswith(".")
    assert not os.path.exists(folders[0])
    assert sorted(os.listdir(elsewhere)) == []


# --- a run: outputs, metrics, report line -----------------------------------------------------


def test_run_writes_the_outputs_and_the_report(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    status, stdout, err = run(["run", str(data), "--out", str(out), "--workers", "1"], capsys)
    assert status == 0
    assert stdout == ""
    assert sorted(os.listdir(out)) == ["anomalies.json", "metrics.json", "report.html", "summary.json"]
    summary, anomalies = reference.documents(reference.list_folder(str(data)))
    assert (out / "summary.json").read_bytes() == summary
    assert (out / "anomalies.json").read_bytes() == anomalies
    totals = read_json(out / "summary.json")["totals"]
    assert totals["files"] == 2 and totals["malformed"] == 2 and totals["blank"] == 1

    metrics = read_json(out / "metrics.json")
    assert set(metrics) >= METRIC_KEYS
    assert (metrics["bytes"], metrics["lines"], metrics["workers"]) == (
        totals["bytes"], totals["lines"], 1)
    assert metrics["chunks"] >= 2 and metrics["peak_memory_mb"] > 0
    assert metrics["wall_seconds"] > 0 and metrics["cpu_seconds"] >= 0
    stages = metrics["stages"]
    assert stages and all(isinstance(v, int | float) and v >= 0 for v in stages.values())
    assert not METRIC_KEYS & set(read_json(out / "summary.json"))

    report = err.strip().splitlines()
    assert len(report) == 1, err
    for part in (f"{totals['bytes']} bytes", f"{totals['lines']} lines", " s ", "MB/s",
                 "peak memory", "1 worker;"):
        assert part in report[0]


def test_quiet_silences_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    assert run(["run", str(data), "--out", str(out), "--quiet"], capsys) == (0, "", "")
    assert (out / "metrics.json").exists()


def test_progress_bar_only_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample(tmp_path / "in")
    _, _, plain = run(["run", str(data), "--out", str(tmp_path / "o1"), "--workers", "1"], capsys)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _, _, tty = run(["run", str(data), "--out", str(tmp_path / "o2"), "--workers", "1"], capsys)
    assert "\r" not in plain
    assert "\r" in tty and "B" in tty


# --- exit 3 and 1 -----------------------------------------------------------------------------


@pytest.mark.parametrize("broken", [
    b"\x1f\x8b\x08\x00garbage that is not deflate data at all",
    gzip.compress(b"2025-07-22T12:00:00Z INFO auth u1\n" * 200)[:-12],
])
def test_unreadable_gz_exits_3_and_still_writes(tmp_path: Path, broken: bytes,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A corrupt or truncated .gz: status 3 naming it; the other files counted, outputs written."""
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    (data / "zz-broken.log.gz").write_bytes(broken)
    status, _, err = run(["run", str(data), "--out", str(out), "--quiet"], capsys)
    assert status == 3
    assert "zz-broken.log.gz" in err and "Traceback" not in err
    summary = read_json(out / "summary.json")
    assert summary["totals"]["valid"] >= 20
    assert (out / "anomalies.json").exists() and (out / "metrics.json").exists()


def test_folder_that_cannot_be_listed_exits_3_and_the_rest_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder without permission to list (given, or met by --recursive): status 3 naming it,
    every other file summarised, every output written, and metrics.json names it too."""
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    (data / "locked").mkdir()
    (data / "locked" / "x.log").write_bytes(b"2025-07-22T12:00:00Z INFO hidden u\n")
    scandir = os.scandir

    def refusing(path: Any = ".") -> Any:
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    for extra in (["--recursive"], [str(data / "locked")]):
        status, _, err = run(["run", str(data), *extra, "--out", str(out), "--quiet"], capsys)
        assert status == 3, err
        assert f"could not read {data / 'locked'}: cannot list the folder: Permission denied" in err
        summary, anomalies = reference.documents(reference.list_folder(str(data)))
        assert (out / "summary.json").read_bytes() == summary
        assert (out / "anomalies.json").read_bytes() == anomalies
        assert read_json(out / "metrics.json")["failed_inputs"] == [
            {"path": str(data / "locked"), "error": "cannot list the folder: Permission denied"}]


def test_truncated_gz_keeps_every_line_decompressed_before_the_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No complete line that gzip could give is lost (reading in blocks used to drop up to a
    block of them); the line the error cut is not counted."""
    body = b"".join(strategies.log_line(strategies.NOON + i, b"INFO", b"svc", b"u%d" % i) + b"\n"
                    for i in range(60_000))
    packed = gzip.compress(body)
    cut = packed[: len(packed) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    assert 0 < len(readable) < len(body)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log.gz").write_bytes(cut)
    out = tmp_path / "out"
    status, _, err = run(["run", str(tmp_path / "in"), "--out", str(out), "--quiet"], capsys)
    assert status == 3 and "a.log.gz" in err
    assert read_json(out / "summary.json")["totals"]["valid"] == readable.count(b"\n")


def test_read_error_counts_no_line_fragment(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A .gz that breaks after a MiB or more: whatever the engine keeps of it, it counts only
    lines that end in a newline it read, never the piece of a line cut by the read error
    (which could make up a user or service that is not in the file)."""
    data, out = tmp_path / "in", tmp_path / "out"
    data.mkdir()
    lines = [b"2025-07-22T12:00:00Z INFO auth user%d %s" % (i, os.urandom(20 + i % 37).hex().encode())
             for i in range(30_000)]
    content = b"\n".join(lines) + b"\n"
    (data / "a.log.gz").write_bytes(gzip.compress(content)[:-20_000])
    status, _, _ = run(["run", str(data), "--out", str(out), "--quiet"], capsys)
    assert status == 3
    totals = read_json(out / "summary.json")["totals"]
    assert totals["lines"] == content[: totals["bytes"]].count(b"\n")


def test_file_gone_after_discovery_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A file deleted between discovery and reading is named, the rest is still summarised."""
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    gone = str(data / "gone.log")
    found = [*reference.list_folder(str(data)), gone]
    monkeypatch.setattr(cli, "discover", lambda paths, recursive=False, failures=None: sorted(found))
    status, _, err = run(["run", str(data), "--out", str(out), "--quiet"], capsys)
    assert status == 3
    assert "gone.log" in err
    expected, _ = reference.documents(reference.list_folder(str(data)))
    assert (out / "summary.json").read_bytes() == expected


def test_unexpected_failure_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample(tmp_path / "in")

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "run_files", explode)
    status, _, err = run(["run", str(data), "--out", str(tmp_path / "out")], capsys)
    assert status == 1
    assert_one_line_error(err)
    assert "boom" in err


def _explode_on_b(split: Any, settings: Any, **options: Any) -> Any:
    """A mapper that fails on one file (top level, so a worker process can unpickle it)."""
    if os.path.basename(split.path).startswith("b"):
        raise ValueError("mapper failed")
    return map_split(split, settings, **options)


@pytest.mark.parametrize("workers", [
    "1",
    "2",
])
def test_worker_failure_exits_1_naming_the_split(tmp_path: Path, workers: str,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A mapper that raises stops the run: status 1, one line naming the file and byte range."""
    data = sample(tmp_path / "in")
    monkeypatch.setattr(tasks, "map_split", _explode_on_b)
    status, _, err = run(["run", str(data), "--out", str(tmp_path / "out"), "--workers", workers,
                          "--quiet"], capsys)
    assert status == 1
    assert_one_line_error(err)
    assert "b.log.gz" in err and "mapper failed" in err


def test_outputs_are_replaced_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A second run replaces the files; a run that dies while writing leaves the old files
    whole and no temporary file behind."""
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    assert run(["run", str(data), "--out", str(out), "--quiet"], capsys)[0] == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    (data / "c.log").write_bytes(b"2025-07-22T12:00:00Z INFO new u\n")

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    status, _, err = run(["run", str(data), "--out", str(out), "--quiet"], capsys)
    assert status != 0 and "Traceback" not in err
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    monkeypatch.undo()
    assert run(["run", str(data), "--out", str(out), "--quiet"], capsys)[0] == 0
    assert sorted(os.listdir(out)) == sorted(before)
    assert (out / "summary.json").read_bytes() != before["summary.json"]


def test_outputs_are_readable_as_the_umask_allows(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """New outputs get 0666 less the umask (not a temporary file's 0600); a replaced output
    keeps the permissions it was given."""
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    assert run(["run", str(data), "--out", str(out), "--quiet"], capsys)[0] == 0
    for name in ("summary.json", "anomalies.json", "metrics.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~output.umask(), name
    (out / "summary.json").chmod(0o640)
    assert run(["run", str(data), "--out", str(out), "--quiet"], capsys)[0] == 0
    assert stat.S_IMODE((out / "summary.json").stat().st_mode) == 0o640


def test_file_name_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Linux file name is bytes: one that is not UTF-8 is still a regular file of the folder,
    read like any other, and named in anomalies.json with its invalid bytes replaced."""
    data, out = sample(tmp_path / "in"), tmp_path / "out"
    with open(os.path.join(os.fsencode(data), b"c\xff.log"), "wb") as f:
        f.write(b"not a valid line\n2025-07-22T12:00:00Z INFO auth u1\n")
    status, _, err = run(["run", str(data), "--out", str(out), "--quiet"], capsys)
    assert (status, err) == (0, "")
    summary, anomalies = reference.documents(reference.list_folder(str(data)))
    assert "c\ufffd.log" in anomalies.decode()
    assert (out / "summary.json").read_bytes() == summary
    assert (out / "anomalies.json").read_bytes() == anomalies


# --- a real process ---------------------------------------------------------------------------


def test_subprocess_run(tmp_path: Path) -> None:
    """``python -m mapreduce_logs run DIR`` writes output/ in the working folder."""
    data = sample(tmp_path / "data")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(cli.__file__))), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "mapreduce_logs", "run", str(data)],
                          cwd=tmp_path, capture_output=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    assert len(done.stderr.decode().strip().splitlines()) == 1
    out = tmp_path / "output"
    summary, anomalies = reference.documents(reference.list_folder(str(data)))
    assert (out / "summary.json").read_bytes() == summary
    assert (out / "anomalies.json").read_bytes() == anomalies
    assert set(read_json(out / "metrics.json")) >= METRIC_KEYS
    assert sorted(os.listdir(out)) == ["anomalies.json", "metrics.json", "report.html", "summary.json"]


@pytest.mark.parametrize(("nbytes", "text"), [
    (0, "0 bytes"), (999, "999 bytes"), (1000, "1.0 kB"), (999_949, "999.9 kB"),
    (1_000_000, "1.0 MB"), (12_345_678_901, "12,345.7 MB")])
def test_sizes_in_the_report_line_are_powers_of_1000(nbytes: int, text: str) -> None:
    assert common.size_text(nbytes) == text
