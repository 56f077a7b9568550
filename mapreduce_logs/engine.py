"""Map Splits to Partials over an executor, then reduce them into one Partial.

The executor is passed in: ``SerialExecutor`` maps in this process (tests, debugging), and
``PoolExecutor`` maps on a ``multiprocessing`` pool with a bounded number of splits in flight,
so memory does not grow with the input. Anything with the same ``imap`` fits the seam.
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.pool
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .partial import Partial
from .scan import map_split
from .settings import Settings
from .split import Split, split_files

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Applies a picklable function to items, yielding results in any order."""

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...


class SerialExecutor:
    """Maps in the calling process, one item after another."""

    workers = 1

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return map(fn, items)


class MapError(Exception):
    """A worker failed on a split; names the file and byte range."""


class PoolExecutor:
    """Maps on a process pool, keeping at most ``in_flight`` items submitted and unfinished.

    Use it as a context manager: the pool starts on entry (before any helper thread, since the
    workers are forked) and is torn down on exit. On the first failure the remaining work is
    dropped and a MapError naming the item is raised.
    """

    def __init__(self, workers: int, in_flight: int | None = None) -> None:
        self.workers = workers
        self.in_flight = in_flight or 2 * workers
        self._pool: multiprocessing.pool.Pool | None = None

    def __enter__(self) -> PoolExecutor:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._pool = ctx.Pool(self.workers)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        if self._pool is None:
            raise RuntimeError("PoolExecutor is used inside a with block")
        pool = self._pool
        finished: queue.SimpleQueue[tuple[T, R | None, BaseException | None]] = queue.SimpleQueue()
        source = iter(items)
        pending = 0
        failed = False
        try:
            while True:
                while pending < self.in_flight and not failed:
                    item = next(source, _END)
                    if item is _END:
                        break
                    pool.apply_async(
                        fn,
                        (item,),
                        callback=functools.partial(_put_result, finished, item),
                        error_callback=functools.partial(_put_error, finished, item),
                    )
                    pending += 1
                if not pending:
                    return
                item, value, error = finished.get()
                pending -= 1
                if error is not None:
                    failed = True
                    raise MapError(f"failed on {_name(item)}: {error!r}") from error
                yield value  # type: ignore[misc]
        finally:
            if pending:
                # Results still running would arrive after we are gone: restart the pool.
                self.__exit__()
                self.__enter__()


_END: Any = object()


def _put_result(q: queue.SimpleQueue[Any], item: object, value: object) -> None:
    q.put((item, value, None))


def _put_error(q: queue.SimpleQueue[Any], item: object, error: BaseException) -> None:
    q.put((item, None, error))


def _name(item: object) -> str:
    if isinstance(item, Split):
        end = "end" if item.end is None else str(item.end)
        return f"{item.path} bytes {item.start}-{end}"
    return repr(item)


@dataclass
class RunStats:
    """Figures about how a run went (never part of summary.json)."""

    chunks: int = 0
    stages: dict[str, float] = field(default_factory=dict)


def reduce_partials(partials: Iterable[Partial], settings: Settings) -> Partial:
    """Merge partials in arrival order; ``Partial()`` is the start, so one partial is reduced too."""
    acc = Partial(clock_skew_ns=settings.clock_skew_ns)
    for partial in partials:
        acc.update(partial)
    return acc


def run_files(
    files: list[str],
    settings: Settings,
    executor: Executor,
    progress: Callable[[int], None] | None = None,
    stats: RunStats | None = None,
) -> Partial:
    """Split, map and reduce ``files`` into one Partial. Unreadable files land in ``failures``."""
    stats = stats if stats is not None else RunStats()
    started = time.perf_counter()
    failed: dict[str, str] = {}

    def splits() -> Iterator[Split]:
        for item in split_files(files, settings.chunk_size):
            if isinstance(item, Split):
                stats.chunks += 1
                yield item
            else:
                failed[item[0]] = item[1]

    mapper = functools.partial(map_split, settings=settings)
    acc = Partial(clock_skew_ns=settings.clock_skew_ns)
    merge_seconds = 0.0
    for partial in executor.imap(mapper, splits()):
        t = time.perf_counter()
        acc.update(partial)
        merge_seconds += time.perf_counter() - t
        if progress is not None:
            progress(partial.bytes_read)
    for path, reason in failed.items():
        acc.failures.setdefault(path, reason)
    stats.stages["map"] = time.perf_counter() - started - merge_seconds
    stats.stages["reduce"] = merge_seconds
    return acc
