"""The ``run`` command: discover the inputs, run the pipeline once, write the outputs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ..errors import InputError, UsageError
from ..ingest import kernel as native
from ..ingest.split import STREAM, discover
from ..ingest.storage import is_url
from ..model.partial import Partial
from ..pipeline import RunStats, run_files
from ..report.documents import build_anomalies, build_summary
from ..report.html import build_page, page_data
from ..report.metrics import Clock, MemorySampler, run_metrics
from ..report.output import shown, to_json, write_atomic
from ..settings import Settings
from .common import (
    EXIT_OK,
    EXIT_UNREADABLE,
    OUTPUTS,
    check_output_folder,
    cluster_executor,
    executor_for,
    executor_kind,
    fit_workers,
    progress,
    report_line,
    say,
)
from .parser import settings_from


def run_main(args: argparse.Namespace) -> int:
    started_ns = time.time_ns()
    unlisted: dict[str, str] = {}
    paths = [path for path in args.paths if path != STREAM]
    stream = None
    if len(paths) < len(args.paths):
        if len(args.paths) - len(paths) > 1:
            raise UsageError("- (standard input) given more than once")
        if sys.stdin is None:
            raise UsageError("- given, but there is no standard input")
        stream = sys.stdin.buffer
    try:
        files = discover(paths, recursive=args.recursive, failures=unlisted)
    except InputError as err:
        raise UsageError(str(err)) from None
    # The outputs of an earlier run (--out inside an input folder) are not input.
    own = {os.path.realpath(os.path.join(args.out, name)) for name in OUTPUTS}
    files = [path for path in files if is_url(path) or os.path.realpath(path) not in own]
    scheduler = args.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    settings = settings_from(args)
    if scheduler is None:  # the workers are this machine's processes
        settings = fit_workers(settings, args.quiet)
    check_output_folder(args.out)
    kernel = native.name(settings)
    if args.spill_dir is not None and not os.path.isdir(args.spill_dir):
        raise UsageError(f"--spill-dir is not a folder: {args.spill_dir}")
    spill_dir = args.spill_dir or args.out
    if scheduler is not None:  # the workers are told where it is, from their own folders
        spill_dir = os.path.abspath(spill_dir)
    show_progress = not args.quiet and sys.stderr.isatty()
    clock = Clock()
    stats = RunStats()
    executors = (executor_for(settings.workers) if scheduler is None
                 else cluster_executor(scheduler, spill_dir, files))
    with executors as executor, MemorySampler() as sampler:
        with progress(files, show_progress) as advance:
            partial = run_files(files, settings, executor, progress=advance, stats=stats,
                                spill_dir=spill_dir, stream=stream,
                                stream_mtime_ns=started_ns)
        summary, anomalies = _write_outputs(partial, settings, args.out, stats.stages)
    for path, reason in unlisted.items():
        partial.failures.setdefault(path, reason)
    seen = executor.workers_seen
    metrics = run_metrics(
        clock=clock, peak_bytes=sampler.peak, workers=executor.workers, chunks=stats.chunks,
        nbytes=partial.bytes_read, lines=partial.lines, stages=stats.stages,
        failures={shown(path): reason for path, reason in partial.failures.items()},
        executor=executor_kind(executor),
        workers_seen=len(seen) if seen else executor.workers, kernel=kernel,
    )
    write_atomic(os.path.join(args.out, "metrics.json"), to_json(metrics))
    page = build_page(page_data(partial, summary, anomalies, settings.window, metrics))
    write_atomic(os.path.join(args.out, "report.html"), page)
    for path, reason in sorted(partial.failures.items()):
        say(f"could not read {path}: {reason}")
    if not args.quiet:
        say(report_line(metrics, anomalies["counts"]))
    return EXIT_UNREADABLE if partial.failures else EXIT_OK


def _write_outputs(
    partial: Partial, settings: Settings, out: str, stages: dict[str, float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    t = time.perf_counter()
    summary = build_summary(partial, settings)
    anomalies = build_anomalies(partial, settings)
    stages["report"] = time.perf_counter() - t
    t = time.perf_counter()
    write_atomic(os.path.join(out, "summary.json"), to_json(summary))
    write_atomic(os.path.join(out, "anomalies.json"), to_json(anomalies))
    stages["write"] = time.perf_counter() - t
    return summary, anomalies
