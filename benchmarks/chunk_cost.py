"""What one chunk costs, per input byte: the peak of the worker that maps it and the memory its
result takes in the main process. The measurements behind CHUNK_GROWTH, COLUMN_GROWTH and
COLUMN_SHIPPED (``mapreduce_logs/reduce/budget.py``; SCALING.md section 6).

    python -m benchmarks.chunk_cost FILE [FILE...] --mib 2 8 32 [--window 1]

For each file, a chunk of the given size from its middle is mapped in a forked process, once
shipped whole as dicts (``dict``: before the run spills), once with its tables written to a spill
folder as columns (``columns``: once it spills), once as well keeping none of its unknown level
tokens (``columns, tokens known``: the reported ones are known). Worker: the forked process's
peak RSS (VmHWM, reset after a warm-up chunk) over its RSS before, per chunk byte, without and
with the pickling of its result; retained: its RSS after the result is gone and the heap given
back. Main process: the bytes the unpickled result holds (tracemalloc), and the peak while it is
unpickled plus the pickle.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
import tracemalloc

from mapreduce_logs.execute.heap import give_back_free_memory
from mapreduce_logs.ingest.split import split_file
from mapreduce_logs.reduce.spill import SpillStore
from mapreduce_logs.reduce.tasks import map_chunk
from mapreduce_logs.settings import Settings

MODES = {"dict": (False, None), "columns": (True, None), "columns, tokens known": (True, frozenset())}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def measure(path: str, size: int, mode: str, settings: Settings, folder: str) -> dict[str, float]:
    spill, kept = MODES[mode]
    store = SpillStore(64, 100_000, folder)
    target = store.target if spill else None
    splits = list(split_file(path, size))
    split = splits[len(splits) // 2]
    warm = next(split_file(path, 65_536))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        os.close(read)
        map_chunk((0, warm, target, kept, 0), settings)  # imports, numpy, the kernel
        gc.collect()
        base = _status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM
        result = map_chunk((1, split, target, kept, 0), settings)
        peak = _status("VmHWM")
        data = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        pickled_peak = _status("VmHWM")
        del result
        gc.collect()
        give_back_free_memory()
        kept_rss = _status("VmRSS")
        os.write(write, pickle.dumps((base, peak, pickled_peak, kept_rss, data)))
        os._exit(0)
    os.close(write)
    parts = []
    while chunk := os.read(read, 1 << 20):
        parts.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    base, peak, pickled_peak, kept_rss, data = pickle.loads(b"".join(parts))
    tracemalloc.start()
    shipped = pickle.loads(data)
    held, unpickling = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del shipped
    store.close()
    n = (split.end or 0) - split.start
    return {"bytes": n, "worker": (peak - base) / n, "worker_pickled": (pickled_peak - base) / n,
            "retained": (kept_rss - base) / n, "main": held / n, "main_peak": (unpickling + len(data)) / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--mib", type=float, nargs="+", default=[8.0], help="chunk sizes, MiB")
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a mode, measured in this process
    args = parser.parse_args(argv)
    if args.one is not None:
        with tempfile.TemporaryDirectory() as folder:
            m = measure(args.files[0], int(args.mib[0] * 2**20), args.one,
                        Settings(window=args.window), folder)
        print(json.dumps(m))
        return 0
    print("| file | MiB | mode | worker | worker, pickling | retained | main | main, unpickling |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for path in args.files:
        for mib in args.mib:
            for mode in MODES:
                # Each in a new interpreter: a forked worker must not reuse freed memory of
                # the measurements before it.
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.chunk_cost", path, "--mib", str(mib),
                     "--window", str(args.window), "--one", mode],
                    check=True, capture_output=True, text=True).stdout
                m = json.loads(out)
                print(f"| {os.path.basename(path)} | {m['bytes'] / 2**20:.1f} | {mode} | "
                      f"{m['worker']:.2f} | {m['worker_pickled']:.2f} | {m['retained']:.2f} | "
                      f"{m['main']:.2f} | {m['main_peak']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
