"""The spilling reducer (``reducer.Reducer``, ``spill.py``) and the memory budget (``pipeline.plan``).

With a budget so small that every chunk is spilled and partitions are split again, both
documents are the bytes of an in-memory run, for several chunk sizes and worker counts; the spill
folder is gone after success, a failing mapper, KeyboardInterrupt, SIGINT and SIGTERM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gzip
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import strategies
from hypothesis import given, settings
from hypothesis import strategies as st

import mapreduce_logs.pipeline as pipeline
import mapreduce_logs.reduce.budget as budget_mod
import mapreduce_logs.reduce.reducer as reducer
import mapreduce_logs.reduce.tasks as tasks
import mapreduce_logs.settings as knobs_module
from mapreduce_logs import (
    Executor,
    Partial,
    PoolExecutor,
    Segment,
    SerialExecutor,
    Settings,
    Split,
    build_anomalies,
    build_summary,
    discover,
    map_split,
    merge,
    reduce_partials,
    run_files,
    split_files,
    to_json,
)
from mapreduce_logs.detect import arrays as heavy
from mapreduce_logs.errors import MapError
from mapreduce_logs.ingest import scan
from mapreduce_logs.model import columns
from mapreduce_logs.reduce import cleanup, spill
from mapreduce_logs.reduce.budget import Budget
from mapreduce_logs.reduce.reducer import FirstTokens
from mapreduce_logs.report.html import page_data
from mapreduce_logs.settings import Limits

KNOBS = Settings(
    top=3, window=10, spike_factor=2.0, spike_min_errors=2, burst_factor=2.0, burst_min_lines=3
)
"""Small windows and low thresholds, so that small inputs have many windows and anomalies."""

CHUNK_SIZES = [1, 13, 200, 1 << 20]


def documents(paths: list[str], knobs: Settings, executor: Executor) -> tuple[bytes, bytes]:
    summary, anomalies, _ = outputs(run_files(paths, knobs, executor), knobs)
    return summary, anomalies


def outputs(partial: Partial, knobs: Settings) -> tuple[bytes, bytes, bytes]:
    """summary.json, anomalies.json, and the error lines of the top services and users that
    report.html shows."""
    summary, anomalies = build_summary(partial, knobs), build_anomalies(partial, knobs)
    page = page_data(partial, summary, anomalies, knobs.window)
    errors = {
        "services": {s: (page.service_errors or {}).get(s, 0) for s in summary["service_counts"]},
        "users": {u: (page.user_errors or {}).get(u, 0) for u in summary["user_counts"]},
    }
    return to_json(summary), to_json(anomalies), to_json(errors)


def raw_outputs(paths: list[str], knobs: Settings) -> tuple[bytes, bytes, bytes]:
    """The plain in-memory path: every chunk merged into one raw Partial (no digest)."""
    chunks = [s for s in split_files(paths, 64) if isinstance(s, Split)]
    partial = reduce_partials((map_split(s, knobs) for s in chunks), knobs)
    for path, reason in (s for s in split_files(paths, 64) if not isinstance(s, Split)):
        partial.failures.setdefault(path, reason)
    return outputs(partial, knobs)


@contextlib.contextmanager
def forced_spill(folder: str, partition_entries: int = 2) -> Iterator[list[spill.SpillStore]]:
    """Every chunk spills, partitions of more than ``partition_entries`` are split again; the
    stores made are listed."""
    stores: list[spill.SpillStore] = []

    class Recorded(spill.SpillStore):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            stores.append(self)

    def tiny(knobs: Settings, workers: int, in_flight: int) -> Budget:
        return Budget(knobs.chunk_size, spill_entries=0, partition_entries=partition_entries)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "plan", tiny)
        patch.setattr(reducer, "SpillStore", Recorded)
        patch.setattr(pipeline, "SPILL_DIR", folder)
        yield stores


pytestmark = pytest.mark.usefixtures("each_kernel")


@pytest.fixture(scope="module")
def pool(each_kernel: str) -> Iterator[PoolExecutor]:
    with PoolExecutor(2) as two:
        yield two


# --- inputs with many users, services, windows and level tokens ----------------------------------


def _line(parts: tuple[int, bytes, bytes, bytes]) -> bytes:
    second, level, service, user = parts
    return b"2025-07-22T12:%02d:%02dZ %s %s %s m" % (second // 60, second % 60, level, service, user)


crowd_lines = st.tuples(
    st.integers(0, 299),
    st.sampled_from([b"INFO", b"INFO", b"ERROR", b"ERROR", b"fatal", b"debug"])
    | st.integers(0, 40).map(lambda n: b"Tok%d" % n),
    st.sampled_from([b"auth", b"db"]) | st.integers(0, 30).map(lambda n: b"s%d" % n),
    st.sampled_from([b"hot", b"hot", b"warm"]) | st.integers(0, 500).map(lambda n: b"u%d" % n),
).map(_line)
"""Lines over 30 windows of 10 s: new users, services and unknown level tokens on most lines."""

bursts = st.tuples(st.integers(0, 299), st.integers(3, 12), st.sampled_from([b"hot", b"spam"])).map(
    lambda t: [_line((t[0], b"INFO", b"auth", t[2]))] * t[1]
)
"""One user's lines piled into one window."""


def _crowd_file(parts: tuple[str, list[bytes], list[list[bytes]], int, bool]) -> strategies.LogFile:
    name, lines, piles, steady, newline = parts
    for pile in piles:
        lines = lines + pile
    # A steady user in every window, so that the busiest share is not 0 and bursts need it.
    lines += [_line((w * 10 + 5, b"INFO", b"auth", b"steady")) for w in range(30)] * steady
    return strategies.LogFile(name, tuple(lines), newline, strategies.NOON * 1_000_000_000)


crowds = st.lists(
    st.tuples(
        st.sampled_from(["a.log", "b.log", "c.log"]),
        st.lists(crowd_lines, max_size=40),
        st.lists(bursts, max_size=2),
        st.sampled_from([0, 0, 1, 2]),
        st.booleans(),
    ).map(_crowd_file),
    min_size=1,
    max_size=3,
    unique_by=lambda f: f.name,
)


# --- the documents do not depend on spilling ------------------------------------------------------


@settings(max_examples=60)
@given(files=st.one_of(crowds, strategies.runs(max_files=3, max_lines=12)))
def test_spilled_run_equals_in_memory_run(files: list[strategies.LogFile], pool: PoolExecutor
                                          ) -> None:
    """For any input, chunk size and worker count, a run that spills every chunk and splits
    every partition gives the bytes of a run held in memory, and leaves no spill file."""
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as spills:
        strategies.write_run(data, files)
        paths = discover([data])
        expected = outputs(run_files(paths, KNOBS, SerialExecutor()), KNOBS)
        assert raw_outputs(paths, KNOBS) == expected
        executors: list[Executor] = [SerialExecutor(), pool]
        for executor in executors:
            for chunk in CHUNK_SIZES:
                knobs = dataclasses.replace(KNOBS, chunk_size=chunk)
                with forced_spill(spills) as stores:
                    got = outputs(run_files(paths, knobs, executor), knobs)
                assert got[0].decode().splitlines() == expected[0].decode().splitlines()
                assert got[1].decode().splitlines() == expected[1].decode().splitlines()
                assert got == expected
                assert os.listdir(spills) == []
                valid = run_files(paths, knobs, SerialExecutor()).valid
                flushed = [p for p in paths if p.endswith(".gz") and pipeline.uncompressed_size(p) > chunk]
                assert bool(stores) == (valid > 0 or bool(flushed)), "every valid line is spilled"


subjects = st.sampled_from([b"a", b"b", b"c", b"d", b"e"])
window_counts = st.dictionaries(st.tuples(subjects, st.integers(0, 7)), st.integers(1, 120),
                                max_size=40)


@settings(max_examples=300)
@given(user_lines=window_counts, errors=window_counts, others=window_counts,
       groups=st.dictionaries(subjects, st.integers(0, 2)))
def test_detectors_group_by_group_equal_detectors_on_all(
    user_lines: dict[tuple[bytes, int], int],
    errors: dict[tuple[bytes, int], int],
    others: dict[tuple[bytes, int], int],
    groups: dict[bytes, int],
) -> None:
    """Users and services judged group by group, as the spilling reducer does with its
    partitions (a group's own busiest share filters its burst candidates), give the anomalies
    found on all of them at once."""
    from mapreduce_logs.detect import digest
    from mapreduce_logs.detect import rules as anomalies

    window_lines: Counter[int] = Counter()
    for (_, window), n in user_lines.items():
        window_lines[window] += n
    whole = Partial(user_lines=Counter(user_lines), window_lines=window_lines,
                    service_errors=Counter(errors), service_others=Counter(others))

    def group(table: dict[tuple[bytes, int], int], g: int) -> dict[tuple[bytes, int], int]:
        return {key: n for key, n in table.items() if groups.get(key[0], 0) == g}

    share = 0.0
    candidates: list[anomalies.BurstCandidate] = []
    spikes: list[anomalies.Found] = []
    for g in range(3):
        own = digest.user_share(group(user_lines, g), window_lines, KNOBS)
        share = max(share, own)
        candidates += digest.burst_candidates(group(user_lines, g), window_lines, own, KNOBS)
        spikes += digest.spikes(group(errors, g), group(others, g), KNOBS)
    assert share == digest.busiest_share(whole, KNOBS)
    found = anomalies.bursts(candidates, share, window_lines, KNOBS)
    assert sorted(found) == sorted(digest.detect_bursts(whole, KNOBS))
    assert sorted(spikes) == sorted(digest.detect_spikes(whole, KNOBS))


def as_tables(piece: columns.Columns | columns.Subject) -> spill.Tables:
    """A piece of a partition as Tables (columns, or a subject alone)."""
    if isinstance(piece, columns.Columns):
        return spill.Tables(*(piece.as_dict(i) for i in range(len(piece.tables))))
    tables = spill.Tables.empty()
    for table, windows, counts in zip(tables, piece.windows, piece.counts, strict=True):
        table.update({(piece.name, w): n for w, n in zip(windows.tolist(), counts.tolist(),
                                                          strict=True)})
    return tables


def test_spill_store_splits_partitions_that_do_not_fit(tmp_path: Path) -> None:
    """Runs of the reducer and of workers, summed per partition, give the exact totals; a
    partition over its capacity is split on further hash digits until each piece fits, except
    one subject alone, which cannot be split."""
    store = spill.SpillStore(2, 5, str(tmp_path))
    expected: Counter[tuple[bytes, int]] = Counter()
    for run in range(4):
        tables = spill.Tables.empty()
        for i in range(200):
            key = (b"user%d" % (i * (run + 1) % 150), i % 7)
            tables.user_lines[key] = tables.user_lines.get(key, 0) + 1
            expected[key] += 1
        for w in range(40):  # one service with many windows: cannot be split
            tables.service_others[(b"only", w)] = 1
        if run % 2:
            store.add_written(spill.write_run(store.folder, store.fanout, tables, f"w{run}"))
        else:
            store.spill(tables)
        assert tables.entries() == 0
    got: Counter[tuple[bytes, int]] = Counter()
    users_seen: set[bytes] = set()
    others = 0
    alone = []
    for job in store.jobs():
        for piece in spill.summed(job):
            if isinstance(piece, columns.Subject):
                alone.append(piece.name)
            part = as_tables(piece)
            mine = {user for user, _ in part.user_lines}
            assert not mine & users_seen, "a user's windows are all in one partition"
            users_seen |= mine
            assert part.entries() <= 5 or len({key[0] for table in part for key in table}) == 1
            got.update(part.user_lines)
            others += sum(part.service_others.values())
    assert got == expected
    assert others == 160
    assert b"only" in alone
    assert [f for _, _, files in os.walk(store.folder) for f in files] == [cleanup.LOCK]
    store.close()
    assert os.listdir(tmp_path) == []


def test_first_tokens_do_not_depend_on_arrival_order() -> None:
    """The admitted tokens are the first ``limit`` distinct ones in chunk order, whatever the
    order in which chunks arrive."""
    chunks = [[b"C", b"A"], [b"A", b"B"], [b"D"], [b"E", b"B", b"F"]]

    def part_with(tokens: list[bytes]) -> Partial:
        p = Partial()
        seg = Segment(0, 1)
        seg.unknown_examples = {t: [(i, t.decode())] for i, t in enumerate(tokens)}
        p.segments[("f", 0)] = [seg]
        return p

    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        first = FirstTokens(4)
        for seq in order:
            first.add(seq, part_with(chunks[seq]))
        assert list(first.admitted) == [b"C", b"A", b"B", b"D"]
        assert first.full


@pytest.mark.parametrize("workers", [1, 2])
def test_unknown_levels_past_the_cap_are_dropped_exactly(tmp_path: Path, workers: int) -> None:
    """Only the first ``limits().unknown_levels`` distinct tokens in input order are reported, each with
    its exact count and first examples; every unknown_level line still counts as malformed."""
    tokens = [b"T%d" % (i * 7 % 23) for i in range(300)]
    lines = [_line((i % 300, token, b"auth", b"u%d" % i)) for i, token in enumerate(tokens)]
    (tmp_path / "a.log").write_bytes(b"\n".join(lines[:170]) + b"\n")
    (tmp_path / "b.log").write_bytes(b"\n".join(lines[170:]) + b"\n")
    paths = discover([str(tmp_path)])
    summary, full = documents(paths, KNOBS, SerialExecutor())
    first = list(dict.fromkeys(tokens))[:3]
    expected = _only_tokens(full, {t.decode().upper() for t in first})
    with contextlib.ExitStack() as stack:
        executor: Executor = (
            stack.enter_context(PoolExecutor(2)) if workers == 2 else SerialExecutor()
        )
        stack.enter_context(pytest.MonkeyPatch.context()).setattr(knobs_module, "LIMITS", Limits(unknown_levels=3))
        for chunk in [1, 50, 1 << 20]:
            knobs = dataclasses.replace(KNOBS, chunk_size=chunk)
            assert documents(paths, knobs, executor) == (summary, expected)


def _only_tokens(anomalies_json: bytes, keep: set[str]) -> bytes:
    import json

    doc = json.loads(anomalies_json)
    doc["anomalies"] = [
        a for a in doc["anomalies"] if a["type"] != "unknown_level" or a["level"] in keep
    ]
    doc["counts"]["unknown_level"] = len(keep)
    return to_json(doc)


# --- a digested Partial is finished ---------------------------------------------------------------


def test_digested_partial_refuses_merges_and_other_settings(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(_line((1, b"INFO", b"auth", b"u1")) + b"\n")
    partial = run_files([str(tmp_path / "a.log")], KNOBS, SerialExecutor())
    assert partial.digest is not None
    with pytest.raises(ValueError, match="digested"):
        merge(partial, Partial())
    with pytest.raises(ValueError, match="digested"):
        build_summary(partial, dataclasses.replace(KNOBS, top=KNOBS.top + 1))
    with pytest.raises(ValueError, match="digested"):
        build_anomalies(partial, dataclasses.replace(KNOBS, burst_factor=3.0))
    assert build_summary(partial, dataclasses.replace(KNOBS, top=1))["top_users"] == ["u1"]
    again = pickle.loads(pickle.dumps(partial))
    assert build_anomalies(again, KNOBS) == build_anomalies(partial, KNOBS)
    assert build_summary(again, KNOBS) == build_summary(partial, KNOBS)


# --- spill files are removed whatever happens -----------------------------------------------------


def _spilling_input(folder: Path) -> list[str]:
    lines = [_line((i % 300, b"INFO", b"s%d" % (i % 5), b"u%d" % i)) for i in range(2000)]
    (folder / "a.log").write_bytes(b"\n".join(lines) + b"\n")
    return [str(folder / "a.log")]


def test_spill_folder_removed_after_success(tmp_path: Path) -> None:
    paths = _spilling_input(tmp_path)
    spills = tmp_path / "spills"
    spills.mkdir()
    with forced_spill(str(spills), partition_entries=300) as stores:
        run_files(paths, dataclasses.replace(KNOBS, chunk_size=4096), SerialExecutor())
    assert stores and not os.path.exists(stores[0].folder)
    assert os.listdir(spills) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_spill_folder_removed_after_a_mapper_fails(tmp_path: Path, workers: int) -> None:
    paths = _spilling_input(tmp_path)
    spills = tmp_path / "spills"
    spills.mkdir()
    real = tasks.map_split

    def failing(split: Split, knobs: Settings, **options: Any) -> Partial:
        if split.start > 20_000:
            raise RuntimeError("disk on fire")
        return real(split, knobs, **options)

    knobs = dataclasses.replace(KNOBS, chunk_size=4096)
    with forced_spill(str(spills), partition_entries=300) as stores:
        engine_patch = pytest.MonkeyPatch()
        engine_patch.setattr(tasks, "map_split", failing)
        try:
            if workers == 1:
                with pytest.raises(MapError, match="disk on fire"):
                    run_files(paths, knobs, SerialExecutor())
            else:
                with PoolExecutor(2) as two, pytest.raises(MapError, match="disk on fire"):
                    run_files(paths, knobs, two)
        finally:
            engine_patch.undo()
    assert stores, "the failure came after a spill"
    assert os.listdir(spills) == []


@pytest.mark.parametrize("stage", ["map", "digest", "digest in this process"])
def test_spill_folder_removed_after_keyboard_interrupt(
    tmp_path: Path, pool: PoolExecutor, stage: str
) -> None:
    paths = _spilling_input(tmp_path)
    spills = tmp_path / "spills"
    spills.mkdir()
    arrived = []

    def progress(nbytes: int) -> None:
        arrived.append(nbytes)
        if stage == "map" and len(arrived) == 5:
            raise KeyboardInterrupt

    def interrupted(*args: Any) -> float:
        raise KeyboardInterrupt

    def combine_interrupted(parts: Iterator[spill.PartDigest], k: int) -> spill.PartDigest:
        next(parts)  # the other partitions are still being digested
        raise KeyboardInterrupt

    knobs = dataclasses.replace(KNOBS, chunk_size=4096)
    executor: Executor = SerialExecutor() if stage == "digest in this process" else pool
    with forced_spill(str(spills), partition_entries=300) as stores, pytest.MonkeyPatch.context(
    ) as patch:
        if stage == "digest":
            patch.setattr(reducer, "combine", combine_interrupted)
        if stage == "digest in this process":
            patch.setattr(heavy, "user_rates", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_files(paths, knobs, executor, progress=progress)
    assert stores
    assert os.listdir(spills) == []
    assert documents(paths, KNOBS, pool) == documents(paths, KNOBS, SerialExecutor())


def _write_many_users(path: Path, lines: int) -> None:
    with open(path, "wb") as f:
        for start in range(0, lines, 10_000):
            f.write(b"".join(
                b"2025-07-22T12:%02d:%02dZ INFO svc user%d m\n" % (i // 60 % 60, i % 60, i)
                for i in range(start, min(lines, start + 10_000))
            ))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_spill_folder_removed_when_the_command_is_stopped(tmp_path: Path, sig: int) -> None:
    """The real command with a small budget: stopped by a signal while it spills (SIGINT to
    the whole process group, like Ctrl-C), it leaves nothing behind. Killed (SIGKILL to the
    group), it cannot clean up: the next run there removes what it left."""
    log = tmp_path / "users.log"
    _write_many_users(log, 600_000)
    spills = tmp_path / "tmp"
    spills.mkdir()
    command = [sys.executable, "-m", "mapreduce_logs", "run", str(log), "--quiet",
               "--workers", "2", "--memory-mb", "50", "--out", str(tmp_path / "out"),
               "--spill-dir", str(spills)]
    with open(tmp_path / "stderr", "wb") as stderr:
        proc = subprocess.Popen(command, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        # A folder with its lock: one killed between the two is left alone by design.
        while not any(name.startswith(cleanup.PREFIX)
                      and os.path.exists(spills / name / cleanup.LOCK)
                      for name in os.listdir(spills)):
            assert proc.poll() is None, "finished before spilling"
            assert time.monotonic() < deadline, "never spilled"
            time.sleep(0.005)
        workers = psutil.Process(proc.pid).children(recursive=True)
        if sig in (signal.SIGINT, signal.SIGKILL):
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        status = proc.wait(timeout=30)
        # The workers hold the folder's lock too (inherited): a run started before they are
        # gone rightly leaves the folder alone.
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert status == {signal.SIGINT: 130}.get(sig, -sig), (
        (tmp_path / "stderr").read_text(errors="replace"))
    if sig == signal.SIGKILL:
        assert os.listdir(spills)
        small = tmp_path / "small.log"
        _write_many_users(small, 10)
        done = subprocess.run([*command[:4], str(small), *command[5:]], check=False)
        assert done.returncode == 0
    assert os.listdir(spills) == []


def test_only_spill_folders_left_behind_are_removed(tmp_path: Path) -> None:
    """A folder whose lock is free was left by a dead run; one whose lock is held (a run in
    progress) or that has no lock yet (being made) stays."""
    made = {name: tmp_path / f"{cleanup.PREFIX}{name}" for name in ("dead", "alive", "new")}
    for folder in made.values():
        folder.mkdir()
        (folder / "0.run").write_bytes(b"x")
    for name in ("dead", "alive"):
        (made[name] / cleanup.LOCK).write_bytes(b"")
    (tmp_path / "mine.log").write_bytes(b"")
    with open(made["alive"] / cleanup.LOCK, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert cleanup.remove_stale(str(tmp_path)) == [str(made["dead"])]
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["mine.log", f"{cleanup.PREFIX}alive", f"{cleanup.PREFIX}new"])
    store = spill.SpillStore(2, 10, str(tmp_path))
    try:
        assert cleanup.remove_stale(str(tmp_path)) == [str(made["alive"])]  # its lock is free now
        assert os.path.isdir(store.folder)
    finally:
        store.close()
    assert not os.path.exists(store.folder)


# --- the budget -----------------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    memory_mb=st.integers(50, 100_000),
    workers=st.integers(1, 8),
    chunk=st.integers(1, 1 << 30),
)
def test_plan_shares_the_budget(memory_mb: int, workers: int, chunk: int) -> None:
    """The chunk size never grows past --chunk-size; when the budget can hold the processes,
    chunks in flight plus the reducer's counters fit in what is left."""
    knobs = Settings(memory_mb=memory_mb, chunk_size=chunk)
    budget = pipeline.plan(knobs, workers, 2 * workers)
    assert 1 <= budget.chunk_size <= chunk
    assert budget.partition_entries <= budget.spill_entries
    fixed = budget_mod.PROCESS_BYTES + workers * budget_mod.WORKER_BYTES
    room = memory_mb * budget_mod.MB * (1 - budget_mod.HEADROOM) - fixed
    if room > 8 * budget_mod.MB:
        chunks = budget_mod.CHUNK_GROWTH * budget.chunk_size * 3 * workers
        reducer = budget.spill_entries * budget_mod.ENTRY_BYTES
        assert chunks + reducer <= room
        assert workers * budget.partition_entries * budget_mod.DIGEST_ENTRY_BYTES <= room - reducer


def test_workers_within_the_budget() -> None:
    """The default budget holds a few workers, the smallest one, and more memory never fewer."""
    counts = [budget_mod.workers_within(Settings(memory_mb=mb)) for mb in range(50, 5000, 50)]
    assert counts == sorted(counts)
    assert counts[0] == 1
    assert budget_mod.workers_within(Settings()) >= 4
    for mb in (50, 200, 500, 2000):
        room = mb * budget_mod.MB * (1 - budget_mod.HEADROOM) - budget_mod.PROCESS_BYTES
        workers = budget_mod.workers_within(Settings(memory_mb=mb))
        assert workers == 1 or 2 * workers * budget_mod.WORKER_BYTES <= room


def test_default_budget_leaves_useful_chunks() -> None:
    budget = pipeline.plan(Settings(), 2, 4)
    assert budget.chunk_size >= 1 << 20
    assert budget.spill_entries >= 500_000


# --- a compressed file is one split, flushed to the spill folder as it is read --------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_big_compressed_file_is_flushed_as_it_is_read(tmp_path: Path, workers: int) -> None:
    """A ``.gz`` file larger than a chunk writes its counters to the spill folder every chunk's
    worth of bytes, and drops unknown level tokens past the first ones, with the same documents
    as a run that holds it all in memory."""
    rng = random.Random(7)
    lines = [
        _line((i % 300, rng.choice([b"INFO", b"ERROR", b"Tok%d" % rng.randrange(40)]),
               b"s%d" % rng.randrange(30), b"u%d" % rng.randrange(2000)))
        for i in range(4000)
    ]
    lines += [_line((150, b"INFO", b"auth", b"spam"))] * 40
    path = tmp_path / "big.log.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    paths = discover([str(tmp_path)])
    summary, full = documents(paths, KNOBS, SerialExecutor())
    first = {t.decode().upper() for t in list(dict.fromkeys(
        line.split()[1] for line in lines if line.split()[1].startswith(b"Tok")))[:3]}
    expected = (summary, _only_tokens(full, first))
    runs: list[list[int]] = []
    real_write_run = tasks.write_run

    def counted(*args: Any) -> list[int]:
        runs.append(real_write_run(*args))
        return runs[-1]

    def small(knobs: Settings, workers: int, in_flight: int) -> Budget:
        return Budget(chunk_size=8192, spill_entries=1 << 30, partition_entries=500)

    spills = tmp_path / "spills"
    spills.mkdir()
    with contextlib.ExitStack() as stack:
        executor: Executor = (
            stack.enter_context(PoolExecutor(2)) if workers == 2 else SerialExecutor()
        )
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setattr(pipeline, "plan", small)
        patch.setattr(tasks, "write_run", counted)
        patch.setattr(pipeline, "SPILL_DIR", str(spills))
        patch.setattr(knobs_module, "LIMITS", Limits(unknown_levels=3))
        patch.setattr(scan, "BLOCK", 1000)
        assert documents(paths, KNOBS, executor) == expected
    assert os.listdir(spills) == []
    if workers == 1:
        size = len(gzip.decompress(path.read_bytes()))
        assert len(runs) >= size // 8192
        assert all(sum(run) > 0 for run in runs[:-1])


@pytest.mark.parametrize("workers", [1, 2])
def test_tokens_a_flushed_file_dropped_are_counted_when_an_earlier_file_reports_them(
    tmp_path: Path, workers: int
) -> None:
    """A flushed ``.gz`` keeps only its own first tokens; one it dropped but that an earlier file
    makes reportable is counted again in it, with its examples there, whatever the chunk size."""
    first = [_line((0, b"Late", b"auth", b"u1")), _line((1, b"Mid", b"auth", b"u2"))]
    (tmp_path / "a.log").write_bytes(b"\n".join(first) + b"\n")
    rng = random.Random(3)
    lines = [_line((i % 300, b"Tok%d" % i if i < 6 else rng.choice([b"INFO", b"Tok9"]),
                    b"s", b"u%d" % i)) for i in range(400)]
    for at in (150, 151, 260, 399):
        lines[at] = _line((at % 300, b"Late", b"s", b"late"))
    lines[300] = _line((0, b"Mid", b"s", b"late"))
    (tmp_path / "b.log.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    paths = discover([str(tmp_path)])
    summary, full = documents(paths, KNOBS, SerialExecutor())
    expected = (summary, _only_tokens(full, {"LATE", "MID", "TOK0"}))
    assert b'"LATE"' in expected[1] and b'"count": 5' in expected[1]

    def small(knobs: Settings, workers: int, in_flight: int) -> Budget:
        return Budget(chunk_size=512, spill_entries=1 << 30, partition_entries=500)

    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setattr(pipeline, "plan", small)
        patch.setattr(pipeline, "SPILL_DIR", str(tmp_path))
        patch.setattr(knobs_module, "LIMITS", Limits(unknown_levels=3))
        patch.setattr(scan, "BLOCK", 100)
        executor: Executor = (
            stack.enter_context(PoolExecutor(2)) if workers == 2 else SerialExecutor()
        )
        assert documents(paths, KNOBS, executor) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_millions_of_windows_are_folded_into_sorted_runs_with_the_same_documents(
    tmp_path: Path, workers: int
) -> None:
    """Lines per window pass to sorted arrays once there are many windows (here: more than 3),
    mapped from a file by the partition tasks; the documents do not change, spilled or not."""
    from mapreduce_logs.model import windows

    rng = random.Random(5)
    lines = []
    for i in range(3000):
        minute = rng.randrange(400) if i % 3 else rng.randrange(10**7)  # dense and scattered
        level = b"ERROR" if minute % 50 == 7 else b"INFO"
        user = b"steady" if i % 4 == 0 else b"u%d" % rng.randrange(60)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute * 60 + i % 60)).encode()
        lines.append(b"%s %s s%d %s m" % (stamp, level, rng.randrange(3), user))
    lines += [b"1970-01-01T03:20:%02dZ INFO s1 spammer m" % s for s in range(60)] * 2
    (tmp_path / "a.log").write_bytes(b"\n".join(lines) + b"\n")
    paths = discover([str(tmp_path)])
    expected = documents(paths, KNOBS, SerialExecutor())
    assert b"user_burst" in expected[1] and b'"spammer"' in expected[1]
    spills = tmp_path / "spills"
    spills.mkdir()
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setattr(knobs_module, "LIMITS", Limits(window_buffer=3))
        executor: Executor = (
            stack.enter_context(PoolExecutor(2)) if workers == 2 else SerialExecutor()
        )
        folded = []
        real_merge = reducer.merge_files

        def counted(paths: list[str], out: str) -> None:
            folded.append(len(paths))
            real_merge(paths, out)
            assert all(not os.path.exists(p) for p in paths)
            assert isinstance(windows.load(out), windows.WindowLines)

        patch.setattr(reducer, "merge_files", counted)
        for chunk in [4096, 1 << 20]:
            knobs = dataclasses.replace(KNOBS, chunk_size=chunk)
            assert documents(paths, knobs, executor) == expected
            with forced_spill(str(spills), partition_entries=50):
                assert documents(paths, knobs, executor) == expected
        assert folded and max(folded) > 1  # runs merged (one, when a single chunk folds once)
    assert os.listdir(spills) == []


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_top_of_a_large_mapping_keeps_ties_by_name(k: int) -> None:
    """More than 4 k entries (the path that ranks only those reaching the k-th count): ties at
    the k-th count are ranked by name like the rest, arriving in reverse."""
    from mapreduce_logs.detect.digest import top_k, top_of

    totals = {b"d": 3, b"c": 3, b"b": 3, b"z": 7, **{b"q%02d" % i: 1 for i in range(20)}}
    expected = [(b"z", 7), (b"b", 3), (b"c", 3), (b"d", 3)][:k]
    assert top_of(totals, k) == expected
    assert top_k(totals.items(), k) == expected
