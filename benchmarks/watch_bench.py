"""Measure ``watch``: latency of a new file, per-update latency on a large state, memory, checkpoint.

Two scenarios, each against a real ``python -m mapreduce_logs watch`` process whose whole process
tree is sampled for memory (PSS, every 50 ms, the product's own sampler):

``arrive FILE...``
    For each FILE, a fresh empty watched folder; once the watcher is up, FILE appears in it at
    once (a hard link made under a temporary name, then renamed). Reports the seconds from the
    rename to the first update in ``summary.json`` and to the complete count, and the peak memory.

``updates FILE``
    FILE appears in an empty watched folder and is counted (the large state, e.g. 20 M distinct
    users); then ``--updates`` times ``--lines`` new lines are appended to another file, and
    each is timed from the append to ``summary.json`` showing it. Reports the per-update latency,
    the commit time the watcher logs, the checkpoint's size and the bytes the watcher wrote for
    each update (checkpoint and outputs, from ``/proc/PID/io``).

Results print as a table and go to ``benchmarks/results/NAME.json``. The watcher is stopped with
SIGTERM (its pool too, by pid) whatever happens.

    python -m benchmarks.watch_bench arrive bench-data/zipf-10M.log bench-data/zipf-100M.log
    python -m benchmarks.watch_bench updates bench-data/new-20M.log --updates 10 --lines 1000
    python -m benchmarks.watch_bench arrive bench-data/new-400M.log.gz --memory-mb 200
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from mapreduce_logs.report.metrics import MemorySampler
from mapreduce_logs.watch.checkpoint import DATABASE

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
UPDATE_LINE = re.compile(r"watch: (.*): ([+-][\d,]+) lines in ([\d.]+) s \(commit and outputs ([\d.]+) s\)")


def count_lines(path: str) -> int:
    """Lines in ``path`` (read through gzip for a ``.gz``)."""
    lines = 0
    last = b"\n"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        while block := f.read(16 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def summary_lines(out: str) -> int | None:
    try:
        with open(os.path.join(out, "summary.json"), "rb") as f:
            return int(json.loads(f.read())["totals"]["lines"])
    except (OSError, ValueError, KeyError):
        return None


def _counted(out: str, lines: int | None) -> bool:
    """Whether ``summary.json`` counts ``lines`` lines (None: any at all)."""
    got = summary_lines(out)
    return bool(got) if lines is None else got == lines


def wait_for(done: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the watcher, then make sure nothing it started is left (by pid)."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@contextlib.contextmanager
def watching(folder: str, out: str, log: str, args: argparse.Namespace) -> Iterator[tuple[subprocess.Popen[bytes], MemorySampler]]:
    cmd = [sys.executable, "-m", "mapreduce_logs", "watch", folder, "--out", out,
           "--workers", str(args.workers), "--memory-mb", str(args.memory_mb)]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        with MemorySampler(proc.pid) as sampler:
            if not wait_for(lambda: summary_lines(out) is not None, 120):
                raise RuntimeError(f"the watcher did not start: see {log}")
            yield proc, sampler
            _stop(proc)
    finally:
        _stop(proc)


def appear(source: str, folder: str) -> float:
    """Make ``source`` appear in ``folder`` at once; the monotonic time of the rename."""
    name = os.path.basename(source)
    temp = os.path.join(folder, name + ".part")
    os.link(source, temp)
    moment = time.monotonic()
    os.rename(temp, os.path.join(folder, name))
    return moment


def update_lines(log: str) -> list[dict[str, Any]]:
    with open(log, encoding="utf-8", errors="replace") as f:
        return [
            {"file": m[1], "lines": int(m[2].replace(",", "")), "seconds": float(m[3]),
             "commit_seconds": float(m[4])}
            for m in map(UPDATE_LINE.search, f) if m
        ]


def checkpoint_bytes(out: str) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(os.path.join(out, ".watch", DATABASE + suffix))
    return total


def written(pid: int) -> int:
    """Bytes process ``pid`` has passed to write() so far (Linux): checkpoint and outputs."""
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        return int(next(line for line in f if line.startswith("wchar:")).split()[1])


def load() -> float:
    return os.getloadavg()[0]


def fresh_folders(scratch: str) -> tuple[str, str, str]:
    """(an empty watched folder, an empty output folder, the watcher's log path) in ``scratch``."""
    folder, out = os.path.join(scratch, "in"), os.path.join(scratch, "out")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    os.mkdir(folder)
    return folder, out, os.path.join(scratch, "watch.log")


def arrive(args: argparse.Namespace, scratch: str) -> list[dict[str, Any]]:
    rows = []
    for source in args.files:
        expected = count_lines(source)
        folder, out, log = fresh_folders(scratch)
        load_before = load()
        with watching(folder, out, log, args) as (_proc, sampler):
            idle = sampler.peak
            moment = appear(source, folder)
            wait_for(functools.partial(_counted, out, None), args.timeout)
            first = time.monotonic() - moment
            done = wait_for(functools.partial(_counted, out, expected), args.timeout)
            complete = time.monotonic() - moment if done else None
            peak = sampler.peak
            size = checkpoint_bytes(out)
        updates = update_lines(log)
        rows.append({
            "file": source, "bytes": os.path.getsize(source), "lines": expected,
            "first_update_s": round(first, 2),
            "complete_s": None if complete is None else round(complete, 2),
            "peak_memory_mb": round(peak / 1e6, 1), "idle_memory_mb": round(idle / 1e6, 1),
            "updates": len(updates),
            "commit_s_median": statistics.median(u["commit_seconds"] for u in updates) if updates else None,
            "commit_s_max": max((u["commit_seconds"] for u in updates), default=None),
            "checkpoint_mb": round(size / 1e6, 1),
            "load": [round(load_before, 1), round(load(), 1)],
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def updates(args: argparse.Namespace, scratch: str) -> list[dict[str, Any]]:
    source = args.files[0]
    base = count_lines(source)
    folder, out, log = fresh_folders(scratch)
    live = os.path.join(folder, "live.log")
    rows: list[dict[str, Any]] = []
    load_before = load()
    with watching(folder, out, log, args) as (proc, sampler):
        moment = appear(source, folder)
        if not wait_for(lambda: summary_lines(out) == base, args.timeout, 0.1):
            raise RuntimeError(f"{source} was not counted within {args.timeout} s")
        ingest = time.monotonic() - moment
        ingest_peak = sampler.peak
        size = checkpoint_bytes(out)
        print(json.dumps({"ingest_s": round(ingest, 1), "peak_memory_mb": round(ingest_peak / 1e6, 1),
                          "checkpoint_mb": round(size / 1e6, 1)}), flush=True)
        total = base
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.stamp))
        for i in range(args.updates):
            lines = []
            for j in range(args.lines):
                # Half the lines for users already counted, half for new ones.
                user = f"user{j}" if j % 2 else f"live{i}-{j}"
                lines.append(f"{stamp} INFO svc{j % 7} {user} update {i}\n")
            data = "".join(lines).encode()
            before_io = written(proc.pid)
            with open(live, "ab") as f:
                f.write(data)
            moment = time.monotonic()
            total += args.lines
            ok = wait_for(functools.partial(_counted, out, total), args.timeout)
            latency = round(time.monotonic() - moment, 3) if ok else None
            if rows:
                rows[-1]["bytes_written"] = before_io - rows[-1].pop("io_before")
                print(json.dumps(rows[-1]), flush=True)
            rows.append({"update": i, "latency_s": latency, "io_before": before_io})
        time.sleep(1)  # the last update's anomalies.json is written after summary.json
        rows[-1]["bytes_written"] = written(proc.pid) - rows[-1].pop("io_before")
        print(json.dumps(rows[-1]), flush=True)
        peak = sampler.peak
        size = checkpoint_bytes(out)
    logged = [u for u in update_lines(log) if u["file"].endswith("live.log")]
    for row, u in zip(rows, logged, strict=False):
        row["watch_seconds"] = u["seconds"]
        row["commit_seconds"] = u["commit_seconds"]
    return [{"file": source, "lines": base, "ingest_s": round(ingest, 1),
             "ingest_peak_memory_mb": round(ingest_peak / 1e6, 1),
             "peak_memory_mb": round(peak / 1e6, 1), "checkpoint_mb": round(size / 1e6, 1),
             "load": [round(load_before, 1), round(load(), 1)], "updates": rows}]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=["arrive", "updates"])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-mb", type=int, default=500)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--lines", type=int, default=1000, help="lines per update (updates)")
    ap.add_argument("--stamp", type=int, default=1753142400 + 12 * 3600,
                    help="epoch seconds of the appended lines (updates)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--scratch", default=None, help="folder for the watched copy and outputs")
    ap.add_argument("--name", default=None, help="results/NAME.json")
    args = ap.parse_args(argv)
    scratch = args.scratch or tempfile.mkdtemp(prefix="watch-bench-")
    os.makedirs(scratch, exist_ok=True)
    try:
        rows = arrive(args, scratch) if args.scenario == "arrive" else updates(args, scratch)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.name:
        RESULTS.mkdir(parents=True, exist_ok=True)
        with open(RESULTS / f"{args.name}.json", "w", encoding="utf-8") as f:
            json.dump({"command": sys.argv, "rows": rows}, f, indent=1)
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
