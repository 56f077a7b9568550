"""Peak memory of a process tree: the sum of PSS (RSS where PSS is not given) over a process and
all its descendants, sampled every 50 ms in a thread. The same measure as SPEC.md section 5, taken
from outside, so every tool in the benchmark is measured the same way."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import psutil

INTERVAL = 0.05


def tree_pss(root: psutil.Process) -> int:
    """Bytes of ``root`` and its descendants now (PSS, else RSS); 0 once it is gone."""
    try:
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0
    total = 0
    for proc in procs:
        try:
            try:
                total += int(proc.memory_full_info().pss)
            except (AttributeError, psutil.AccessDenied):
                total += int(proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return total


class TreeSampler:
    """Samples ``tree_pss`` of a pid every ``interval`` seconds until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = INTERVAL) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss(self.root))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Run:
    """One timed command: exit status, wall seconds, peak tree memory in bytes."""

    returncode: int
    wall: float
    peak: int
    samples: int
    stderr: str
    timed_out: bool = False


def run_measured(
    cmd: Sequence[str], stdout_path: str, timeout: float | None = None, cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Run ``cmd`` with stdout into a file, timing it and sampling its tree's memory."""
    with open(stdout_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, cwd=cwd, env=env)
        timed_out = False
        with TreeSampler(proc.pid) as sampler:
            try:
                _, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_tree(proc)
                _, err = proc.communicate()
            except BaseException:
                _kill_tree(proc)  # Ctrl-C or any failure here: leave nothing running
                proc.wait()
                raise
        wall = time.perf_counter() - started
    return Run(proc.returncode, wall, sampler.peak, sampler.samples,
               err.decode("utf-8", "replace")[-2000:], timed_out)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Stop a timed-out command and everything it started (by pid, nothing else)."""
    try:
        root = psutil.Process(proc.pid)
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in [root, *children]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue
