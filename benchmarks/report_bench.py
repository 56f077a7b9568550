"""report.html on big inputs: its size, and the time it takes after the summary.

Two cases:

- ``FILE`` (a real run): the file is counted as ``run`` counts it (processes, spilling past
  --memory-mb), then summary.json, anomalies.json and the page are built from the result, each
  timed; the page's size is measured. The case the page is bounded for is
  ``benchmarks/generate.py`` at 1 GiB with ~7 M distinct users:

      python -m benchmarks.generate bench-data/1g-7m-users.log --size 1G --users 10000000 \\
          --skew 0 --incidents 8 --seed 14
      python -m benchmarks.report_bench bench-data/1g-7m-users.log --workers 2

- ``--windows N`` (made up, no input): N distinct one-minute windows (random, over ~38 years)
  counted into timelines by chunks of a million as the mapper does (timed: ``timeline_seconds``,
  all chunks together), merged, and drawn with
  ``--anomalies`` error_spike and user_burst anomalies at random times. It measures what a run with
  millions of windows adds: the timelines' merges and the page.

Prints a table and writes it (markdown and JSON) under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

from mapreduce_logs.execute.base import SerialExecutor
from mapreduce_logs.execute.pool import PoolExecutor
from mapreduce_logs.ingest.parse import format_utc
from mapreduce_logs.model.partial import Partial, Timeline
from mapreduce_logs.pipeline import RunStats, run_files
from mapreduce_logs.report.documents import build_anomalies, build_summary
from mapreduce_logs.report.html import MAX_BYTES, build_page, page_data
from mapreduce_logs.report.timeline import points
from mapreduce_logs.settings import Settings


def _timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def real_run(path: str, workers: int, memory_mb: int) -> dict[str, Any]:
    settings = Settings(workers=workers, memory_mb=memory_mb)
    stats = RunStats()
    started = time.perf_counter()
    if workers > 1:
        with PoolExecutor(workers) as pool:
            partial = run_files([path], settings, pool, stats=stats, spill_dir=os.path.dirname(path) or ".")
    else:
        partial = run_files([path], settings, SerialExecutor(), stats=stats)
    counted = time.perf_counter() - started
    summary, t_summary = _timed(lambda: build_summary(partial, settings))
    anomalies, t_anomalies = _timed(lambda: build_anomalies(partial, settings))
    page, t_page = _timed(lambda: build_page(page_data(partial, summary, anomalies, settings.window)))
    pts = points(partial.timeline)
    return {
        "case": os.path.basename(path),
        "bytes": partial.bytes_read,
        "lines": partial.lines,
        "distinct_users": summary["distinct_users"],
        "anomalies": len(anomalies["anomalies"]),
        "timeline_buckets": len(partial.timeline.lines),
        "timeline_points": len(pts.lines) if pts else 0,
        "count_seconds": round(counted, 1),
        "summary_seconds": round(t_summary, 4),
        "anomalies_seconds": round(t_anomalies, 4),
        "page_seconds": round(t_page, 4),
        "page_bytes": len(page),
    }


def made_up(windows: int, anomalies_wanted: int, seed: int = 14) -> dict[str, Any]:
    import numpy as np

    rng = random.Random(seed)
    span = max(20_000_000, windows)  # minutes: ~38 years
    start = 29_000_000  # minutes since the epoch: 2025
    picked = np.random.default_rng(seed).permutation(span)[:windows] + start
    merged = Timeline()
    t_timeline = 0.0
    for at in range(0, windows, 1_000_000):
        keys = picked[at : at + 1_000_000].tolist()
        chunk = dict(zip(keys, (1 + w % 7 for w in keys), strict=True))
        errors = {w: 1 for w in keys if w % 5 == 0}
        t = time.perf_counter()
        merged.update(Timeline.of(60, chunk, errors))
        t_timeline += time.perf_counter() - t
    del picked
    partial = Partial(timeline=merged)
    settings = Settings()
    summary = build_summary(partial, settings)
    items = []
    for i in range(anomalies_wanted):
        minute = start + rng.randrange(span)
        kind = "error_spike" if i % 2 else "user_burst"
        subject = {"error_spike": "service", "user_burst": "user"}[kind]
        figure = {"error_spike": "errors", "user_burst": "lines"}[kind]
        items.append({"type": kind, "severity": "warning", subject: f"<name {i}> & \"quoted\"",
                      "window_start": format_utc(minute * 60 * 10**9),
                      "window_end": format_utc((minute + 1) * 60 * 10**9), figure: 40, "baseline": 2.0})
    items.sort(key=lambda a: (a["type"] != "error_spike", a["window_start"]))
    anomalies = {"anomalies": items, "counts": {"error_spike": len(items) // 2,
                                                "user_burst": len(items) - len(items) // 2}}
    page, t_page = _timed(lambda: build_page(page_data(partial, summary, anomalies, 60)))
    pts = points(merged)
    return {
        "case": f"made-up {windows:,} windows, {len(items):,} anomalies",
        "timeline_buckets": len(merged.lines),
        "timeline_points": len(pts.lines) if pts else 0,
        "timeline_seconds": round(t_timeline, 2),
        "page_seconds": round(t_page, 4),
        "page_bytes": len(page),
    }


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        out.append("| " + " | ".join(
            f"{row[k]:,}" if isinstance(row.get(k), int) else str(row.get(k, "")) for k in keys) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", help="log files to count (each a case)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-mb", type=int, default=500)
    ap.add_argument("--windows", type=int, default=0, help="also the made-up case with N windows")
    ap.add_argument("--anomalies", type=int, nargs="+", default=[100, 200_000],
                    help="made-up anomalies drawn, a case for each (default: 100 200000)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "report"))
    args = ap.parse_args(argv)
    rows = [real_run(path, args.workers, args.memory_mb) for path in args.files]
    if args.windows:
        rows += [made_up(args.windows, n) for n in args.anomalies]
    text = table(rows)
    print(text)
    with open(args.out + ".md", "w") as f:
        f.write(f"report.html on big inputs (limit {MAX_BYTES:,} bytes); "
                f"--workers {args.workers} --memory-mb {args.memory_mb}\n\n{text}\n")
    with open(args.out + ".json", "w") as f:
        json.dump(rows, f, indent=2)
        f.write("\n")
    return 0 if all(row["page_bytes"] <= MAX_BYTES for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
