"""The ``watch`` command: the Watcher run until SIGINT or SIGTERM, with its signals and figures."""

from __future__ import annotations

import argparse
import os
import signal
from types import FrameType

from ..errors import UsageError
from ..ingest import kernel as native
from ..report.metrics import Clock, MemorySampler, run_metrics
from ..report.output import to_json, write_atomic
from ..settings import Settings
from ..watch.loop import Watcher
from .common import EXIT_OK, executor_for, executor_kind, fit_workers, report_line, say


def watch_main(args: argparse.Namespace, settings: Settings) -> int:
    """Run the watcher until SIGINT or SIGTERM; returns the exit status."""
    if args.dir == "-":
        raise UsageError("watch reads a folder, not standard input (-); a folder named - is ./-")
    if not os.path.isdir(args.dir):
        raise UsageError(f"not a folder: {args.dir}")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create output folder {args.out}: {err.strerror}") from None

    settings = fit_workers(settings, args.quiet)

    clock = Clock()
    # Workers ignore Ctrl-C (the terminal sends it to the whole group); the watcher handles it.
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        with executor_for(settings.workers) as executor, MemorySampler() as sampler:
            watcher = Watcher(args.dir, args.out, settings, executor, settle=args.settle,
                              recursive=args.recursive, say=say,
                              tell=None if args.quiet else say, memory=lambda: sampler.peak,
                              manage_gc=True)

            def on_signal(signum: int, frame: FrameType | None) -> None:
                watcher.request_stop()

            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
            watcher.open()
            watcher.start_events(args.poll)
            try:
                watcher.run()
            finally:
                watcher.close()
        metrics = run_metrics(
            clock=clock, peak_bytes=sampler.peak, workers=settings.workers, chunks=watcher.chunks,
            nbytes=watcher.bytes_read, lines=watcher.lines_read, stages={},
            executor=executor_kind(executor), kernel=native.name(settings),
        )
        write_atomic(os.path.join(args.out, "metrics.json"), to_json(metrics))
        if not args.quiet:
            say(report_line(metrics, watcher.anomaly_counts))
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    return EXIT_OK
