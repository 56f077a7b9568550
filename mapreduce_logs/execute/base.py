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

    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], cancel: Callable[[], bool] | None = None
    ) -> Iterator[R]: ...


CANCEL_POLL = 0.2


class SerialExecutor:
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
