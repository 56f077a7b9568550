"""An Executor on a Dask distributed cluster (``--scheduler tcp://host:8786``).

Tasks are the same picklable functions and items as for local processes: a split names a file
or object and a byte range, never its bytes. Results are fetched one at a time as they finish
(the caller merges each before the next is fetched), with a bounded number of tasks submitted
ahead, so the client never holds every result. A worker that dies takes its tasks with it and
the scheduler runs them again elsewhere (Dask's ``distributed.scheduler.allowed-failures``); a
task that raises is retried RETRIES times, then the run stops naming its item. The
``distributed`` package is an optional extra (``[dask]``), imported when the executor starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import CancelledError, ClusterError, MapError
from .base import CANCEL_POLL, name_of

T = TypeVar("T")
R = TypeVar("R")

CONNECT_SECONDS = 5.0
"""How long to try reaching the scheduler, and then to wait for a first worker."""
CONNECT_RETRY = 0.1
"""Seconds between tries to reach the scheduler."""
RETRIES = 2
"""Runs of a task that raises, after the first, before the run fails."""
AHEAD = 2
"""Tasks submitted per worker thread: one running, one queued on the worker, so none idles
while its next result travels."""
REORDER = 4
"""As for local processes: a task is submitted only while the oldest unfinished one is fewer
than this many times the threads before it."""
WORKER_BYTES = 150_000_000
"""A Dask worker's own memory (interpreter, distributed, this package), out of its limit."""
UNLIMITED_TASK_BYTES = 2_000_000_000
"""Memory assumed per task on a worker that has no memory limit."""


class DaskExecutor:
    """Maps on the workers of a Dask distributed cluster. Use it as a context manager: the
    client connects on entry (ClusterError when it cannot) and closes on exit."""

    reruns_tasks = True
    """A task may run more than once (a retry, a worker lost before its result was fetched):
    what it writes must not count twice (see ``reduce.spill.new_tag``)."""

    def __init__(
        self, address: str, connect_timeout: float | None = None, retries: int | None = None
    ) -> None:
        self.address = address
        self.connect_timeout = CONNECT_SECONDS if connect_timeout is None else connect_timeout
        self.retries = RETRIES if retries is None else retries
        self.workers = 1
        """Worker threads in the cluster when the run started: tasks run at once."""
        self.in_flight = 1
        """Results held here at once (the memory plan counts one Partial)."""
        self.task_bytes: int | None = None
        """Memory a task may use on its worker: the smallest worker limit over its threads."""
        self.workers_seen: set[str] = set()
        """Addresses of the workers that returned a result."""
        self.client: Any = None

    def __enter__(self) -> DaskExecutor:
        try:
            import distributed
        except ImportError:
            raise ClusterError(
                "--scheduler needs the [dask] extra: pip install 'mapreduce_logs[dask]'"
            ) from None
        self._check_reachable()
        try:
            with _quiet_dask():
                self.client = distributed.Client(
                    self.address, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as err:
            raise ClusterError(f"cannot reach the Dask scheduler at {self.address}: "
                               f"{_first_line(err)}") from None
        try:
            self.client.wait_for_workers(1, timeout=self.connect_timeout)
        except (OSError, TimeoutError) as err:
            self.close()
            raise ClusterError(f"the Dask scheduler at {self.address} has no worker: "
                               f"{_first_line(err)}") from None
        self._size_tasks()
        return self

    def _check_reachable(self) -> None:
        """ClusterError for an address that is not one, a TLS address without Dask's TLS
        settings, or a port nobody listens on: found before a Client is made (one that fails
        half-made takes seconds more to go away)."""
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.security import Security

        try:
            scheme, location = parse_address(self.address)
            host, port = parse_host_port(location)
        except ValueError as err:
            raise ClusterError(f"not a Dask scheduler address: {self.address!r} ({err}); "
                               "expected tcp://host:port") from None
        if scheme not in ("tcp", "tls"):
            raise ClusterError(f"not a Dask scheduler address: {self.address!r}; "
                               "expected tcp://host:port or tls://host:port")
        if scheme == "tls" and Security().get_connection_args("client")["ssl_context"] is None:
            raise ClusterError(f"{self.address} needs Dask's TLS settings (distributed.comm.tls "
                               "in Dask's configuration)")
        deadline = time.monotonic() + self.connect_timeout
        while True:  # a scheduler just started may not listen yet
            try:
                socket.create_connection((host, int(port)), timeout=self.connect_timeout).close()
                break
            except OSError as err:
                if time.monotonic() >= deadline:
                    raise ClusterError(f"cannot reach the Dask scheduler at {self.address}: "
                                       f"{err.strerror or err}") from None
                time.sleep(CONNECT_RETRY)
        try:
            with _quiet_dask():
                identity = asyncio.run(_identify(self.address, self.connect_timeout))
        except Exception as err:  # noqa: BLE001 - whatever answers there, it is no scheduler
            raise ClusterError(f"no Dask scheduler answers at {self.address}: "
                               f"{_first_line(err)}") from None
        if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
            raise ClusterError(f"no Dask scheduler answers at {self.address}")

    def _size_tasks(self) -> None:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        threads = [max(1, int(w.get("nthreads", 1))) for w in info.values()]
        self.workers = max(1, sum(threads))
        per_task = []
        for w, n in zip(info.values(), threads, strict=True):
            limit = int(w.get("memory_limit") or 0)
            per_task.append((limit - WORKER_BYTES) // n if limit else UNLIMITED_TASK_BYTES)
        self.task_bytes = max(1, min(per_task))

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception), _quiet_dask():
                self.client.close(timeout=self.connect_timeout)
            self.client = None

    def check_folder(self, folder: str) -> None:
        """ClusterError unless every worker sees ``folder`` as this machine does (the spill
        folder: workers write partition files there and digest each other's)."""
        token = secrets.token_hex(8)
        probe = os.path.join(folder, f".mapreduce_logs-probe-{token}")
        try:
            with open(probe, "w") as f:
                f.write(token)
            seen = self.client.run(_reads, probe, token)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
        blind = sorted(address for address, ok in seen.items() if not ok)
        if blind:
            raise ClusterError(
                f"the spill folder {os.path.abspath(folder)} is not visible to the worker at "
                f"{blind[0]}: give --spill-dir a folder that every worker shares with this "
                "machine, at the same path")

    def check_relative(self, paths: list[str]) -> None:
        """ClusterError if ``paths`` holds a relative path and some worker runs in another
        folder than this process (it would open another file, or none)."""
        if not paths:
            return
        here = os.getcwd()
        folders: dict[str, str] = self.client.run(os.getcwd)
        elsewhere = sorted(address for address, cwd in folders.items() if cwd != here)
        if elsewhere:
            raise ClusterError(
                f"{paths[0]} is a relative path, and the worker at {elsewhere[0]} runs in "
                f"another folder ({folders[elsewhere[0]]}): give absolute paths")

    def on_every_worker(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` in every worker process (best effort: a worker that fails is skipped)."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.run(fn, on_error="ignore")

    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], cancel: Callable[[], bool] | None = None
    ) -> Iterator[R]:
        if self.client is None:
            raise RuntimeError("DaskExecutor is used inside a with block")
        import distributed

        run = uuid.uuid4().hex[:8]
        source = enumerate(items)
        pending: dict[Any, tuple[int, T]] = {}
        exhausted = False
        submitted = 0
        oldest = 0  # every item before this one has finished
        done_ahead: set[int] = set()
        ahead = max(2, AHEAD * self.workers)
        reorder = max(ahead, REORDER * self.workers)

        def top_up() -> None:
            nonlocal exhausted, submitted
            while not exhausted and len(pending) < ahead:
                if submitted >= oldest + reorder:
                    return
                numbered = next(source, None)
                if numbered is None:
                    exhausted = True
                    return
                index, item = numbered
                future = self.client.submit(
                    _on_worker, fn, item, key=f"mapreduce_logs-{run}-{index}",
                    retries=self.retries, pure=False)
                pending[future] = numbered
                submitted += 1

        try:
            top_up()
            while pending:
                if cancel is not None and cancel():
                    raise CancelledError
                try:
                    with self.client.as_current():
                        done, _ = distributed.wait(
                            list(pending), timeout=None if cancel is None else CANCEL_POLL,
                            return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                for future in done:
                    index, item = pending.pop(future)
                    if future.status != "finished":
                        err = future.exception() if future.status == "error" else future.status
                        raise MapError(f"failed on {name_of(item)}: {_first_line(err)}")
                    address, result = future.result()
                    future.release()
                    del future
                    self.workers_seen.add(address)
                    done_ahead.add(index)
                    while oldest in done_ahead:
                        done_ahead.remove(oldest)
                        oldest += 1
                    top_up()  # before the result is merged: the workers go on meanwhile
                    yield result
                    del result
        finally:
            if pending:
                with contextlib.suppress(Exception):
                    self.client.cancel(list(pending), force=True)
                pending.clear()


async def _identify(address: str, timeout: float) -> Any:
    """What the server at ``address`` says it is (a scheduler: {"type": "Scheduler", ...})."""
    from distributed.core import rpc
    from distributed.security import Security

    remote = rpc(address, timeout=timeout,
                 connection_args=Security().get_connection_args("client"))
    try:
        return await asyncio.wait_for(remote.identity(), timeout)
    finally:
        await remote.close_rpc()


def _on_worker(fn: Callable[[T], R], item: T) -> tuple[str, R]:
    """Runs in a Dask worker: ``fn(item)``, and the address of the worker that ran it."""
    from distributed import get_worker

    return get_worker().address, fn(item)


def _reads(path: str, token: str) -> bool:
    try:
        with open(path) as f:
            return f.read() == token
    except OSError:
        return False


def _first_line(err: object) -> str:
    text = repr(err) if isinstance(err, BaseException) else str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask logs a failed connection at length; the run says it in one line."""
    import logging

    loggers = [logging.getLogger(name) for name in ("distributed", "distributed.client")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
