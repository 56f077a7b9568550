"""Peak memory of a process tree: the sum of PSS (RSS where PSS is not given) over a process and
all its descendants, sampled every 50 ms in a thread. The same measure as docs/outputs.md (run figures), taken
from outside, so every tool in the benchmark is measured the same way."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from mapreduce_logs.report.metrics import MemorySampler, tree_memory

INTERVAL = 0.05


# The benchmark measures every tool from outside with the product's own sampler.
tree_pss = tree_memory
TreeSampler = MemorySampler


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
