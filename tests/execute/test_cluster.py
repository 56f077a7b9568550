"""Runs on a Dask distributed cluster (``--scheduler``): the outputs are the bytes of a local run
on the shipped data, hostile inputs, .gz files and a run that spills; a worker killed in the
middle of a task costs a retry, not the run; failures and bad schedulers are named in one line.
Every cluster here is started by the tests: a LocalCluster of two worker processes, and once
the real ``dask scheduler`` and ``dask worker`` commands."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import strategies
from distributed import LocalCluster
from hypothesis import given, settings
from test_engine import check_run

from mapreduce_logs import (
    Partial,
    SerialExecutor,
    Settings,
    build_anomalies,
    build_summary,
    pipeline,
    run_files,
    to_json,
)
from mapreduce_logs.cli import main
from mapreduce_logs.execute.cluster import DaskExecutor
from mapreduce_logs.reduce import budget, tasks
from mapreduce_logs.reduce.reducer import Reducer

DATA = str(Path(__file__).parent.parent.parent / "data" / "input.txt")
DEADLINE = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit="1GB") as local:
        yield local


@pytest.fixture(scope="module")
def dask(cluster: LocalCluster) -> Iterator[DaskExecutor]:
    with DaskExecutor(cluster.scheduler_address) as executor:
        yield executor


def run_cli(tmp: Path, name: str, *args: str) -> tuple[int, dict[str, bytes]]:
    """``main(["run", *args])`` into ``tmp/name``: the exit status and the output files."""
    out = tmp / name
    code = main(["run", *args, "--out", str(out), "--quiet"])
    return code, {p.name: p.read_bytes() for p in out.glob("*.json")} if out.exists() else {}


def documents(partial: Partial, knobs: Settings) -> tuple[bytes, bytes]:
    return to_json(build_summary(partial, knobs)), to_json(build_anomalies(partial, knobs))


def local_documents(files: list[str], knobs: Settings) -> tuple[bytes, bytes]:
    """The documents of a local run, in this process (the oracle is slow on the shipped data;
    tests/test_engine.py holds the local engine to it)."""
    return documents(run_files(files, knobs, SerialExecutor()), knobs)


def test_executor_sizes_tasks_from_the_workers(dask: DaskExecutor) -> None:
    """Two single-thread workers of 1 GB: two task slots, each given less than 1 GB."""
    assert dask.workers == 2
    assert dask.task_bytes is not None and 0 < dask.task_bytes < 1_000_000_000
    planned = budget.plan(Settings(), dask.workers, dask.in_flight, dask.task_bytes)
    assert planned.chunk_size * budget.CHUNK_GROWTH <= dask.task_bytes


@pytest.mark.parametrize("chunk", ["1000", "20000", "33554432"])
def test_shipped_data_equals_local_run(tmp_path: Path, cluster: LocalCluster, chunk: str) -> None:
    """The command with --scheduler writes the bytes of a local run; metrics.json says where."""
    code, local = run_cli(tmp_path, "local", DATA, "--workers", "2", "--chunk-size", chunk)
    assert code == 0
    code, remote = run_cli(tmp_path, "dask", DATA, "--scheduler", cluster.scheduler_address,
                           "--chunk-size", chunk)
    assert code == 0
    for name in ("summary.json", "anomalies.json"):
        assert remote[name] == local[name], name
    metrics = json.loads(remote["metrics.json"])
    assert metrics["executor"] == "dask"
    assert metrics["workers"] == 2
    assert 1 <= metrics["workers_seen"] <= 2
    assert metrics["bytes"] == os.path.getsize(DATA)
    assert json.loads(local["metrics.json"])["executor"] == "processes"


def test_scheduler_from_the_environment(tmp_path: Path, cluster: LocalCluster) -> None:
    with mock.patch.dict(os.environ, {"DASK_SCHEDULER_ADDRESS": cluster.scheduler_address}):
        code, remote = run_cli(tmp_path, "dask", DATA)
    assert code == 0
    assert json.loads(remote["metrics.json"])["executor"] == "dask"


@settings(max_examples=strategies.examples(6))
@given(files=strategies.runs(strategies.with_long_lines, max_files=3, max_lines=10))
def test_hostile_inputs_equal_oracle(dask: DaskExecutor, files: list[strategies.LogFile]) -> None:
    """Hostile lines and files, .gz among them, give the oracle's bytes on the cluster."""
    check_run(files, Settings(), dask, [7, 4096])


@settings(max_examples=strategies.examples(4))
@given(files=strategies.runs(max_files=3, max_lines=20))
def test_hostile_inputs_spilled_equal_oracle(dask: DaskExecutor,
                                             files: list[strategies.LogFile]) -> None:
    """The same when the counters spill from the first entry on, in partitions digested in
    pieces of 2 entries: written and digested by the workers."""
    with mock.patch.object(pipeline, "plan", _budget_that_spills(pipeline.plan, 0, 2)):
        check_run(files, Settings(), dask, [64])


def _budget_that_spills(real: Any, entries: int = 50, pieces: int = 30) -> Any:
    def tiny(*args: Any, **kwargs: Any) -> budget.Budget:
        planned: budget.Budget = real(*args, **kwargs)
        return dataclasses.replace(planned, spill_entries=entries, partition_entries=pieces)
    return tiny


def test_forced_spill_equals_oracle(tmp_path: Path, dask: DaskExecutor) -> None:
    """With a reducer that spills past 50 entries, the workers write the spill partitions and
    digest them (in pieces of 30 entries), and the outputs are still the oracle's: the shipped
    data, and the same again as one .gz file (spilled while it is read)."""
    gz = tmp_path / "input.log.gz"
    gz.write_bytes(gzip.compress(Path(DATA).read_bytes()))
    files = sorted([DATA, str(gz)])
    knobs = Settings(chunk_size=20_000)
    written = []
    real_add = Reducer.add

    def add(self: Reducer, seq: int, part: Any, done: list[int] | None = None) -> None:
        written.append(done is not None)
        real_add(self, seq, part, done)

    with mock.patch.object(pipeline, "plan", _budget_that_spills(pipeline.plan)), \
            mock.patch.object(Reducer, "add", add):
        partial = run_files(files, knobs, dask, spill_dir=str(tmp_path))
    assert any(written), "no worker wrote to the spill folder"
    assert documents(partial, knobs) == local_documents(files, knobs)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".mapreduce_logs-spill")]


# --- faults ----------------------------------------------------------------------------------

def _install_barrier(folder: str, offset: int) -> None:
    """In a worker: the first task (of any worker) to map the split holding byte ``offset``
    notes its pid in ``folder``/started and waits for ``folder``/release. The mapper is
    patched where ``map_chunk`` looks it up on each call (a worker keeps the functions it was
    sent)."""
    real = tasks.map_split
    if getattr(real, "real", None) is not None:
        return

    def blocking(split: Any, *args: Any, **kwargs: Any) -> Any:
        if _holds(split, offset):
            try:
                fd = os.open(os.path.join(folder, "started"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                limit = time.monotonic() + DEADLINE
                while not os.path.exists(os.path.join(folder, "release")):
                    if time.monotonic() > limit:
                        raise TimeoutError("never released")
                    time.sleep(0.02)
        return real(split, *args, **kwargs)

    blocking.real = real  # type: ignore[attr-defined]
    tasks.map_split = blocking


def _holds(split: Any, offset: int) -> bool:
    return bool(split.start <= offset < (split.end if split.end is not None else 1 << 62))


def _uninstall() -> None:
    real = getattr(tasks.map_split, "real", None)
    if real is not None:
        tasks.map_split = real


def _wait_for(path: Path) -> str:
    limit = time.monotonic() + DEADLINE
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < limit, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


def test_worker_killed_mid_task_costs_a_retry(tmp_path: Path, cluster: LocalCluster,
                                              dask: DaskExecutor) -> None:
    """A worker SIGKILLed while it maps a chunk: the chunk runs again elsewhere and the outputs
    are the oracle's."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    knobs = Settings(chunk_size=20_000)
    dask.client.run(_install_barrier, str(barrier), 100_000)
    _kill_at_barrier_and_compare(tmp_path, barrier, knobs, cluster, dask, _uninstall)


def _kill_at_barrier_and_compare(tmp_path: Path, barrier: Path, knobs: Settings,
                                 cluster: LocalCluster, dask: DaskExecutor,
                                 uninstall: Callable[..., None], *args: str) -> None:
    """Run the shipped data on the cluster in a thread, SIGKILL the worker that reaches the
    barrier, let the others go on: the outputs must be a local run's."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["partial"] = run_files([DATA], knobs, dask, spill_dir=str(tmp_path))
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            result["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    try:
        pid = int(_wait_for(barrier / "started"))
        os.kill(pid, signal.SIGKILL)
    finally:
        (barrier / "release").touch()
        thread.join(DEADLINE)
        dask.client.run(uninstall, *args)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert documents(result["partial"], knobs) == local_documents([DATA], knobs)
    cluster.wait_for_workers(2, timeout=DEADLINE)  # the nanny starts another


def _install_failure(offset: int) -> None:
    real = tasks.map_split

    def failing(split: Any, *args: Any, **kwargs: Any) -> Any:
        if _holds(split, offset):
            raise RuntimeError("planted failure")
        return real(split, *args, **kwargs)

    failing.real = real  # type: ignore[attr-defined]
    tasks.map_split = failing


def test_task_failing_every_time_names_file_and_range(
    tmp_path: Path, cluster: LocalCluster, dask: DaskExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    """A chunk whose task raises on every try: exit 1 and one line with the file and bytes."""
    dask.client.run(_install_failure, 200_000)
    try:
        code, _ = run_cli(tmp_path, "dask", DATA, "--scheduler", cluster.scheduler_address,
                          "--chunk-size", "20000")
    finally:
        dask.client.run(_uninstall)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1, err
    assert f"failed on {DATA} bytes " in err[0] and "planted failure" in err[0], err


def test_unreadable_input_is_exit_3_with_the_rest(tmp_path: Path, cluster: LocalCluster,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated .gz: exit 3 naming it, the other file counted, as for a local run."""
    bad = tmp_path / "in" / "bad.log.gz"
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(Path(DATA).read_bytes())[:5000])
    shutil.copy(DATA, tmp_path / "in" / "good.log")
    code, local = run_cli(tmp_path, "local", str(bad.parent), "--workers", "2")
    assert code == 3
    capsys.readouterr()
    code, remote = run_cli(tmp_path, "dask", str(bad.parent), "--scheduler",
                           cluster.scheduler_address)
    assert code == 3
    assert f"could not read {bad}" in capsys.readouterr().err
    for name in ("summary.json", "anomalies.json"):
        assert remote[name] == local[name], name


# --- usage errors ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unreachable_scheduler_is_a_usage_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with mock.patch("mapreduce_logs.execute.cluster.CONNECT_SECONDS", 1.0):
        code, _ = run_cli(tmp_path, "x", DATA, "--scheduler", address)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and f"cannot reach the Dask scheduler at {address}" in err[0], err


def test_without_the_extra_is_a_usage_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with mock.patch.dict(sys.modules, {"distributed": None}):
        code, _ = run_cli(tmp_path, "x", DATA, "--scheduler", "tcp://127.0.0.1:1")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "[dask] extra" in err[0], err


# --- the real commands -------------------------------------------------------------------------

@contextlib.contextmanager
def started(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A command in a session of its own, stopped with everything it started at the end."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _dask_command() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "dask")
    found = beside if os.path.exists(beside) else shutil.which("dask")
    assert found, "the dask command is missing (pip install '.[test]')"
    return found


def test_real_scheduler_and_worker_commands(tmp_path: Path) -> None:
    """``dask scheduler`` and ``dask worker`` started as a user would, on loopback; the command
    run as a subprocess with --scheduler writes the bytes of a local run, within --memory-mb."""
    dask = _dask_command()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    with started([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                  "--no-dashboard"], tmp_path / "scheduler.log"), \
            started([dask, "worker", address, "--nworkers", "1", "--nthreads", "2",
                     "--memory-limit", "1GB", "--no-dashboard", "--host", "127.0.0.1"],
                    tmp_path / "worker.log"):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent.parent)}
        done = subprocess.run(
            [sys.executable, "-m", "mapreduce_logs", "run", DATA, "--out", str(tmp_path / "dask"),
             "--scheduler", address, "--chunk-size", "50000", "--memory-mb", "150", "--quiet"],
            env=env, capture_output=True, timeout=DEADLINE, check=False)
        assert done.returncode == 0, (done.stderr.decode(),
                                      (tmp_path / "worker.log").read_text())
    code, local = run_cli(tmp_path, "local", DATA, "--workers", "2", "--chunk-size", "50000")
    assert code == 0
    for name in ("summary.json", "anomalies.json"):
        assert (tmp_path / "dask" / name).read_bytes() == local[name], name
    metrics = json.loads((tmp_path / "dask" / "metrics.json").read_bytes())
    assert (metrics["executor"], metrics["workers"]) == ("dask", 2)
    assert 0 < metrics["peak_memory_mb"] < 150  # the client's tree only: the workers are not in it


def _wait_for_release(n: int, folder: str) -> int:
    limit = time.monotonic() + DEADLINE
    while n and not os.path.exists(os.path.join(folder, "release")):
        if time.monotonic() > limit:
            raise TimeoutError("never released")
        time.sleep(0.02)
    return n


def _tasks_on_scheduler(dask_scheduler: Any) -> int:
    return len(dask_scheduler.tasks)


def test_stopping_early_cancels_the_cluster_tasks(tmp_path: Path, dask: DaskExecutor) -> None:
    """Leaving the results (an error, Ctrl-C) cancels every task still on the cluster."""
    results = dask.imap(functools.partial(_wait_for_release, folder=str(tmp_path)), range(20))
    assert next(results) == 0  # the others wait on the release file
    assert dask.client.run_on_scheduler(_tasks_on_scheduler) > 0
    results.close()
    limit = time.monotonic() + DEADLINE
    while dask.client.run_on_scheduler(_tasks_on_scheduler):
        assert time.monotonic() < limit, "tasks left on the cluster"
        time.sleep(0.05)
    (tmp_path / "release").touch()
    wait = functools.partial(_wait_for_release, folder=str(tmp_path))
    assert sorted(dask.imap(wait, range(3))) == [0, 1, 2]  # and the executor still serves


def _blind(*args: Any) -> bool:
    return False


def _install_blindness() -> None:
    from mapreduce_logs.execute import cluster

    if cluster._reads is not _blind:
        cluster._seeing = cluster._reads  # type: ignore[attr-defined]
        cluster._reads = _blind


def _cure_blindness() -> None:
    from mapreduce_logs.execute import cluster

    cluster._reads = getattr(cluster, "_seeing", cluster._reads)


def test_spill_folder_the_workers_cannot_see_is_a_usage_error(
    tmp_path: Path, cluster: LocalCluster, dask: DaskExecutor,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """Workers write and digest each other's spill files: a spill folder one of them does not
    see (checked with a probe file before any work) stops the run, naming the folder."""
    dask.client.run(_install_blindness)
    try:
        code, _ = run_cli(tmp_path, "x", DATA, "--scheduler", cluster.scheduler_address,
                          "--spill-dir", str(tmp_path))
    finally:
        dask.client.run(_cure_blindness)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and f"the spill folder {tmp_path} is not visible to the worker" in err[0]


def test_relative_paths_need_the_workers_folder(
    tmp_path: Path, cluster: LocalCluster, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path is opened from the worker's own folder: fine when it is the client's,
    a usage error when it is not."""
    code, remote = run_cli(tmp_path, "same", os.path.relpath(DATA), "--scheduler",
                           cluster.scheduler_address)
    assert code == 0
    assert json.loads(remote["summary.json"])["totals"]["lines"] > 0
    shutil.copy(DATA, tmp_path / "input.log")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code, _ = run_cli(tmp_path, "other", "input.log", "--scheduler", cluster.scheduler_address)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "input.log is a relative path" in err[0], err


@pytest.mark.parametrize("what", ["not an address", "not a scheduler"])
def test_what_is_no_scheduler_is_a_usage_error(tmp_path: Path, what: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed address, or a port where something else listens: exit 2, one line."""
    with socket.socket() as listener, \
            mock.patch("mapreduce_logs.execute.cluster.CONNECT_SECONDS", 1.0):
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = ("tcp://127.0.0.1" if what == "not an address"
                   else f"tcp://127.0.0.1:{listener.getsockname()[1]}")
        code, _ = run_cli(tmp_path, "x", DATA, "--scheduler", address)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    expected = "not a Dask scheduler address" if what == "not an address" else "no Dask scheduler"
    assert len(err) == 1 and expected in err[0], err


# --- a worker lost while the run spills ----------------------------------------------------------

def _block_once(folder: str) -> None:
    """The first caller (of any worker) notes its pid in ``folder``/started and waits for
    ``folder``/release; later callers go on."""
    try:
        fd = os.open(os.path.join(folder, "started"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    limit = time.monotonic() + DEADLINE
    while not os.path.exists(os.path.join(folder, "release")):
        if time.monotonic() > limit:
            raise TimeoutError("never released")
        time.sleep(0.02)


def _install_after(folder: str, module: str, name: str) -> None:
    """In a worker: ``module.name`` does its work, then the first call blocks (see above)."""
    import importlib

    owner = importlib.import_module(module)
    real = getattr(owner, name)
    if getattr(real, "real", None) is not None:
        return

    def then_block(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        _block_once(folder)
        return result

    then_block.real = real  # type: ignore[attr-defined]
    setattr(owner, name, then_block)


def _uninstall_after(module: str, name: str) -> None:
    import importlib

    owner = importlib.import_module(module)
    real = getattr(getattr(owner, name), "real", None)
    if real is not None:
        setattr(owner, name, real)


@pytest.mark.parametrize(("module", "name"), [
    ("mapreduce_logs.reduce.tasks", "write_run"),  # a chunk's counters written, not yet fetched
    ("mapreduce_logs.reduce.spill", "combine"),  # a partition read and digested, not returned
])
def test_worker_killed_after_writing_to_the_spill_folder(
    tmp_path: Path, cluster: LocalCluster, dask: DaskExecutor, module: str, name: str
) -> None:
    """A task run again after its worker died must not count twice what the first run wrote
    to the spill folder, nor miss what the first run had read: the outputs are still those of
    a local run."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    knobs = Settings(chunk_size=20_000)
    dask.client.run(_install_after, str(barrier), module, name)
    with mock.patch.object(pipeline, "plan", _budget_that_spills(pipeline.plan)):
        _kill_at_barrier_and_compare(tmp_path, barrier, knobs, cluster, dask,
                                     _uninstall_after, module, name)
