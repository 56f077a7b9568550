"""What the commands share: exit statuses, messages, the report line, the progress bar, the
output folder check, fitting workers to the memory budget, and the executor."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ClusterError, UsageError
from ..execute.base import Executor, SerialExecutor
from ..execute.pool import PoolExecutor
from ..ingest import storage
from ..reduce.budget import workers_within
from ..settings import Settings

PROG = "mapreduce-logs"
EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3

OUTPUTS = ("summary.json", "anomalies.json", "metrics.json", "report.html")


def say(message: str) -> None:
    """One line on stderr, named after the program."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def fit_workers(settings: Settings, quiet: bool) -> Settings:
    """``settings`` with no more workers than the memory budget holds (more would break it);
    says so unless ``quiet``."""
    fit = workers_within(settings)
    if settings.workers <= fit:
        return settings
    if not quiet:
        say(f"--workers {settings.workers} does not fit in {settings.memory_mb} MB; using {fit}")
    return dataclasses.replace(settings, workers=fit)


@contextlib.contextmanager
def executor_for(workers: int) -> Iterator[Executor]:
    """Local worker processes when there are several, else this process."""
    if workers > 1:
        with PoolExecutor(workers) as pool:
            yield pool
    else:
        yield SerialExecutor()


@contextlib.contextmanager
def cluster_executor(scheduler: str, spill_dir: str, files: list[str]) -> Iterator[Executor]:
    """The Dask cluster of ``scheduler``, checked to see ``spill_dir`` as this machine does and
    to open relative ``files`` from the same folder; a UsageError when it cannot be used (the
    extra missing, unreachable, no worker, blind)."""
    from ..execute.cluster import DaskExecutor

    cluster = DaskExecutor(scheduler)
    try:
        cluster.__enter__()
    except ClusterError as err:
        raise UsageError(str(err)) from None
    try:
        try:
            cluster.check_folder(spill_dir)
            cluster.check_relative(
                [p for p in files if not storage.is_url(p) and not os.path.isabs(p)])
        except ClusterError as err:
            raise UsageError(str(err)) from None
        yield cluster
    finally:
        cluster.close()


def executor_kind(executor: Executor) -> str:
    """Where a run's work ran, for metrics.json: "dask", "processes" or "serial"."""
    if isinstance(executor, SerialExecutor):
        return "serial"
    return "processes" if isinstance(executor, PoolExecutor) else "dask"


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


class progress:  # noqa: N801 - used like a function
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
