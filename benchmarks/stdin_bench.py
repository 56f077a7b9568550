"""Standard input against the same bytes given as a file: speed and memory.

Three ways to read one file, in turns, ``--repeat`` times each:

- ``file``: ``run FILE`` (workers read byte ranges of the file themselves);
- ``redirect``: ``run - < FILE`` (standard input is the file, read as a stream);
- ``pipe``: ``cat FILE | run -`` (a real pipe).

Figures come from the run's own metrics.json (wall and CPU seconds, peak memory of its process
tree); the summary.json of every run must be the same bytes. The stream must go at least 80 % as
fast as the file and stay inside ``--memory-mb``.

    python -m benchmarks.generate /work/bench-data/500m.log --size 500M --users 2000000 --skew 1.05 --span 5d --seed 7
    python -m benchmarks.stdin_bench /work/bench-data/500m.log --workers 2 --memory-mb 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

MODES = ("file", "redirect", "pipe")


def run_once(mode: str, path: str, out: str, options: list[str]) -> dict[str, Any]:
    """One run; returns its metrics.json plus the bytes of its summary.json."""
    command = [sys.executable, "-m", "mapreduce_logs", "run", "--out", out, "--quiet", *options]
    if mode == "file":
        done = subprocess.run([*command, path], check=False, capture_output=True)
    elif mode == "redirect":
        with open(path, "rb") as stdin:
            done = subprocess.run([*command, "-"], stdin=stdin, check=False, capture_output=True)
    else:
        cat = subprocess.Popen(["cat", path], stdout=subprocess.PIPE)
        assert cat.stdout is not None
        done = subprocess.run([*command, "-"], stdin=cat.stdout, check=False, capture_output=True)
        cat.stdout.close()
        cat.wait()
    if done.returncode != 0:
        raise SystemExit(f"{mode}: exit {done.returncode}: {done.stderr.decode()[-500:]}")
    with open(os.path.join(out, "metrics.json"), "rb") as f:
        metrics: dict[str, Any] = json.load(f)
    with open(os.path.join(out, "summary.json"), "rb") as f:
        metrics["summary"] = f.read()
    return metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", help="a generated log file")
    ap.add_argument("--workers", default="2")
    ap.add_argument("--memory-mb", default="500")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/stdin.md")
    args = ap.parse_args(argv)
    options = ["--workers", args.workers, "--memory-mb", args.memory_mb]
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as scratch:
        for turn in range(args.repeat):
            for mode in MODES:
                got = run_once(mode, args.path, os.path.join(scratch, f"{mode}-{turn}"), options)
                runs[mode].append(got)
                print(f"{mode:8} wall {got['wall_seconds']:7.2f} s  cpu {got['cpu_seconds']:7.2f} s  "
                      f"peak {got['peak_memory_mb']:6.1f} MB", flush=True)
    summaries = {got.pop("summary") for results in runs.values() for got in results}
    assert len(summaries) == 1, "summary.json differs between the ways of reading"
    size = os.path.getsize(args.path)
    # On a shared machine a run can be slowed by others: the fastest of each is the fairest
    # comparison, the median is shown too.
    best = min(got["wall_seconds"] for got in runs["file"])
    rows = []
    for mode in MODES:
        walls = [got["wall_seconds"] for got in runs[mode]]
        cpu = statistics.median(got["cpu_seconds"] for got in runs[mode])
        peak = max(got["peak_memory_mb"] for got in runs[mode])
        rows.append(f"| {mode} | {' '.join(f'{w:.1f}' for w in walls)} | {min(walls):.2f} | "
                    f"{statistics.median(walls):.2f} | {cpu:.2f} | {size / 1e6 / min(walls):.1f} | "
                    f"{best / min(walls):.0%} | {peak:.0f} |")
    table = (
        f"{size / 1e6:,.0f} MB ({os.path.basename(args.path)}), --workers {args.workers}, "
        f"--memory-mb {args.memory_mb}, {args.repeat} runs each, taken in turns; "
        "summary.json identical in every run.\n\n"
        "| input | wall s, each run | best wall s | median wall s | median CPU s | MB/s (best) "
        "| speed vs file (best) | peak MB |\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n"
    )
    print(table)
    with open(args.out, "w") as f:
        f.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
