"""The Dask executor against local processes on the same machine: one file run both ways, the
cost of a task on each executor, and the size of what a chunk's task sends back.

    python -m benchmarks.cluster_bench FILE [--workers 2] [--repeat 2]

Starts ``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` on loopback, runs the
command with ``--scheduler`` and without (``--workers N``), checks both give the same bytes,
and writes benchmarks/results/cluster.md and .json. Needs the [dask] extra."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.memsample import TreeSampler, run_measured
from mapreduce_logs import PoolExecutor, Settings, split_file
from mapreduce_logs.execute.cluster import DaskExecutor
from mapreduce_logs.reduce.tasks import map_chunk

RESULTS = Path(__file__).parent / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _started(command: list[str], log: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _noop(n: int) -> int:
    return n


def _tasks_per_second(executor: Any, n: int) -> float:
    started = time.perf_counter()
    assert sorted(executor.imap(_noop, range(n))) == list(range(n))
    return n / (time.perf_counter() - started)


def _result_bytes(path: str, chunk: int) -> tuple[int, int]:
    """Pickled bytes of the first chunk's result, and the chunk's own size."""
    split = next(iter(split_file(path, chunk)))
    result = map_chunk((0, split, None, None, 0), Settings())
    return len(pickle.dumps(result, pickle.HIGHEST_PROTOCOL)), (split.end or 0) - split.start


def _run(cmd: list[str], out: str) -> dict[str, Any]:
    run = run_measured(cmd, os.devnull)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {run.stderr}")
    metrics: dict[str, Any] = json.loads(Path(out, "metrics.json").read_text())
    return {"wall": run.wall, "client_peak_mb": run.peak / 1e6, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GB", help="each dask worker's --memory-limit")
    ap.add_argument("--tasks", type=int, default=2000, help="no-op tasks timed per executor")
    ap.add_argument("--memory-mb", type=int, default=500, help="the command's --memory-mb")
    ap.add_argument("--name", default="cluster")
    args = ap.parse_args(argv)
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    dask = dask if os.path.exists(dask) else (shutil.which("dask") or "dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    work = tempfile.mkdtemp(prefix="cluster-bench-")
    rows: dict[str, list[dict[str, Any]]] = {"processes": [], "dask": []}
    base = [sys.executable, "-m", "mapreduce_logs", "run", args.file, "--quiet",
            "--memory-mb", str(args.memory_mb)]
    figures: dict[str, Any] = {"file": args.file, "bytes": os.path.getsize(args.file),
                               "workers": args.workers, "memory_limit": args.memory_limit,
                               "memory_mb": args.memory_mb, "load": os.getloadavg()[0]}
    try:
        with _started([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                       "--no-dashboard"], os.path.join(work, "scheduler.log")), \
                _started([dask, "worker", address, "--nworkers", str(args.workers),
                          "--nthreads", "1", "--memory-limit", args.memory_limit,
                          "--no-dashboard", "--host", "127.0.0.1"],
                         os.path.join(work, "worker.log")) as worker:
            with DaskExecutor(address) as cluster:
                figures["task_bytes"] = cluster.task_bytes
                figures["dask_tasks_per_s"] = _tasks_per_second(cluster, args.tasks)
            with PoolExecutor(args.workers) as pool:
                figures["pool_tasks_per_s"] = _tasks_per_second(pool, args.tasks)
            for i in range(args.repeat):
                for kind in ("processes", "dask"):
                    out = os.path.join(work, f"{kind}-{i}")
                    extra = (["--scheduler", address] if kind == "dask"
                             else ["--workers", str(args.workers)])
                    with TreeSampler(worker.pid) as workers_memory:
                        row = _run([*base, "--out", out, *extra], out)
                    row["workers_peak_mb"] = workers_memory.peak / 1e6 if kind == "dask" else None
                    rows[kind].append(row)
                    print(kind, f"{row['wall']:.2f} s", f"client {row['client_peak_mb']:.0f} MB",
                          flush=True)
            for name in ("summary.json", "anomalies.json"):
                a = Path(work, "processes-0", name).read_bytes()
                b = Path(work, "dask-0", name).read_bytes()
                if a != b:
                    raise SystemExit(f"{name} differs between the executors")
        figures["result"] = _result_bytes(args.file, Settings().chunk_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures["runs"] = rows
    _write(args.name, figures)
    return 0


def _write(name: str, f: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(f, indent=2))
    best = {kind: min(rows, key=lambda r: r["wall"]) for kind, rows in f["runs"].items()}
    median = {kind: statistics.median(r["wall"] for r in rows) for kind, rows in f["runs"].items()}
    pickled, chunk = f["result"]
    lines = [
        f"# Dask executor vs local processes: {os.path.basename(f['file'])} "
        f"({f['bytes'] / 2**30:.2f} GiB), {f['workers']} workers of 1 thread, "
        f"--memory-mb {f.get('memory_mb', 500)}, load {f.get('load', float('nan')):.1f} at the start",
        "",
        "| executor | best wall s | median wall s | MB/s | chunks | client peak MB | "
        "dask workers' peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("processes", "dask"):
        row = best[kind]
        workers = "" if row["workers_peak_mb"] is None else f"{row['workers_peak_mb']:.0f}"
        lines.append(
            f"| {kind} | {row['wall']:.2f} | {median[kind]:.2f} | "
            f"{f['bytes'] / 1e6 / row['wall']:.1f} | {row['metrics']['chunks']} | "
            f"{row['client_peak_mb']:.0f} | {workers} |")
    for kind in ("processes", "dask"):
        m = best[kind]["metrics"]
        lines.append(f"- {kind}, best run: stages {m['stages']}, CPU s of the command's process "
                     f"tree {m['cpu_seconds']}")
    lines += [
        "",
        f"- no-op tasks per second: dask {f['dask_tasks_per_s']:.0f}, local processes "
        f"{f['pool_tasks_per_s']:.0f}",
        f"- memory a task may use on a worker of --memory-limit {f['memory_limit']}: "
        f"{f['task_bytes'] / 1e6:.0f} MB",
        f"- a {chunk / 2**20:.0f} MiB chunk's result, pickled: {pickled / 1e6:.2f} MB",
        f"- dask overhead on the best runs: {best['dask']['wall'] / best['processes']['wall'] - 1:+.1%}",
        "",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
