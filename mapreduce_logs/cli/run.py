"""The ``run`` command: discover the inputs, run the pipeline once, write the outputs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ..errors import InputError, UsageError
from ..ingest.split import STREAM, discover
from ..model.partial import Partial
from ..pipeline import RunStats, run_files
from ..report.documents import build_anomalies, build_summary
from ..report.metrics import Clock, MemorySampler, run_metrics
from ..report.output import shown, to_json, write_atomic
from ..settings import Settings
from .common import (
    EXIT_OK,
    EXIT_UNREADABLE,
    OUTPUTS,
    check_output_folder,
    executor_for,
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
    files = [path for path in files if os.path.realpath(path) not in own]
    settings = fit_workers(settings_from(args), args.quiet)
    check_output_folder(args.out)
    if args.spill_dir is not None and not os.path.isdir(args.spill_dir):
        raise UsageError(f"--spill-dir is not a folder: {args.spill_dir}")
    show_progress = not args.quiet and sys.stderr.isatty()
    clock = Clock()
    stats = RunStats()
    with executor_for(settings.workers) as executor, MemorySampler() as sampler:
        with progress(files, show_progress) as advance:
            partial = run_files(files, settings, executor, progress=advance, stats=stats,
                                spill_dir=args.spill_dir or args.out, stream=stream,
                                stream_mtime_ns=started_ns)
        _summary, anomalies = _write_outputs(partial, settings, args.out, stats.stages)
    for path, reason in unlisted.items():
        partial.failures.setdefault(path, reason)
    metrics = run_metrics(
        clock=clock, peak_bytes=sampler.peak, workers=settings.workers, chunks=stats.chunks,
        nbytes=partial.bytes_read, lines=partial.lines, stages=stats.stages,
        failures={shown(path): reason for path, reason in partial.failures.items()},
    )
    write_atomic(os.path.join(args.out, "metrics.json"), to_json(metrics))
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
