"""Profile a whole run in one process: where the time of split, map, reduce, spill and digest goes.

    python -m benchmarks.profile_run FILE [--top 25]

Runs ``run_files`` with a SerialExecutor (so every stage is in this process, where cProfile
sees it) and prints the stage seconds and the functions by their own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from mapreduce_logs import SerialExecutor, Settings, run_files
from mapreduce_logs.pipeline import RunStats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    args = parser.parse_args()
    stats = RunStats()
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    partial = run_files([args.file], Settings(), SerialExecutor(), stats=stats)
    profile.disable()
    wall = time.perf_counter() - started
    stages = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in stats.stages.items())
    print(f"{partial.bytes_read:,} bytes, {partial.lines:,} lines, {stats.chunks} chunks, "
          f"{wall:.2f} s under the profiler: {stages}")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
