"""Memory when one user or service has a great many windows: a long span at a fine window.

A subject's windows cannot be split between partitions, so these inputs are the hard case for
the memory budget (SCALING.md section 4). Two generated files, deterministic:

- ``year``: a year of minutes, 5 services logging every minute (one of them through the user
  ``monitor``, the rest through 1,000 users): 2,628,000 lines, 525,600 windows per service;
- ``persec-N``: one line a second for N seconds, all by the user ``sys`` (7 services): N
  windows of one user at ``--window 1``.

    python -m benchmarks.heavy_subjects                 # writes benchmarks/results/heavy_subjects.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile

from .memsample import run_measured

START = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())


def write_year(path: str) -> None:
    rng = random.Random(1)
    with open(path, "w") as f:
        for minute in range(525_600):
            stamp = dt.datetime.fromtimestamp(START + minute * 60, dt.UTC)
            ts = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
            for s in range(5):
                user = "monitor" if s == 0 else f"user{rng.randrange(1000)}"
                level = "ERROR" if rng.random() < 0.02 else "INFO"
                f.write(f"{ts} {level} Svc{s} {user} request handled\n")


def write_per_second(path: str, seconds: int) -> None:
    with open(path, "w") as f:
        for i in range(seconds):
            stamp = dt.datetime.fromtimestamp(START + i, dt.UTC)
            f.write(f"{stamp:%Y-%m-%dT%H:%M:%S}Z INFO Svc{i % 7} sys heartbeat ok\n")


CASES = [
    ("year", [], "500"),
    ("year", [], "200"),
    ("persec-1000000", ["--window", "1"], "500"),
    ("persec-3000000", ["--window", "1"], "500"),
    ("persec-6000000", ["--window", "1"], "500"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="bench-data", help="where the files are written")
    ap.add_argument("--workers", default="2")
    ap.add_argument("--out", default="benchmarks/results/heavy_subjects.md")
    args = ap.parse_args(argv)
    os.makedirs(args.data, exist_ok=True)
    rows = []
    for name, extra, memory in CASES:
        path = os.path.join(args.data, f"{name}.log")
        if not os.path.exists(path):
            if name == "year":
                write_year(path)
            else:
                write_per_second(path, int(name.split("-")[1]))
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "mapreduce_logs", "run", path, "--workers", args.workers,
                   "--memory-mb", memory, "--out", out, "--quiet", *extra]
            done = run_measured(cmd, os.devnull)
        rows.append(f"| {name} | {' '.join(extra) or '-'} | {memory} | {done.wall:.1f} | "
                    f"{done.peak / 1e6:.0f} | {done.returncode} |")
        print(rows[-1], flush=True)
    with open(args.out, "w") as f:
        f.write("| file | options | --memory-mb | wall s | peak MB | exit |\n|---|---|---|---|---|---|\n")
        f.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
