"""argparse -> library calls -> exit status. Nothing else lives here."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import decimal
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from . import storage
from .engine import (
    Executor,
    MapError,
    PoolExecutor,
    RunStats,
    SerialExecutor,
    run_files,
    workers_within,
)
from .metrics import Clock, MemorySampler, run_metrics
from .partial import Partial
from .report import build_anomalies, build_summary, shown, to_json, write_atomic
from .settings import Settings
from .split import InputError, discover
from .storage import is_url

PROG = "mapreduce-logs"
EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3


class UsageError(Exception):
    """A mistake in the command line; reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive(kind: type[int] | type[float], minimum: float = 1) -> Callable[[str], Any]:
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}: {text}")
        return value

    return parse


MAX_SECONDS = 10**12
"""Longest clock skew taken (31,700 years): no two timestamps are further apart."""


def _seconds(text: str) -> int | float:
    """A number of seconds >= 0, whole or to the nanosecond (at most 9 decimals)."""
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value.is_finite() or not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to {MAX_SECONDS:g}, got {text!r}")
    if value != value.quantize(decimal.Decimal("1e-9"), rounding=decimal.ROUND_DOWN):
        raise argparse.ArgumentTypeError(f"at most 9 decimals (nanoseconds): {text!r}")
    return int(value) if value == value.to_integral_value() else float(value)


def _common(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument("--out", default="output", metavar="DIR", help="output folder (default: output/)")
    p.add_argument("--workers", type=_positive(int), default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: CPU count)")
    p.add_argument("--chunk-size", type=_positive(int), default=d.chunk_size, metavar="BYTES",
                   help=f"target bytes per chunk, any value >= 1 (default: {d.chunk_size})")
    p.add_argument("--memory-mb", type=_positive(int, 50), default=d.memory_mb, metavar="MB",
                   help=f"memory budget of the whole process tree, at least 50 (default: {d.memory_mb})")
    p.add_argument("--top", type=_positive(int, 0), default=d.top, metavar="N",
                   help=f"services and users listed (default: {d.top})")
    p.add_argument("--peak-hours", type=_positive(int, 0), default=d.peak_hours, metavar="N",
                   help=f"busiest hours listed (default: {d.peak_hours})")
    p.add_argument("--window", type=_positive(int), default=d.window, metavar="SECONDS",
                   help=f"anomaly window, aligned to the UTC epoch (default: {d.window})")
    p.add_argument("--clock-skew", type=_seconds, default=d.clock_skew, metavar="SECONDS",
                   help=f"tolerance of the clock checks, fractions allowed (default: {d.clock_skew})")
    p.add_argument("--spike-factor", type=_positive(float, 1), default=d.spike_factor, metavar="X",
                   help=f"error_spike: times the expected errors (default: {d.spike_factor:g})")
    p.add_argument("--spike-min-errors", type=_positive(int), default=d.spike_min_errors,
                   metavar="N", help=f"error_spike: fewest errors in a window (default: {d.spike_min_errors})")
    p.add_argument("--burst-factor", type=_positive(float, 1), default=d.burst_factor, metavar="X",
                   help=f"user_burst: times the busiest ordinary user (default: {d.burst_factor:g})")
    p.add_argument("--burst-min-lines", type=_positive(int), default=d.burst_min_lines,
                   metavar="N",
                   help=f"user_burst: fewest lines in a run of flagged windows (default: {d.burst_min_lines})")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no report line")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Summarise log files and report anomalies.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    run = commands.add_parser("run", help="summarise files once",
                              description="Summarise PATHs into summary.json and anomalies.json.")
    run.add_argument("paths", nargs="+", metavar="PATH",
                     help="log files or folders, or s3://bucket/prefix/ URLs")
    _common(run)
    run.add_argument("--spill-dir", metavar="DIR", default=None,
                     help="where counts past the memory budget are spilled, in a hidden folder "
                     "removed at the end (default: the --out folder); with --scheduler, a "
                     "folder every worker shares with this machine")
    run.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="run the work on the Dask distributed cluster of this scheduler "
                     "(tcp://host:8786; default: $DASK_SCHEDULER_ADDRESS, else local processes)")
    watch = commands.add_parser("watch", help="keep the outputs current as files arrive",
                                description="Process DIR, then keep the outputs current.")
    watch.add_argument("dir", metavar="DIR", help="folder to watch")
    _common(watch)
    watch.add_argument("--settle", type=_positive(float, 0), default=2.0, metavar="SECONDS",
                       help="quiet time before an unterminated last line is taken (default: 2)")
    watch.add_argument("--poll", type=_positive(float, 0.01), default=None, metavar="SECONDS",
                       help="rescan every SECONDS instead of using file notifications (default: "
                       "notifications, with a rescan every 30 s; every 1 s where notifications "
                       "are unavailable)")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mapreduce_logs")
    except PackageNotFoundError:
        return "unknown"


def parse_command_line(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed arguments; PATHs may come after options too (``run a.log --quiet b.log``)."""
    args, extra = build_parser().parse_known_args(argv)
    if extra and args.command == "run" and not any(x.startswith("-") and x != "-" for x in extra):
        args.paths += extra
    elif extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        top=args.top, peak_hours=args.peak_hours, window=args.window, clock_skew=args.clock_skew,
        chunk_size=args.chunk_size, workers=args.workers, memory_mb=args.memory_mb,
        spike_factor=args.spike_factor, spike_min_errors=args.spike_min_errors,
        burst_factor=args.burst_factor, burst_min_lines=args.burst_min_lines,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (0 ok, 1 unexpected, 2 usage, 3 unreadable input)."""
    try:
        args = parse_command_line(argv)
        if args.command == "watch":
            from .watch import watch_main

            return watch_main(args, settings_from(args))
        return run_main(args)
    except UsageError as err:
        _say(f"error: {err}")
        return EXIT_USAGE
    except MapError as err:
        _say(f"error: {err}")
        return EXIT_UNEXPECTED
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as err:
        _say(f"unexpected error: {type(err).__name__}: {err}")
        if os.environ.get("MAPREDUCE_LOGS_DEBUG"):
            raise
        return EXIT_UNEXPECTED


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


OUTPUTS = ("summary.json", "anomalies.json", "metrics.json")


def run_main(args: argparse.Namespace) -> int:
    unlisted: dict[str, str] = {}
    try:
        files = discover(args.paths, recursive=args.recursive, failures=unlisted)
    except InputError as err:
        raise UsageError(str(err)) from None
    # The outputs of an earlier run (--out inside an input folder) are not input.
    own = {os.path.realpath(os.path.join(args.out, name)) for name in OUTPUTS}
    files = [path for path in files if is_url(path) or os.path.realpath(path) not in own]
    settings = settings_from(args)
    scheduler = args.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    fit = workers_within(settings)
    if scheduler is None and settings.workers > fit:
        # More workers than the memory budget holds would break it; say so rather than fail.
        if not args.quiet:
            _say(f"--workers {settings.workers} does not fit in {settings.memory_mb} MB; using {fit}")
        settings = dataclasses.replace(settings, workers=fit)
    check_output_folder(args.out)
    if args.spill_dir is not None and not os.path.isdir(args.spill_dir):
        raise UsageError(f"--spill-dir is not a folder: {args.spill_dir}")
    show_progress = not args.quiet and sys.stderr.isatty()
    spill_dir = args.spill_dir or args.out
    clock = Clock()
    stats = RunStats()
    with _executor(scheduler, settings.workers, spill_dir) as (executor, kind), \
            MemorySampler() as sampler:
        with _progress(files, show_progress) as advance:
            partial = run_files(files, settings, executor, progress=advance, stats=stats,
                                spill_dir=spill_dir)
        _summary, anomalies = _write_outputs(partial, settings, args.out, stats.stages)
    for path, reason in unlisted.items():
        partial.failures.setdefault(path, reason)
    workers = getattr(executor, "workers", 1)
    seen = getattr(executor, "workers_seen", None)
    metrics = run_metrics(
        clock=clock, peak_bytes=sampler.peak, workers=workers, chunks=stats.chunks,
        nbytes=partial.bytes_read, lines=partial.lines, stages=stats.stages,
        failures={shown(path): reason for path, reason in partial.failures.items()},
        executor=kind, workers_seen=workers if seen is None else len(seen),
    )
    write_atomic(os.path.join(args.out, "metrics.json"), to_json(metrics))
    for path, reason in sorted(partial.failures.items()):
        _say(f"could not read {path}: {reason}")
    if not args.quiet:
        _say(report_line(metrics, anomalies["counts"]))
    return EXIT_UNREADABLE if partial.failures else EXIT_OK


@contextlib.contextmanager
def _executor(
    scheduler: str | None, workers: int, spill_dir: str
) -> Iterator[tuple[Executor, str]]:
    """The executor of a run and its kind for metrics.json: "dask" on the cluster of
    ``scheduler``, else "processes" (``workers`` > 1) or "serial"."""
    if scheduler is not None:
        from .cluster import ClusterError, DaskExecutor

        cluster = DaskExecutor(scheduler)
        try:
            cluster.__enter__()
        except ClusterError as err:
            raise UsageError(str(err)) from None
        try:
            cluster.check_folder(spill_dir)
            yield cluster, "dask"
        except ClusterError as err:
            raise UsageError(str(err)) from None
        finally:
            cluster.close()
    elif workers > 1:
        with PoolExecutor(workers) as pool:
            yield pool, "processes"
    else:
        yield SerialExecutor(), "serial"


def check_output_folder(out: str) -> None:
    """Make ``out`` and make sure the outputs can be written there, before any work is done."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create output folder {out}: {err.strerror or err}") from None
    for name in OUTPUTS:
        if os.path.isdir(os.path.join(out, name)):
            raise UsageError(f"cannot write {os.path.join(out, name)}: it is a folder")
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UsageError(f"cannot write in output folder {out}: {err.strerror or err}") from None


def _write_outputs(
    partial: Partial, settings: Settings, out: str, stages: dict[str, float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    import time

    t = time.perf_counter()
    summary = build_summary(partial, settings)
    anomalies = build_anomalies(partial, settings)
    stages["report"] = time.perf_counter() - t
    t = time.perf_counter()
    write_atomic(os.path.join(out, "summary.json"), to_json(summary))
    write_atomic(os.path.join(out, "anomalies.json"), to_json(anomalies))
    stages["write"] = time.perf_counter() - t
    return summary, anomalies


def report_line(metrics: dict[str, Any], counts: dict[str, int]) -> str:
    """The one-line run report printed on stderr."""
    found = ", ".join(f"{kind} {n}" for kind, n in counts.items() if n) or "none"
    return (
        f"{size_text(metrics['bytes'])}, {_counted(metrics['lines'], 'line')} in "
        f"{metrics['wall_seconds']:.2f} s ({metrics['throughput_mb_s']:,.1f} MB/s), "
        f"peak memory {metrics['peak_memory_mb']:,.1f} MB, "
        f"{_counted(metrics['workers'], 'worker')}; anomalies: {found}"
    )


def _counted(n: int, thing: str) -> str:
    return f"{n:,} {thing}{'' if n == 1 else 's'}"


def size_text(nbytes: int) -> str:
    """``nbytes`` for a person: bytes, kB or MB (powers of 1000, as the throughput)."""
    if nbytes < 1000:
        return f"{nbytes} bytes"
    if nbytes < 1_000_000:
        return f"{nbytes / 1e3:.1f} kB"
    return f"{nbytes / 1e6:,.1f} MB"


class _progress:  # noqa: N801 - used like a function
    """A tqdm bar in bytes when wanted; yields the callback that advances it."""

    def __init__(self, files: list[str], enabled: bool) -> None:
        self.files = files
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not self.enabled:
            return None
        from tqdm import tqdm

        total = 0
        for path in self.files:
            with contextlib.suppress(OSError):
                total += storage.size(path)
        self.bar = tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, leave=False)
        return self.bar.update  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
