"""Local worker processes, each fed through a pipe of its own, one item at a time."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import CancelledError, MapError
from .base import CANCEL_POLL, LocalExecutor, R, T, name_of


class PoolExecutor(LocalExecutor):
    """Maps on worker processes, each fed through a pipe of its own, one item at a time.

    Use it as a context manager: the workers start on entry (before any helper thread, since
    they are forked) and stop on exit. Each worker holds one item; the next is sent as soon as
    its result has arrived, before the result is unpickled and handed on, so a worker waits only
    for the pipe. Nothing is shared between workers: one can be killed at any instant (the OOM
    killer, a stop after a failure or Ctrl-C) without leaving a lock held that the others or
    the parent would wait on for ever. On the first failure, or when a worker dies, the
    remaining work is dropped and a MapError naming the item is raised.
    """

    def __init__(self, workers: int) -> None:
        super().__init__()
        self.workers = workers
        self.in_flight = workers
        """Items mapped at once: the memory plan counts one Partial in each worker."""
        self.reorder = REORDER * workers
        """An item is sent only while the oldest unfinished one is fewer than this many before
        it: a slow split holds the others back a little, and what waits on it (pieces of files
        that cannot be joined yet) stays bounded."""
        self._workers: list[_Worker] = []
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")

    def __enter__(self) -> PoolExecutor:
        self._workers = []
        for _ in range(self.workers):
            self._workers.append(_Worker(self._context, self._workers))
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers = []

    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], cancel: Callable[[], bool] | None = None
    ) -> Iterator[R]:
        if not self._workers:
            raise RuntimeError("PoolExecutor is used inside a with block")
        source = enumerate(items)
        exhausted = False
        submitted = 0
        oldest = 0  # every item before this one has finished
        done_ahead: set[int] = set()

        def feed(worker: _Worker) -> bool:
            """Send an idle worker the next item if the order allows; False when none is left."""
            nonlocal submitted
            if submitted >= oldest + self.reorder:
                return True
            numbered = next(source, _END)
            if numbered is _END:
                return False
            worker.send(fn, numbered)
            submitted += 1
            return True

        try:
            while True:
                for worker in self._workers:
                    if not exhausted and worker.task is None:
                        exhausted = not feed(worker)
                busy = [worker for worker in self._workers if worker.task is not None]
                if not busy:
                    return
                worker = _ready(busy, cancel)
                index, item = worker.task  # type: ignore[misc]
                ok, payload = worker.receive()
                done_ahead.add(index)
                while oldest in done_ahead:
                    done_ahead.remove(oldest)
                    oldest += 1
                if ok and not exhausted:
                    exhausted = not feed(worker)  # before unpickling: the worker goes on meanwhile
                if not ok:
                    raise MapError(f"failed on {name_of(item)}: {payload}")
                result = pickle.loads(payload)
                del payload
                yield result
        finally:
            for i, worker in enumerate(self._workers):
                if worker.task is not None or not worker.process.is_alive():
                    # A result would arrive after we are gone, or it died: replace the worker.
                    worker.stop()
                    others = self._workers[:i] + self._workers[i + 1 :]
                    self._workers[i] = _Worker(self._context, others)


REORDER = 4
"""PoolExecutor.reorder as a multiple of the workers."""

_END: Any = object()


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: Any, siblings: list[_Worker]) -> None:
        self.conn, child = context.Pipe(duplex=True)
        # A forked child inherits the parent's ends of its own pipe and its siblings'; it closes
        # them, or it would wait for ever on a pipe that the death of the parent does not close.
        inherited = []
        if context.get_start_method() == "fork":
            inherited = [s.conn.fileno() for s in [*siblings, self]]
        self.process = context.Process(target=_serve, args=(child, inherited), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple[int, Any] | None = None

    def send(self, fn: Callable[[Any], Any], numbered: tuple[int, Any]) -> None:
        self.task = numbered
        with contextlib.suppress(OSError):  # it died; receive() says so
            self.conn.send((fn, numbered[1]))

    def receive(self) -> tuple[bool, Any]:
        """(True, the pickled result) or (False, the error as text); the task is done after it."""
        try:
            ok, error = self.conn.recv()
            payload = self.conn.recv_bytes() if ok else error
        except (EOFError, OSError):
            self.process.join(1)
            code = self.process.exitcode
            ok, payload = False, f"the worker process died (exit status {code})"
        self.task = None
        return ok, payload

    def stop(self) -> None:
        if self.task is None and self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        self.task = None


def _ready(busy: list[_Worker], cancel: Callable[[], bool] | None = None) -> _Worker:
    """A busy worker whose result (or death) has arrived, waiting for one; CancelledError when
    ``cancel`` says so first (the caller's ``finally`` replaces the busy workers)."""
    by_handle: dict[Any, _Worker] = {}
    for worker in busy:
        by_handle[worker.conn] = worker
        by_handle[worker.process.sentinel] = worker
    while True:
        if cancel is not None and cancel():
            raise CancelledError
        ready = multiprocessing.connection.wait(
            list(by_handle), timeout=None if cancel is None else CANCEL_POLL)
        if ready:
            return by_handle[ready[0]]


def _serve(conn: Any, inherited: list[int]) -> None:
    """A worker's life: (fn, item) in, (True, None) and the pickled result or (False, error text)
    out, until None or the parent's end closes (the parent stopped or died). Ctrl-C is left to
    the parent, which stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    # A worker in the middle of a split does not read its pipe: it learns of a parent killed
    # outright (SIGKILL, the OOM killer) from being given another parent.
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, item = task
        del task
        try:
            data = pickle.dumps(fn(item), pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # noqa: BLE001 - any failure of the item goes back to the parent
            with contextlib.suppress(OSError):
                conn.send((False, repr(err)))
            continue
        finally:
            del fn, item
        try:
            conn.send((True, None))
            conn.send_bytes(data)
        except OSError:  # the parent is gone
            return
        del data


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


ORPHAN_CHECK_SECONDS = 0.2
"""How often a worker checks that the process that started it is still there."""


