"""The Executor protocol: how the engine hands picklable work to something that runs it.

``SerialExecutor`` maps in the calling process (tests, debugging); ``pool.PoolExecutor`` maps on
local worker processes; anything with the same ``imap``, ``workers`` and ``in_flight`` fits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

from ..errors import CancelledError, MapError
from ..ingest.split import Split

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Applies a picklable function to items, yielding results in any order.

    ``cancel``, if given, is asked now and then (at least every CANCEL_POLL seconds while
    waiting on workers); once it says True, the work in flight is dropped and CancelledError raised."""

    workers: int
    """Items that run at once."""
    in_flight: int
    """Items mapped at once: the memory plan counts one Partial for each."""
    task_bytes: int | None
    """Memory a task has where it runs, when the executor knows it (a cluster's workers); None
    for local processes, which the memory plan sizes itself."""
    reruns_tasks: bool
    """Whether a task may run more than once (a retry after a lost worker): what a task wrote
    must then be read only from the run whose result was taken."""
    workers_seen: set[str]
    """The workers that ran tasks, by address (empty when local)."""

    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], cancel: Callable[[], bool] | None = None
    ) -> Iterator[R]: ...

    def on_every_worker(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` once in every long-lived worker (to let go of what a run left there)."""


CANCEL_POLL = 0.2


class LocalExecutor:
    """What local executors share: no memory limit per task but the plan's, no reruns, and
    workers that end with the executor (nothing to release in them)."""

    task_bytes: int | None = None
    reruns_tasks = False

    def __init__(self) -> None:
        self.workers_seen: set[str] = set()

    def on_every_worker(self, fn: Callable[[], object]) -> None:
        return None


class SerialExecutor(LocalExecutor):
    """Maps in the calling process, one item after another (``cancel`` is asked between items;
    ``fn`` may raise CancelledError itself, which passes through)."""

    workers = 1
    in_flight = 1

    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], cancel: Callable[[], bool] | None = None
    ) -> Iterator[R]:
        for item in items:
            if cancel is not None and cancel():
                raise CancelledError
            try:
                result = fn(item)
            except CancelledError:
                raise
            except Exception as err:
                raise MapError(f"failed on {name_of(item)}: {err!r}") from err
            yield result


def name_of(item: object) -> str:
    if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], Split):
        item = item[1]
    if isinstance(item, Split):
        end = "end" if item.end is None else str(item.end)
        return f"{item.path} bytes {item.start}-{end}"
    return repr(item)
