"""Time mapreduce_logs against a plain Python loop, awk and DuckDB on the same files, in one run.

What it does, in order:
1. Generates the input files it needs into ``bench-data/`` (git-ignored; ``--data-dir``), or
   re-uses them when a file with the same generator parameters is already there.
2. Reads each file once so that every tool starts with it in the page cache.
3. Runs every measurement ``--repeats`` times, one round over all of them after another, so that
   a noisy neighbour on the machine spreads over the tools instead of hitting one:
   - the main table, on ``--main-size``: mapreduce_logs with each ``--workers`` value, the plain
     loop (``for line in f``, split, Counter), awk (mawk if present) and DuckDB (2 threads, one
     SQL scan; skipped when ``import duckdb`` fails);
   - the size sweep: ``--sweep-tools`` on each of ``--sizes``;
   - with ``--memory``, the memory cases of the scale issue (tens of millions of distinct users,
     a new user on every line, one giant line, ``--memory-mb 200``), mapreduce_logs only.
4. Checks that the tools agree on level counts, top services and top users (the files are
   canonical, so they must), and that mapreduce_logs agrees with the generator's ground truth.
5. Prints the tables and writes them to ``benchmarks/results/NAME.md`` (every raw run goes to
   ``NAME.json`` beside it).

Wall time is the median over repeats; peak memory is the highest, over repeats, of the sum of PSS
over the tool's whole process tree, sampled every 50 ms from outside (``memsample.py``).

Resumable: each finished run is saved at once in ``NAME.json``; running the same command again
skips what is done (``--fresh`` starts over). Ctrl-C stops cleanly after killing the running tool.

This is CPU-heavy: the default run takes tens of minutes and ~6 GB of disk; ``--quick`` is a
one-minute smoke test on 32 MiB files. Nothing here is a test: numbers depend on the machine.

    python -m benchmarks.bench --quick
    python -m benchmarks.bench                       # 256M, 1G, 4G; main table on 1G
    python -m benchmarks.bench --memory --name scale  # plus the memory cases
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import (
    Params,
    generate,
    generate_giant_line,
    parse_size,
    truth_path,
)
from benchmarks.memsample import run_measured

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINES = HERE / "baselines"
TOOLS = ("mapreduce_logs", "python", "awk", "duckdb")
TOP = 10


# -- datasets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A generated input file, named by what it holds."""

    name: str
    size: int
    kind: str = "zipf"
    users: int = 200_000
    skew: float = 1.1
    services: int = 20
    seed: int = 1

    @property
    def path(self) -> str:
        return os.path.join(DATA_DIR, f"{self.name}.log")

    def params(self) -> Params:
        if self.kind == "newuser":
            return Params(size=self.size, services=self.services, skew=self.skew, seed=self.seed,
                          new_user_every_line=True)
        return Params(size=self.size, users=self.users, services=self.services, skew=self.skew,
                      seed=self.seed)


DATA_DIR = str(ROOT / "bench-data")


def human(size: int) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def zipf(size: int, users: int, skew: float, seed: int) -> Dataset:
    return Dataset(f"zipf-{human(size)}-u{users}-s{skew:g}-seed{seed}", size, "zipf", users, skew,
                   seed=seed)


def ensure(ds: Dataset) -> dict[str, Any]:
    """The dataset's ground truth, generating the file unless an identical one is there."""
    truth_file = truth_path(ds.path)
    wanted = ds.params() if ds.kind != "giant" else None
    with contextlib.suppress(OSError, ValueError):
        truth = json.loads(Path(truth_file).read_text())
        same = (truth["params"] == json.loads(json.dumps(asdict(wanted)))) if wanted else (
            truth["params"] == {"one_giant_line": ds.size})
        if same and os.path.getsize(ds.path) == truth["bytes"]:
            return dict(truth)
    free = shutil.disk_usage(os.path.dirname(ds.path) or ".").free
    if free < ds.size * 1.05 + (1 << 30):
        raise SystemExit(f"bench: not enough disk for {ds.path}: {human(ds.size)} needed, "
                         f"{free / 1e9:.1f} GB free")
    say(f"generating {ds.path} ({human(ds.size)}) ...")
    if ds.kind == "giant":
        doc = generate_giant_line(ds.path, ds.size)
    else:
        assert wanted is not None
        doc = generate(ds.path, wanted)
    say(f"  {doc['bytes']:,} bytes, {doc['totals']['lines']:,} lines, "
        f"{doc['timing']['mb_per_s']:,.0f} MB/s")
    doc.pop("timing")
    return doc


def warm(path: str) -> None:
    """Read a file once so every tool finds it in the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass


# -- measurements -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One thing to time: a tool on a dataset with some workers (and maybe a memory cap)."""

    dataset: Dataset
    tool: str
    workers: int = 1
    memory_mb: int | None = None
    section: str = "main"

    @property
    def key(self) -> str:
        cap = f"|mem{self.memory_mb}" if self.memory_mb else ""
        return f"{self.dataset.name}|{self.tool}|w{self.workers}{cap}"

    @property
    def cores(self) -> int:
        return min(self.workers, os.cpu_count() or 1)


def awk_binary() -> str | None:
    return shutil.which("mawk") or shutil.which("awk")


def command(job: Job, out_dir: str) -> list[str]:
    path = job.dataset.path
    if job.tool == "mapreduce_logs":
        cmd = [sys.executable, "-m", "mapreduce_logs", "run", path, "--quiet", "--out", out_dir,
               "--workers", str(job.workers), "--top", str(TOP)]
        if job.memory_mb:
            cmd += ["--memory-mb", str(job.memory_mb)]
        return cmd
    if job.tool == "python":
        return [sys.executable, str(BASELINES / "plain_loop.py"), path, str(TOP)]
    if job.tool == "awk":
        awk = awk_binary()
        assert awk is not None
        return [awk, "-f", str(BASELINES / "count.awk"), path]
    if job.tool == "duckdb":
        return [sys.executable, str(BASELINES / "duckdb_scan.py"), path, str(job.workers), str(TOP)]
    raise ValueError(job.tool)


def top(counts: dict[str, int], k: int = TOP) -> list[list[Any]]:
    best = heapq.nsmallest(k, counts.items(), key=lambda kv: (-kv[1], kv[0].encode()))
    return [[name, n] for name, n in best]


def parse_result(job: Job, stdout: str, out_dir: str) -> dict[str, Any]:
    """Levels, top services and top users as every tool reports them, in one shape."""
    if job.tool == "mapreduce_logs":
        summary = json.loads(Path(out_dir, "summary.json").read_text())
        metrics = json.loads(Path(out_dir, "metrics.json").read_text())
        return {
            "levels": summary["log_levels"],
            "services": [[k, v] for k, v in summary["service_counts"].items()],
            "users": [[k, v] for k, v in summary["user_counts"].items()],
            "totals": summary["totals"], "malformed": summary["malformed"],
            "distinct_users": summary["distinct_users"],
            "self_reported": {k: metrics.get(k) for k in
                              ("wall_seconds", "peak_memory_mb", "throughput_mb_s", "chunks")},
        }
    text = Path(stdout).read_text(encoding="utf-8", errors="replace")
    if job.tool == "awk":
        found: dict[str, dict[str, int]] = {"L": {}, "S": {}, "U": {}}
        for line in text.splitlines():
            kind, name, n = line.split("\t")
            found[kind][name] = int(n)
        return {"levels": found["L"], "services": top(found["S"]), "users": top(found["U"])}
    doc = json.loads(text)
    return {"levels": doc["levels"], "services": doc["services"], "users": doc["users"]}


def run_job(job: Job, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-", dir=DATA_DIR) as tmp:
        stdout = os.path.join(tmp, "stdout")
        out_dir = os.path.join(tmp, "out")
        load = os.getloadavg()[0]
        env = {**os.environ, "LC_ALL": "C"} if job.tool == "awk" else None
        run = run_measured(command(job, out_dir), stdout, timeout=timeout, cwd=str(ROOT), env=env)
        record: dict[str, Any] = {
            "wall": round(run.wall, 3), "peak_mb": round(run.peak / 1e6, 1),
            "samples": run.samples, "returncode": run.returncode, "load_before": round(load, 2),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if run.timed_out:
            record["error"] = f"timed out after {timeout:.0f} s"
        elif run.returncode != 0:
            record["error"] = f"exit {run.returncode}: {run.stderr.strip()[-500:]}"
        else:
            try:
                record["result"] = parse_result(job, stdout, out_dir)
            except (OSError, ValueError, KeyError) as err:
                record["error"] = f"could not read its output: {err!r}"
        return record


# -- the store of finished runs -----------------------------------------------------------------


@dataclass
class Store:
    """Every finished run, saved after each one so that an interrupted benchmark resumes."""

    path: Path
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    truths: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path, fresh: bool) -> Store:
        store = cls(path)
        if path.exists() and not fresh:
            doc = json.loads(path.read_text())
            store.runs = doc.get("runs", {})
        return store

    def good(self, job: Job) -> list[dict[str, Any]]:
        return [r for r in self.runs.get(job.key, []) if "error" not in r]

    def add(self, job: Job, record: dict[str, Any]) -> None:
        self.runs.setdefault(job.key, []).append(record)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"runs": self.runs}, indent=1) + "\n")
        os.replace(tmp, self.path)


# -- the plan and the report --------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[Job]:
    jobs: list[Job] = []
    main = zipf(args.main_size, args.users, args.skew, args.seed)
    for tool in args.tools:
        if tool == "mapreduce_logs":
            jobs += [Job(main, tool, w) for w in args.workers]
        else:
            jobs.append(Job(main, tool, 2 if tool == "duckdb" else 1))
    if not args.no_sweep:
        for size in args.sizes:
            ds = zipf(size, args.users, args.skew, args.seed)
            for tool in args.sweep_tools:
                workers = max(args.workers) if tool == "mapreduce_logs" else (
                    2 if tool == "duckdb" else 1)
                jobs.append(Job(ds, tool, workers, section="sizes"))
    if args.memory:
        top_workers = max(args.workers)
        for ds, cap in memory_cases(args):
            jobs.append(Job(ds, "mapreduce_logs", top_workers, cap, section="memory"))
    seen: set[str] = set()
    unique = []
    for job in jobs:
        runnable = (job.tool != "duckdb" or have_duckdb()) and (job.tool != "awk" or awk_binary())
        if job.key not in seen and runnable:
            seen.add(job.key)
            unique.append(job)
    return unique


def memory_cases(args: argparse.Namespace) -> list[tuple[Dataset, int]]:
    """The scale issue's memory targets, scaled down by ``--quick``."""
    if args.quick:
        big, card, newuser, giant = 32 << 20, 32 << 20, 32 << 20, 64 << 20
    else:
        big, card, newuser, giant = 4 << 30, 1 << 30, 4 << 30, 2 << 30
    return [
        (zipf(big, args.users, args.skew, args.seed), 500),
        (zipf(big, args.users, args.skew, args.seed), 200),
        (Dataset(f"highcard-{human(card)}-u12000000-seed{args.seed}", card, "zipf", 12_000_000,
                 0.0, seed=args.seed), 500),
        (Dataset(f"newuser-{human(newuser)}-seed{args.seed}", newuser, "newuser", 1, 1.1,
                 seed=args.seed), 500),
        (Dataset(f"giant-line-{human(giant)}", giant, "giant"), 500),
    ]


def have_duckdb() -> bool:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Row:
    job: Job
    wall: float | None
    peak: float | None
    runs: int
    error: str | None
    result: dict[str, Any] | None


def summarise(job: Job, store: Store) -> Row:
    good = store.good(job)
    errors = [r["error"] for r in store.runs.get(job.key, []) if "error" in r]
    if not good:
        return Row(job, None, None, 0, errors[-1] if errors else "not run", None)
    return Row(job, statistics.median(r["wall"] for r in good), max(r["peak_mb"] for r in good),
               len(good), None, good[-1].get("result"))


def agreement(rows: list[Row], truth: dict[str, Any]) -> dict[str, str]:
    """Per row: "yes", or what differs from mapreduce_logs (and from the ground truth)."""
    ref = next((r.result for r in rows if r.job.tool == "mapreduce_logs" and r.result), None)
    out: dict[str, str] = {}
    for row in rows:
        if row.result is None:
            out[row.job.key] = "-"
            continue
        problems = []
        if row.result["levels"] != truth.get("log_levels"):
            problems.append("levels differ from the ground truth")
        if ref is not None:
            for part in ("levels", "services", "users"):
                if row.result[part] != ref[part]:
                    problems.append(f"{part} differ from mapreduce_logs")
        out[row.job.key] = "yes" if not problems else "NO: " + "; ".join(problems)
    return out


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def main_table(rows: list[Row], truth: dict[str, Any], agree: dict[str, str]) -> list[str]:
    nbytes, lines = truth["bytes"], truth["totals"]["lines"]
    duck = next((r.wall for r in rows if r.job.tool == "duckdb" and r.wall), None)
    head = ["| tool | workers | wall median (s) | MB/s | lines/s | lines/s per core | "
            "peak memory (MB) | wall / DuckDB | runs | agrees |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    body = []
    for r in rows:
        if r.wall is None:
            body.append(f"| {r.job.tool} | {r.job.workers} | failed: {r.error} | | | | | | 0 | |")
            continue
        per_s = lines / r.wall
        body.append(
            f"| {r.job.tool} | {r.job.workers} | {r.wall:.2f} | {nbytes / 1e6 / r.wall:,.0f} | "
            f"{per_s:,.0f} | {per_s / r.job.cores:,.0f} | {fmt(r.peak, 0)} | "
            f"{fmt(r.wall / duck if duck else None)} | {r.runs} | {agree[r.job.key]} |")
    return head + body


def workers_table(rows: list[Row]) -> list[str]:
    mine = sorted((r for r in rows if r.job.tool == "mapreduce_logs" and r.wall),
                  key=lambda r: r.job.workers)
    if not mine:
        return []
    first = mine[0]
    assert first.wall is not None
    out = [f"| workers | wall median (s) | speed-up vs {first.job.workers} worker(s) | "
           "efficiency |", "|---:|---:|---:|---:|"]
    for r in mine:
        assert r.wall is not None
        speed = first.wall / r.wall
        out.append(f"| {r.job.workers} | {r.wall:.2f} | {speed:.2f}x | "
                   f"{speed * first.job.workers / r.job.workers:.0%} |")
    return out


def sizes_table(rows: list[Row], truths: dict[str, dict[str, Any]]) -> list[str]:
    out = ["| size | lines | tool | workers | wall median (s) | MB/s | s per GiB | peak memory (MB) "
           "| wall / DuckDB |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    by_size: dict[int, list[Row]] = {}
    for r in rows:
        by_size.setdefault(r.job.dataset.size, []).append(r)
    for size in sorted(by_size):
        group = by_size[size]
        duck = next((r.wall for r in group if r.job.tool == "duckdb" and r.wall), None)
        for r in group:
            truth = truths.get(r.job.dataset.name, {})
            nbytes = truth.get("bytes", size)
            lines = truth.get("totals", {}).get("lines")
            if r.wall is None:
                out.append(f"| {human(size)} | {lines or '-'} | {r.job.tool} | {r.job.workers} | "
                           f"failed: {r.error} | | | | |")
                continue
            out.append(
                f"| {human(size)} | {lines:,} | {r.job.tool} | {r.job.workers} | {r.wall:.2f} | "
                f"{nbytes / 1e6 / r.wall:,.0f} | {r.wall / (nbytes / (1 << 30)):.2f} | "
                f"{fmt(r.peak, 0)} | {fmt(r.wall / duck if duck else None)} |")
    return out


def memory_table(rows: list[Row], truths: dict[str, dict[str, Any]]) -> list[str]:
    out = ["| input | lines | --memory-mb | workers | wall (s) | peak memory (MB) | under cap | "
           "exact |", "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        truth = truths.get(r.job.dataset.name, {})
        cap = r.job.memory_mb or 500
        if r.wall is None or r.result is None:
            out.append(f"| {r.job.dataset.name} | | {cap} | {r.job.workers} | failed: {r.error} "
                       "| | | |")
            continue
        exact = (r.result["totals"]["lines"] == truth["totals"]["lines"]
                 and r.result["malformed"] == truth["malformed"]
                 and r.result["levels"] == truth.get("log_levels", r.result["levels"]))
        assert r.peak is not None
        out.append(
            f"| {r.job.dataset.name} | {truth['totals']['lines']:,} | {cap} | {r.job.workers} | "
            f"{r.wall:.2f} | {r.peak:,.0f} | {'yes' if r.peak <= cap else 'NO'} | "
            f"{'yes' if exact else 'NO'} |")
    return out


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import psutil

    versions = [f"Python {platform.python_version()}"]
    if have_duckdb():
        import duckdb

        versions.append(f"DuckDB {duckdb.__version__}")
    awk = awk_binary()
    if awk:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            text = subprocess.run([awk, "-W", "version"], capture_output=True, text=True,
                                  timeout=5).stdout
            versions.append(text.splitlines()[0] if text else os.path.basename(awk))
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    return [
        f"- machine: {cpu}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / (1 << 30):.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}",
        f"- software: {', '.join(versions)}; mapreduce_logs at commit {commit}",
    ]


def report(args: argparse.Namespace, jobs: list[Job], store: Store) -> str:
    rows = [summarise(job, store) for job in jobs]
    main_rows = [r for r in rows if r.job.section == "main"]
    main_name = main_rows[0].job.dataset.name if main_rows else ""
    truth = store.truths.get(main_name, {})
    loads = [run["load_before"] for job in jobs for run in store.good(job)]
    lines = [
        f"# Benchmark `{args.name}`",
        "",
        f"Command: `python -m benchmarks.bench {' '.join(args.argv)}`".replace("  ", " "),
        f"Written {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        *machine(),
        f"- load average before each run: {min(loads, default=0):.2f} to "
        f"{max(loads, default=0):.2f} (other work on the machine skews the figures)",
        "- wall: median over repeats; peak memory: highest over repeats of the summed PSS of the "
        "tool's process tree, sampled every 50 ms; MB = 10^6 bytes; files read from page cache",
        "- lines/s per core: lines/s divided by the cores a tool can use (workers, DuckDB threads,"
        " 1 for the loop and awk); wall / DuckDB <= 1.00 means at least as fast as DuckDB",
        "- awk's time does not include picking its top 10 from the full counts it prints",
        "",
    ]
    if main_rows and truth:
        lines += [f"## {human(main_rows[0].job.dataset.size)} file: {truth['bytes']:,} bytes, "
                  f"{truth['totals']['lines']:,} lines, {args.users:,} users (Zipf-like skew "
                  f"{args.skew:g}), canonical lines", ""]
        agree = agreement(main_rows, truth)
        lines += [*main_table(main_rows, truth, agree), ""]
        lines += ["### mapreduce_logs by workers", "", *workers_table(main_rows), ""]
    size_rows = [r for r in rows if r.job.section == "sizes"]
    if size_rows:
        lines += ["## Sizes", "", *sizes_table(size_rows, store.truths), ""]
    mem_rows = [r for r in rows if r.job.section == "memory"]
    if mem_rows:
        lines += ["## Memory cases (mapreduce_logs)", ""]
        lines += [*memory_table(mem_rows, store.truths), ""]
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _list(kind: type[int] | Any) -> Any:
    def parse(text: str) -> list[Any]:
        return [kind(x) for x in text.split(",") if x.strip()]

    return parse


def build_parser() -> argparse.ArgumentParser:
    cores = os.cpu_count() or 1
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (python -m pydoc benchmarks.bench) for the details.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 32M files, sizes 16M,32M, 1 repeat, small memory cases")
    ap.add_argument("--name", default=None, help="result name; None means 'quick' or 'bench'")
    ap.add_argument("--main-size", type=parse_size, default="1G",
                    help="file size of the main table")
    ap.add_argument("--sizes", type=_list(parse_size), default="256M,1G,4G",
                    help="sizes of the size sweep, comma-separated")
    ap.add_argument("--workers", type=_list(int),
                    default=",".join(str(w) for w in range(1, cores + 1)),
                    help="mapreduce_logs worker counts, comma-separated")
    ap.add_argument("--tools", type=_list(str), default=",".join(TOOLS),
                    help=f"tools of the main table, out of {','.join(TOOLS)}")
    ap.add_argument("--sweep-tools", type=_list(str), default="mapreduce_logs,duckdb",
                    help="tools of the size sweep")
    ap.add_argument("--no-sweep", action="store_true", help="skip the size sweep")
    ap.add_argument("--memory", action="store_true",
                    help="add the memory cases: 4G at --memory-mb 500 and 200, 1G with ~7M "
                    "distinct users, 4G with a new user per line, one 2G line")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each measurement")
    ap.add_argument("--users", type=int, default=200_000, help="user population of the files")
    ap.add_argument("--skew", type=float, default=1.1, help="Zipf-like exponent of the users")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", default=DATA_DIR, help="where input files are generated")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed to one run")
    ap.add_argument("--fresh", action="store_true", help="forget earlier runs of this name")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return ap


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    raw = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    args = ap.parse_args(raw)
    args.argv = raw
    if args.quick:
        given = {arg.split("=")[0] for arg in raw if arg.startswith("--")}
        defaults = {"main_size": 32 << 20, "sizes": [16 << 20, 32 << 20], "repeats": 1}
        for key, value in defaults.items():
            if "--" + key.replace("_", "-") not in given:
                setattr(args, key, value)
    args.name = args.name or ("quick" if args.quick else "bench")
    unknown = set(args.tools + args.sweep_tools) - set(TOOLS)
    if unknown:
        ap.error(f"unknown tools: {', '.join(sorted(unknown))}")
    return args


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        say("bench: interrupted; finished runs are saved, run the same command to resume")
        raise SystemExit(130) from None


def main(argv: Sequence[str] | None = None) -> int:
    global DATA_DIR
    args = parse_args(argv)
    DATA_DIR = os.path.abspath(args.data_dir)
    os.makedirs(DATA_DIR, exist_ok=True)
    jobs = plan(args)
    datasets = {job.dataset.name: job.dataset for job in jobs}
    if args.dry_run:
        for ds in datasets.values():
            say(f"dataset {ds.path}: {human(ds.size)}")
        for job in jobs:
            say(f"run {job.key} x{args.repeats}")
        return 0
    store = Store.open(HERE / "results" / f"{args.name}.json", args.fresh)
    with interruptible():
        for name, ds in datasets.items():
            store.truths[name] = ensure(ds)
        warmed: set[str] = set()
        for round_ in range(args.repeats):
            for job in jobs:
                if len(store.good(job)) > round_:
                    continue
                if job.dataset.name not in warmed:
                    warm(job.dataset.path)
                    warmed.add(job.dataset.name)
                say(f"[{round_ + 1}/{args.repeats}] {job.key} ...")
                record = run_job(job, args.timeout)
                store.add(job, record)
                say(f"    {record['wall']:.2f} s, {record['peak_mb']:,.0f} MB"
                    + (f"  ERROR {record['error']}" if "error" in record else ""))
    text = report(args, jobs, store)
    out = HERE / "results" / f"{args.name}.md"
    out.write_text(text + "\n")
    print(text)
    say(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
