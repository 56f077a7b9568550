"""Run figures: wall and CPU time, and the peak memory of the whole process tree (psutil)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import psutil

SAMPLE_SECONDS = 0.05


def tree_memory(root: psutil.Process) -> int:
    """Bytes used by ``root`` and its descendants: PSS where the system gives it, else RSS.

    0 once ``root`` is gone.
    """
    try:
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0
    total = 0
    for proc in procs:
        try:
            total += _memory(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total


def _memory(proc: psutil.Process) -> int:
    try:
        return int(proc.memory_full_info().pss)
    except (AttributeError, psutil.AccessDenied):
        return int(proc.memory_info().rss)


def tree_cpu_seconds(root: psutil.Process) -> float:
    """User + system CPU seconds of ``root`` and its reaped children."""
    t = root.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class MemorySampler:
    """Samples the memory of a process tree (default: this one) in a thread; keeps the peak."""

    def __init__(self, pid: int | None = None, interval: float = SAMPLE_SECONDS) -> None:
        self.root = psutil.Process(os.getpid() if pid is None else pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> int:
        current = tree_memory(self.root)
        self.samples += 1
        self.peak = max(self.peak, current)
        return current

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


class Clock:
    """Wall and CPU time since creation, and seconds per named stage."""

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.wall_start = time.perf_counter()
        self.cpu_start = tree_cpu_seconds(self.process)
        self.stages: dict[str, float] = {}

    def wall(self) -> float:
        return time.perf_counter() - self.wall_start

    def cpu(self) -> float:
        return tree_cpu_seconds(self.process) - self.cpu_start


def run_metrics(
    *, clock: Clock, peak_bytes: int, workers: int, chunks: int, nbytes: int, lines: int,
    stages: dict[str, float], failures: Mapping[str, str] | None = None,
    executor: str = "processes", workers_seen: int | None = None, kernel: str = "python",
) -> dict[str, Any]:
    """The metrics.json document; ``failures``: the inputs that could not be read, and why;
    ``executor``: where the work ran ("processes", "serial" or "dask"), ``workers_seen``: how
    many workers returned results (default ``workers``); ``kernel``: which mapper counted the
    lines (``"compiled"`` or ``"python"``)."""
    wall = clock.wall()
    return {
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(clock.cpu(), 3),
        "peak_memory_mb": round(peak_bytes / 1e6, 1),
        "executor": executor,
        "workers": workers,
        "workers_seen": workers if workers_seen is None else workers_seen,
        "chunks": chunks,
        "bytes": nbytes,
        "lines": lines,
        "throughput_mb_s": round(nbytes / 1e6 / wall, 1) if wall > 0 else 0.0,
        "lines_per_second": round(lines / wall) if wall > 0 else 0,
        "stages": {name: round(seconds, 3) for name, seconds in stages.items()},
        "kernel": kernel,
        "failed_inputs": [{"path": path, "error": reason}
                          for path, reason in sorted((failures or {}).items())],
    }
