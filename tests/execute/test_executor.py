"""The executors: every item mapped once, failures and dead workers named, a pool reusable after
a stop at any point."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mapreduce_logs import MapError, PoolExecutor, SerialExecutor


def square(n: int) -> int:
    return n * n


def fail_on_three(n: int) -> int:
    if n == 3:
        raise ValueError("three is bad")
    return n


def die_on_three(n: int) -> int:
    if n == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return n


def big(n: int) -> bytes:
    return bytes([n % 256]) * (8 << 20)


@pytest.fixture(scope="module")
def pool() -> Iterator[PoolExecutor]:
    with PoolExecutor(2) as two:
        yield two


def test_every_item_once(pool: PoolExecutor) -> None:
    assert sorted(pool.imap(square, range(50))) == [n * n for n in range(50)]
    assert sorted(SerialExecutor().imap(square, range(50))) == [n * n for n in range(50)]


def test_results_larger_than_a_pipe(pool: PoolExecutor) -> None:
    sizes = sorted((len(b), b[0]) for b in pool.imap(big, range(5)))
    assert sizes == [(8 << 20, n) for n in range(5)]


@pytest.mark.parametrize("executor", ["pool", "serial"])
def test_failure_names_the_item(pool: PoolExecutor, executor: str) -> None:
    mapper = pool if executor == "pool" else SerialExecutor()
    with pytest.raises(MapError, match=r"failed on 3: ValueError.*three is bad"):
        list(mapper.imap(fail_on_three, range(10)))
    assert sorted(pool.imap(square, range(10))) == [n * n for n in range(10)]


def test_dead_worker_is_named_and_replaced(pool: PoolExecutor) -> None:
    with pytest.raises(MapError, match=r"failed on 3: the worker process died \(exit status -9\)"):
        list(pool.imap(die_on_three, range(10)))
    assert sorted(pool.imap(square, range(10))) == [n * n for n in range(10)]


@pytest.mark.parametrize("after", [0, 1, 5])
def test_stopping_early_leaves_the_pool_usable(pool: PoolExecutor, after: int) -> None:
    seen = []
    for result in pool.imap(square, range(100)):
        if len(seen) == after:
            break
        seen.append(result)
    assert len(seen) == after
    assert sorted(pool.imap(square, range(20))) == [n * n for n in range(20)]


def test_keyboard_interrupt_in_the_consumer(pool: PoolExecutor) -> None:
    with pytest.raises(KeyboardInterrupt):
        for result in pool.imap(big, range(20)):
            if result[0] == 2:
                raise KeyboardInterrupt
    assert sorted(pool.imap(square, range(20))) == [n * n for n in range(20)]


def test_used_outside_its_block() -> None:
    with pytest.raises(RuntimeError, match="with block"):
        list(PoolExecutor(2).imap(square, range(3)))


def test_workers_stop_on_exit() -> None:
    with PoolExecutor(2) as two:
        list(two.imap(square, range(4)))
        processes = [w.process for w in two._workers]
    assert all(not p.is_alive() for p in processes)


def test_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    """An idle worker waits on its pipe; the death of the parent must close it."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from mapreduce_logs import PoolExecutor\n"
        "with PoolExecutor(3) as pool:\n"
        "    list(pool.imap(abs, range(6)))\n"
        "    print(' '.join(str(w.process.pid) for w in pool._workers), flush=True)\n"
        "    time.sleep(600)\n"
    )
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 3
        parent.kill()
    _assert_gone(pids, seconds=20)


def _assert_gone(pids: list[int], seconds: float) -> None:
    """The processes end within ``seconds``; any left is killed, and the test fails."""
    deadline = time.monotonic() + seconds
    try:
        while any(_running(pid) for pid in pids):
            assert time.monotonic() < deadline, "workers outlived their killed parent"
            time.sleep(0.05)
    finally:
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def busy(marker: str) -> str:
    """Says it has started (a file named ``marker``), then works for ten minutes."""
    Path(marker).touch()
    time.sleep(600)
    return marker


def test_busy_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    """A worker in the middle of a long item does not read its pipe; it must still go."""
    markers = [str(tmp_path / "started-a"), str(tmp_path / "started-b")]
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_executor import busy\n"
        "from mapreduce_logs import PoolExecutor\n"
        "with PoolExecutor(2) as pool:\n"
        "    print(' '.join(str(w.process.pid) for w in pool._workers), flush=True)\n"
        f"    list(pool.imap(busy, {markers!r}))\n"
    )
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        deadline = time.monotonic() + 20
        while not all(os.path.exists(marker) for marker in markers):
            assert time.monotonic() < deadline, "the workers never started their items"
            time.sleep(0.01)
        parent.kill()
    _assert_gone(pids, seconds=10)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.mark.parametrize("make", [lambda: PoolExecutor(2), SerialExecutor])
def test_cancel_drops_the_work_in_flight_and_the_executor_goes_on(make: Any) -> None:
    """``cancel`` turning True stops the pool's wait on a long item within a poll (the serial
    executor asks between items); the executor then maps as before."""
    from mapreduce_logs.errors import CancelledError
    from mapreduce_logs.execute.base import CANCEL_POLL

    with contextlib.ExitStack() as stack:
        executor = make()
        if isinstance(executor, PoolExecutor):
            stack.enter_context(executor)
        asked = time.monotonic() + 0.3
        results = []
        began = time.monotonic()
        with pytest.raises(CancelledError):
            for r in executor.imap(nap, [0.0, 0.5, 60.0, 60.0], lambda: time.monotonic() > asked):
                results.append(r)
        took = time.monotonic() - began
        assert took < 0.3 + 0.5 + 2 * CANCEL_POLL + 1.0, took
        assert results and results[0] == 0.0
        assert sorted(executor.imap(square, range(5))) == [0, 1, 4, 9, 16]


def test_free_memory_is_kept_for_reuse_and_given_back_on_glibc() -> None:
    """The heap's settings find glibc's mallopt and malloc_trim where they are, and are
    harmless: a process that keeps freed memory still computes, and gives it back on demand."""
    import platform

    from mapreduce_logs.execute import heap

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert heap._libc() is not None
    code = ("from mapreduce_logs.execute import heap; heap.reuse_freed_memory(); "
            "blocks = [bytearray(n) for n in range(0, 1 << 24, 1 << 20)]; "
            "print(sum(map(len, blocks))); del blocks; heap.give_back_free_memory()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert int(out) == sum(range(0, 1 << 24, 1 << 20))
    blocks = [bytearray(1000) for _ in range(20_000)]
    del blocks
    assert heap.give_back_free_memory() is None
