"""Chunks sized by what they cost (``Budget.spilling_chunk_size``), and a run that spills from its
first chunks when its counters are expected to pass the budget anyway (``Reducer``).

Outputs are compared with an in-memory run of the same input (the reference's bytes elsewhere)."""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mapreduce_logs.pipeline as pipeline
import mapreduce_logs.reduce.budget as budget_mod
import mapreduce_logs.reduce.reducer as reducer
import mapreduce_logs.settings as knobs_module
from mapreduce_logs import (
    Executor,
    Partial,
    PoolExecutor,
    SerialExecutor,
    Settings,
    build_anomalies,
    build_summary,
    run_files,
    to_json,
)
from mapreduce_logs.reduce import tasks
from mapreduce_logs.reduce.budget import Budget
from mapreduce_logs.settings import Limits

KNOBS = Settings(window=10, burst_factor=2.0, burst_min_lines=3, spike_min_errors=2)

pytestmark = pytest.mark.usefixtures("each_kernel")


def documents(paths: list[str], executor: Executor) -> tuple[bytes, bytes]:
    partial = run_files(paths, KNOBS, executor)
    return to_json(build_summary(partial, KNOBS)), to_json(build_anomalies(partial, KNOBS))


def write_input(folder: Path, lines: int, seed: int = 1, span: int = 3000) -> list[str]:
    """Lines over ``span`` seconds (300 windows of 10 s), a new user on most and a new unknown
    level token on some: (subject, window) entries grow with the bytes read."""
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        second = i * span // lines
        level = rng.choice([b"INFO", b"ERROR", b"Tok%d" % rng.randrange(50)])
        user = b"hot" if rng.random() < 0.3 else b"u%d" % i
        out.append(b"2025-07-%02dT%02d:%02d:%02dZ %s s%d %s m" % (
            1 + second // 86400, second // 3600 % 24, second // 60 % 60, second % 60, level,
            i % 7, user))
    path = folder / "a.log"
    path.write_bytes(b"\n".join(out) + b"\n")
    return [str(path)]


class Watched(reducer.Reducer):
    """A Reducer that notes how many chunks it had merged when it first spilled."""

    first_spill: ClassVar[list[int]] = []
    made: ClassVar[list[Watched]] = []

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.merged = 0
        Watched.made.append(self)

    def add(self, *args: Any) -> None:
        self.merged += 1
        super().add(*args)

    def spill(self) -> None:
        if self.store is None:
            Watched.first_spill.append(self.merged)
        super().spill()


@contextlib.contextmanager
def budgeted(
    folder: Path, budget: Budget, tokens: int = 1000, record: bool = True
) -> Iterator[list[int]]:
    """Runs planned with ``budget``, spilling in ``folder``; with ``record`` the sizes of the
    splits mapped (by the serial executor) are listed."""
    sizes: list[int] = []
    real_map = tasks.map_chunk

    def recorded(item: tasks.Chunk, settings: Settings) -> tuple[int, Partial, Any]:
        split = item[1]
        assert split.end is not None
        sizes.append(split.end - split.start)
        return real_map(item, settings)

    Watched.first_spill = []
    Watched.made = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "plan", lambda *args: budget)
        patch.setattr(pipeline, "Reducer", Watched)
        patch.setattr(pipeline, "SPILL_DIR", str(folder))
        if record:
            patch.setattr(pipeline, "map_chunk", recorded)
        patch.setattr(knobs_module, "LIMITS", Limits(unknown_levels=tokens))
        yield sizes


# 3,000 lines of about 45 bytes: about 40 chunks of 4 KiB, some 250 entries each, 8,000 in all.
SMALL = Budget(chunk_size=4096, spill_entries=1500, partition_entries=300,
               column_chunk_size=8192, lent_chunk_size=16384)


@pytest.mark.parametrize("tokens", [3, 1000])
def test_a_run_expected_to_spill_spills_from_its_first_chunk(tmp_path: Path, tokens: int) -> None:
    """The first chunk's entries are far below ``spill_entries``, but the input holds many times
    as many: the reducer spills after merging that one chunk, later splits are cut bigger, and
    the documents are those of an in-memory run. With 3 reportable tokens the bigger chunks,
    cut before the tokens are known, keep only their own first ones (counted again later)."""
    paths = write_input(tmp_path, 3000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knobs_module, "LIMITS", Limits(unknown_levels=tokens))
        expected = documents(paths, SerialExecutor())
    with budgeted(tmp_path, SMALL, tokens) as sizes:
        assert documents(paths, SerialExecutor()) == expected
    assert Watched.first_spill == [1]
    assert sizes[0] <= 4096 + 64
    assert max(sizes) > 8192  # the counters left most of their share: it is lent
    assert all(size <= 16384 + 64 for size in sizes)
    assert len(sizes) < 3000 * 45 // 4096


def test_without_the_estimate_the_run_spills_only_past_the_budget(tmp_path: Path) -> None:
    """The same run with the early decision off merges several chunks before spilling (so the
    test above can fail), and a run whose input is no bigger than what was read never spills
    early."""
    paths = write_input(tmp_path, 3000)
    expected = documents(paths, SerialExecutor())
    with budgeted(tmp_path, SMALL) as sizes, pytest.MonkeyPatch.context() as patch:
        patch.setattr(reducer, "EARLY_SPILL", 1 << 30)
        assert documents(paths, SerialExecutor()) == expected
    assert Watched.first_spill and Watched.first_spill[0] > 2
    assert max(sizes) < 16384 * 0.9  # the counters filled their share: little is lent

    roomy = Budget(chunk_size=1 << 20, spill_entries=100_000, partition_entries=100_000)
    with budgeted(tmp_path, roomy):
        assert documents(paths, SerialExecutor()) == expected
    assert Watched.first_spill == []


def test_chunks_of_dense_windows_do_not_grow(tmp_path: Path) -> None:
    """A new window every line or two (a worker keeps part of a big chunk's window dicts, and
    such runs peak in the digest): the run spills early but its splits keep their size."""
    paths = write_input(tmp_path, 3000, span=3000 * 15)
    expected = documents(paths, SerialExecutor())
    with budgeted(tmp_path, SMALL) as sizes:
        assert documents(paths, SerialExecutor()) == expected
    assert Watched.first_spill == [1]
    assert max(sizes) <= 4096 + 64


@pytest.mark.parametrize("tokens", [3, 1000])
def test_early_spill_on_worker_processes(tmp_path: Path, tokens: int) -> None:
    """Two workers, chunks arriving in any order, some mapped before the spill (dicts), the rest
    written to the spill folder as columns and cut bigger: the documents do not change."""
    paths = write_input(tmp_path, 6000, seed=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knobs_module, "LIMITS", Limits(unknown_levels=tokens))
        expected = documents(paths, SerialExecutor())
    with budgeted(tmp_path, SMALL, tokens, record=False), PoolExecutor(2) as pool:
        assert documents(paths, pool) == expected
    assert Watched.first_spill and Watched.first_spill[0] <= 2


def test_a_bigger_chunk_cut_before_the_tokens_are_known_is_counted_again(tmp_path: Path) -> None:
    """The first chunk has two unknown level tokens of the three reported; the next, cut bigger
    before the third is known, keeps only its own first three and drops the first chunk's
    ``Aaa``: it is counted again there, and its examples take their place among those of the
    segment the chunk was joined into (line numbers counted from the file's start)."""
    lines = []
    for i in range(6000):
        second = i * 3000 // 6000
        level = b"INFO"
        if i in (5, 9):
            level = b"Aaa" if i == 5 else b"Bbb"
        elif 200 <= i < 203:
            level = (b"Ccc", b"Ddd", b"Eee")[i - 200]
        elif i > 300 and i % 97 == 0:
            level = b"Aaa"
        lines.append(b"2025-07-01T%02d:%02d:%02dZ %s s%d u%d m" % (
            second // 3600, second // 60 % 60, second % 60, level, i % 7, i))
    (tmp_path / "a.log").write_bytes(b"\n".join(lines) + b"\n")
    paths = [str(tmp_path / "a.log")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knobs_module, "LIMITS", Limits(unknown_levels=3))
        expected = documents(paths, SerialExecutor())
    assert b'"line": 6' in expected[1] and b'"line": 389' in expected[1]
    with budgeted(tmp_path, SMALL, 3) as sizes:
        assert documents(paths, SerialExecutor()) == expected
    [made] = Watched.made
    assert made.cut and sizes[0] <= 4096 + 64 < sizes[1]


def test_standard_input_after_bigger_chunks_keeps_its_splits(tmp_path: Path) -> None:
    """Standard input read after a file whose chunks grew: its splits keep their size and are
    never kept to be read again (they carry their bytes); the documents do not change."""
    paths = write_input(tmp_path, 3000)
    stream = (tmp_path / "a.log").read_bytes()
    settings_tokens = Limits(unknown_levels=3)

    def both(executor: Executor) -> tuple[bytes, bytes]:
        partial = run_files(paths, KNOBS, executor, stream=io.BytesIO(stream))
        return to_json(build_summary(partial, KNOBS)), to_json(build_anomalies(partial, KNOBS))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knobs_module, "LIMITS", settings_tokens)
        expected = both(SerialExecutor())
    with budgeted(tmp_path, SMALL, 3) as sizes:
        assert both(SerialExecutor()) == expected
    assert max(sizes) > 8192
    assert Watched.first_spill == [1]
    [made] = Watched.made
    assert all(split.data is None for split in made.cut.values())


@settings(max_examples=200)
@given(
    memory_mb=st.integers(50, 100_000),
    workers=st.integers(1, 8),
    chunk=st.integers(1, 1 << 30),
    held=st.floats(0, 2),
)
def test_chunks_cut_once_spilling_fit_their_share(
    memory_mb: int, workers: int, chunk: int, held: float
) -> None:
    """Once the run spills, splits are never smaller than before nor past --chunk-size; those in
    flight, at what they cost then, fit the chunks' share and what the counters left of theirs
    (but for the lines per window)."""
    knobs = Settings(memory_mb=memory_mb, chunk_size=chunk)
    budget = budget_mod.plan(knobs, workers, workers)
    held_entries = int(held * budget.spill_entries)
    size = budget.spilling_chunk_size(held_entries)
    assert budget.chunk_size <= size <= chunk
    assert budget.column_chunk_size <= size <= budget.lent_chunk_size
    fixed = budget_mod.PROCESS_BYTES + workers * budget_mod.WORKER_BYTES
    free = memory_mb * budget_mod.MB * (1 - budget_mod.HEADROOM) - fixed
    if free > 8 * budget_mod.MB and size > budget.chunk_size:
        per_byte = (budget_mod.COLUMN_GROWTH + budget_mod.COLUMN_SHIPPED) * workers
        unused = max(0.0, 1 - held_entries / budget.spill_entries)
        windows = knobs_module.limits().window_buffer * budget_mod.WINDOW_BYTES
        room = 0.40 * free + max(0.0, 0.45 * free * unused - windows)
        assert per_byte * size <= room * (1 + 1e-6) + per_byte  # rounding: a byte of a split
    if held >= 1:
        assert size == budget.column_chunk_size


def test_default_budget_cuts_bigger_chunks_once_spilling() -> None:
    """At the default 500 MB and 2 workers: about 2 MB before the run spills, about 4 MB after a
    late spill, about 8 MB after one from the first chunks."""
    budget = budget_mod.plan(Settings(), 2, 2)
    assert 1_900_000 <= budget.chunk_size <= 2_200_000
    assert 2 * budget.chunk_size <= budget.column_chunk_size
    assert budget.spilling_chunk_size(0) == budget.lent_chunk_size >= 8_000_000
    assert budget.spilling_chunk_size(budget.spill_entries) == budget.column_chunk_size
