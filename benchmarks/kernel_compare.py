"""This tool with the compiled kernel and with the pure-Python path, against DuckDB, a plain
Python loop and awk, on the same files in one run.

    python -m benchmarks.kernel_compare FILE... [--repeats 3] [--name kernel_compare]
    python -m benchmarks.kernel_compare FILE... --kernel-only   # the kernel alone, MB/s per core

Every file is read once first (page cache), then each round runs every tool once, in turn
(interleaved, so a burst of other work on a shared machine hits them alike); after one warm-up
round the medians of ``--repeats`` rounds are reported: wall seconds, CPU seconds (the tool's
whole process tree), peak memory (summed PSS, sampled every 50 ms). Our two runs must write
byte-identical summary.json and anomalies.json. Results go to ``benchmarks/results/NAME.md``
and ``NAME.json``. The inputs: ``benchmarks/README.md`` (generate.py).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.memsample import run_measured

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "benchmarks" / "baselines"
RESULTS = ROOT / "benchmarks" / "results"
TOOLS = ("ours-compiled", "ours-python", "duckdb", "python-loop", "awk")


def command(tool: str, path: str, out: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if tool.startswith("ours"):
        env["MAPREDUCE_LOGS_KERNEL"] = tool.removeprefix("ours-")
        return [sys.executable, "-m", "mapreduce_logs", "run", path, "--quiet", "--out", out], env
    if tool == "duckdb":
        return [sys.executable, str(BASELINES / "duckdb_scan.py"), path, "2"], env
    if tool == "python-loop":
        return [sys.executable, str(BASELINES / "plain_loop.py"), path], env
    env["LC_ALL"] = "C"
    return [shutil.which("mawk") or "awk", "-f", str(BASELINES / "count.awk"), path], env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(tool: str, path: str, scratch: str) -> dict[str, Any]:
    out = os.path.join(scratch, tool)
    shutil.rmtree(out, ignore_errors=True)
    cmd, env = command(tool, path, out)
    cpu = children_cpu()
    run = run_measured(cmd, os.path.join(scratch, "stdout"), cwd=str(ROOT), env=env)
    record: dict[str, Any] = {"wall": round(run.wall, 3), "cpu": round(children_cpu() - cpu, 3),
                              "peak_mb": round(run.peak / 1e6, 1), "load": os.getloadavg()[0]}
    if run.returncode != 0:
        raise SystemExit(f"{tool} failed on {path}: {run.stderr}")
    if tool.startswith("ours"):
        record["metrics"] = json.loads(Path(out, "metrics.json").read_text())
    return record


def compare(paths: list[str], repeats: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"files": {}}
    with tempfile.TemporaryDirectory(prefix="kernel-compare-") as scratch:
        for path in paths:
            with open(path, "rb", buffering=0) as f:
                while f.read(16 << 20):
                    pass
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
            for round_ in range(repeats + 1):
                for tool in TOOLS:
                    record = measure(tool, path, scratch)
                    print(f"{os.path.basename(path)} round {round_} {tool}: {record['wall']:.2f} s "
                          f"wall, {record['cpu']:.2f} s CPU", file=sys.stderr, flush=True)
                    if round_:
                        runs[tool].append(record)
                same = all(filecmp.cmp(os.path.join(scratch, "ours-compiled", name),
                                       os.path.join(scratch, "ours-python", name), shallow=False)
                           for name in ("summary.json", "anomalies.json"))
                if not same:
                    raise SystemExit(f"compiled and python outputs differ on {path}")
            doc["files"][path] = {"bytes": os.path.getsize(path), "runs": runs, "identical": True}
    return doc


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def table(doc: dict[str, Any]) -> list[str]:
    out = []
    for path, entry in doc["files"].items():
        runs = entry["runs"]
        duck = median(runs["duckdb"], "wall")
        out += [f"### {os.path.basename(path)} ({entry['bytes']:,} bytes)", "",
                "| tool | wall median (s) | CPU median (s) | MB/s | peak memory (MB) | "
                "wall / DuckDB |", "|---|---:|---:|---:|---:|---:|"]
        for tool in TOOLS:
            wall = median(runs[tool], "wall")
            out.append(f"| {tool} | {wall:.2f} | {median(runs[tool], 'cpu'):.2f} | "
                       f"{entry['bytes'] / 1e6 / wall:.0f} | "
                       f"{max(r['peak_mb'] for r in runs[tool]):.0f} | {wall / duck:.2f} |")
        stages = runs["ours-compiled"][len(runs["ours-compiled"]) // 2]["metrics"]["stages"]
        out += ["", "ours-compiled, stages of the second measured run (s; wall): " +
                ", ".join(f"{k} {v}" for k, v in stages.items()), ""]
    return out


def kernel_only(path: str, chunk: int) -> dict[str, Any]:
    """The kernel alone on one core, as a worker runs it: a new kernel per ``chunk`` bytes, fed
    1 MiB blocks, drained at the end of each chunk as columns (as a chunk bound for the spill
    folder is)."""
    from mapreduce_logs.ingest import kernel as native

    k_module = native.compiled
    assert k_module is not None
    scanned = drained = 0.0
    size = chunks = 0
    users = pairs = 0
    with open(path, "rb") as f:
        while True:
            k = k_module.Kernel(60, 1 << 80, 300 * 10**9)
            carry, read = b"", 0
            while read < chunk and (data := f.read(1 << 20)):
                read += len(data)
                buf = carry + data
                end = buf.rfind(b"\n") + 1
                started = time.process_time()
                pos, last = 0, 0
                while pos < end:
                    status, _start, stop, _n, ts, last = k.scan(buf, pos, end, last, 0)
                    pos = end if status == k_module.DONE else stop + 1
                    last = ts if ts is not None else last
                scanned += time.process_time() - started
                carry = buf[end:]
                size += end
            started = time.process_time()
            counts = k.drain(True)
            drained += time.process_time() - started
            users += len(counts["user_names"][1]) // 8  # int64 end offsets, one a name
            pairs += len(counts["user_lines"][0]) // 8  # int64 ids
            chunks += 1
            if carry:  # a chunk ends on a line end; this one may be cut: put it back
                f.seek(-len(carry), os.SEEK_CUR)
            if not read:
                break
    return {"path": path, "bytes": size, "chunk": chunk, "chunks": chunks,
            "scan_cpu": round(scanned, 3), "scan_mb_s_per_core": round(size / 1e6 / scanned, 1),
            "drain_cpu": round(drained, 3),
            "scan_and_drain_mb_s_per_core": round(size / 1e6 / (scanned + drained), 1),
            "users_summed_over_chunks": users, "user_windows_summed_over_chunks": pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--name", default="kernel_compare")
    ap.add_argument("--kernel-only", action="store_true")
    ap.add_argument("--chunk", type=int, default=32 << 20, help="--kernel-only: bytes a kernel")
    args = ap.parse_args()
    if args.kernel_only:
        found = [kernel_only(p, args.chunk) for p in args.files]
        print(json.dumps(found, indent=2))
        (RESULTS / f"{args.name}.json").write_text(json.dumps(found, indent=2) + "\n")
        return
    doc = compare(args.files, args.repeats)
    doc["command"] = "python -m benchmarks.kernel_compare " + " ".join(sys.argv[1:])
    doc["written"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    doc["cpus"] = os.cpu_count()
    (RESULTS / f"{args.name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    text = [f"# Benchmark `{args.name}`", "", f"Command: `{doc['command']}`",
            f"Written {doc['written']}; {doc['cpus']} cores shared with other work (CPU seconds "
            "say more than wall time there). Median of "
            f"{args.repeats} interleaved rounds after a warm-up round; ours = `run FILE --quiet` "
            "with default workers; DuckDB 2 threads (`baselines/duckdb_scan.py`); our two "
            "mappers' outputs byte-identical.", "", *table(doc)]
    (RESULTS / f"{args.name}.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
