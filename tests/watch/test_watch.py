"""watch: the live outputs equal a batch run over what should have been counted.

The state machine adds, appends to, renames, truncates, replaces and deletes files, restarts the
watcher and crashes it in the middle of a commit; a model records which bytes of which file
generation should be counted (docs/watch.md), and after every step the watcher's outputs must
be byte-identical to the engine run over exactly those bytes. When nothing left or shrank and
every file is settled, they must equal ``run DIR``. The real command is checked with SIGKILL at
random moments, SIGTERM, latency and back-pressure.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mapreduce_logs import (
    Partial,
    SerialExecutor,
    Settings,
    Split,
    build_anomalies,
    build_summary,
    map_split,
    to_json,
)
from mapreduce_logs.cli import main as cli_main
from mapreduce_logs.ingest import zones
from mapreduce_logs.report.html import strip_run_figures
from mapreduce_logs.watch import checkpoint as watch_checkpoint
from mapreduce_logs.watch import judgments as watch_judgments
from mapreduce_logs.watch import pieces as watch_pieces
from mapreduce_logs.watch import store as watch_store
from mapreduce_logs.watch.checkpoint import DATABASE, Checkpoint, committed_seq
from mapreduce_logs.watch.loop import Watcher
from mapreduce_logs.watch.pieces import PIECE_PREFIX
from mapreduce_logs.watch.toplist import TopList

SETTINGS = Settings(workers=1)
SETTLE = 5.0
OUTPUTS = ("summary.json", "anomalies.json")
COMPARED = (*OUTPUTS, "report.html")
"""What is compared with ``run``: the documents, and the page without its run figures."""
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

@contextlib.contextmanager
def crashing(point: str, error: BaseException) -> Iterator[None]:
    """While in the block, a checkpoint commit dies: with its rows being written ("written":
    nothing of it may count) or right after it ("committed": all of it must count once)."""
    with pytest.MonkeyPatch.context() as patch:
        if point == "written":
            def sealed(value: object) -> bytes:
                raise error

            patch.setattr(watch_checkpoint, "_sealed", sealed)
        else:
            real = Checkpoint.commit

            def commit(self: Checkpoint, state: Any) -> None:
                real(self, state)
                raise error

            patch.setattr(Checkpoint, "commit", commit)
        yield


# --- lines ---------------------------------------------------------------------------------------

_stamps = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, s: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
        st.sampled_from([2024, 2024, 2024, 2999]), st.integers(1, 12), st.integers(1, 28),
        st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
    ),
    st.builds(lambda mi, s: f"2024-01-01T00:{mi:02d}:{s:02d}Z", st.integers(0, 4),
              st.integers(0, 59)),
)
"""2024 is in the past and 2999 in the future whatever the files' mtimes are; half the lines
fall in five adjacent minutes, so that windows form runs (bursts, spikes)."""

_valid = st.builds(
    lambda ts, level, service, user, message: f"{ts} {level} {service} {user}{message}".encode(),
    _stamps, st.sampled_from(["INFO", "ERROR", "warning", "DEBUG", "FATAL"]),
    st.sampled_from(["auth", "db", "pay"]), st.sampled_from(["u1", "u2", "u3", "ü"]),
    st.sampled_from(["", " hello", " two words"]),
)
_odd = st.sampled_from([
    b"", b"   ", b"garbage", b"2024-13-01T00:00:00Z INFO a b", b"2024-01-01T00:00:00Z LOUD a b",
    b"2024-01-01T00:00:00Z INFO \xff b", b"\tspaced\r",
])
lines = st.one_of(_valid, _valid, _odd)
chunks = st.builds(
    lambda parts, end: b"\n".join(parts) + end,
    st.lists(lines, max_size=4), st.sampled_from([b"\n", b"\n", b""]),
)
"""Bytes to write: some lines, maybe ending in an unterminated one. No line starts with \\x01."""

VISIBLE = ["a.log", "b.log", "c"]
HIDDEN = [".h", "x.tmp"]


def visible(name: str) -> bool:
    return name in VISIBLE


# --- the model -------------------------------------------------------------------------------------


@dataclass(eq=False)
class Gen:
    """One generation of one file: what the watcher should count from it, under which source."""

    path: str
    number: int
    counted: bytes = b""
    live: bool = True


@dataclass(eq=False)
class ModelFile:
    content: bytes
    gen: Gen | None
    last_change: float
    header: int = 0
    """Length of the unique first line (0 after a truncation to nothing)."""


def expected_outputs(
    gens: list[Gen], folder: str, scratch: str, settings: Settings
) -> tuple[bytes, bytes]:
    """The engine over exactly the counted bytes of every generation, under its source."""
    total = Partial(clock_skew_ns=settings.clock_skew_ns)
    now = time.time_ns()
    for i, gen in enumerate(gens):
        path = os.path.join(scratch, f"gen{i}")
        with open(path, "wb") as f:
            f.write(gen.counted)
        part = map_split(Split(path, 0, len(gen.counted), now, gen.number), settings)
        source = (os.path.join(folder, gen.path), gen.number)
        part.segments = {source: part.segments[(path, gen.number)]}
        total.update(part)
    return to_json(build_summary(total, settings)), to_json(build_anomalies(total, settings))


def _time(text: str | None, tz: str) -> int | None:
    return None if text is None else zones.parse_time(text, tz)


MACHINE_SETTINGS = st.builds(
    lambda top, burst, spike, factor, tz, bounds: Settings(
        workers=1, top=top, burst_min_lines=burst, spike_min_errors=spike,
        burst_factor=factor, spike_factor=factor, tz=tz, since_ns=_time(bounds[0], tz),
        until_ns=_time(bounds[1], tz)),
    st.sampled_from([1, 2, 10]), st.sampled_from([1, 2, 3, 20]), st.sampled_from([1, 20]),
    st.sampled_from([1.0, 5.0]), st.sampled_from(["UTC", "UTC", "America/New_York", "+05:30"]),
    st.sampled_from([(None, None), (None, None), ("2024-01-01T00:02:00Z", None),
                     ("2024-06-01", "2500-01-01T00:00:00"),
                     (None, "2024-01-01T00:03:30.000000001Z"),
                     ("2023-12-31T19:01:00", "2024-01-01T00:03:30.000000001Z")]),
)
"""With ``top`` 1 or 2 the store's top lists are that short (see ``_new_watcher``), so they run
short, are rebuilt and leave the busiest share to a full pass; small minimums and a factor of 1
make bursts and spikes of a few lines, often runs of windows of one line each. Some count in
another zone, or only the lines in a time range (half the lines fall in 2024-01-01T00:00-00:05,
UTC; in New York that wall time is 05:00Z)."""


class SimulatedCrashError(Exception):
    pass


class WatchMachine(RuleBasedStateMachine):
    """Random file operations against a watcher with a fake clock; outputs checked every step.

    The watcher keeps its counters on disk, with top lists only as long as ``--top``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.settings = SETTINGS
        self.watcher: Watcher | None = None
        self.base = tempfile.mkdtemp(prefix="watch-sm-")
        self.dir = os.path.join(self.base, "logs")
        self.out = os.path.join(self.base, "out")
        self.scratch = os.path.join(self.base, "scratch")
        for folder in (self.dir, self.scratch):
            os.mkdir(folder)
        self.now = 1000.0
        self.files: dict[str, ModelFile] = {}
        self.gens: list[Gen] = []
        self.next_number: dict[str, int] = {}
        self.headers = 0

    def teardown(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        shutil.rmtree(self.base, ignore_errors=True)

    # --- helpers ---

    def _new_watcher(self) -> Watcher:
        w = Watcher(self.dir, self.out, self.settings, SerialExecutor(), settle=SETTLE,
                    clock=lambda: self.now, batch_bytes=300, top_size=self.settings.top)
        w.open()
        for f in self.files.values():
            f.last_change = self.now
        return w

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _gen(self, name: str) -> Gen:
        number = self.next_number.get(name, 0)
        self.next_number[name] = number + 1
        gen = Gen(name, number)
        self.gens.append(gen)
        return gen

    def _leave(self, f: ModelFile) -> None:
        """The file left the watched names: its counts stay, unless it counted nothing."""
        assert f.gen is not None
        f.gen.live = False
        if not f.gen.counted:
            self.gens.remove(f.gen)
            f.gen = None

    def _header(self) -> bytes:
        self.headers += 1
        return b"\x01file-%d\n" % self.headers

    def _sync(self) -> None:
        assert self.watcher is not None
        self.watcher.drain()
        for f in self.files.values():
            gen = f.gen
            if gen is None or not gen.live:
                continue
            offset = gen.counted.rfind(b"\n") + 1
            line_end = f.content.rfind(b"\n") + 1
            if self.now - f.last_change >= SETTLE:
                gen.counted = f.content
            elif line_end > offset:
                gen.counted = f.content[:line_end]

    def _write(self, name: str, data: bytes, mode: str = "ab") -> None:
        with open(self._path(name), mode) as out:
            out.write(data)

    # --- rules ---

    @initialize(settings=MACHINE_SETTINGS, data=chunks)
    def first_file(self, settings: Settings, data: bytes) -> None:
        self.settings = settings
        self.watcher = self._new_watcher()
        self.add_file("a.log", data)

    @rule(name=st.sampled_from(VISIBLE + HIDDEN), data=chunks)
    def add_file(self, name: str, data: bytes) -> None:
        if name in self.files:
            return
        content = self._header() + data
        self._write(name, content, "wb")
        gen = self._gen(name) if visible(name) else None
        self.files[name] = ModelFile(content, gen, self.now, header=content.index(b"\n") + 1)
        self._sync()

    @precondition(lambda self: self.files)
    @rule(pick=st.data(), data=chunks)
    def append(self, pick: st.DataObject, data: bytes) -> None:
        name = pick.draw(st.sampled_from(sorted(self.files)))
        if data:
            self._write(name, data)
            f = self.files[name]
            f.content += data
            f.last_change = self.now
        self._sync()

    @precondition(lambda self: self.files)
    @rule(pick=st.data(), dst=st.sampled_from(VISIBLE + HIDDEN))
    def rename(self, pick: st.DataObject, dst: str) -> None:
        src = pick.draw(st.sampled_from(sorted(self.files)))
        if src == dst:
            return
        os.replace(self._path(src), self._path(dst))
        f = self.files.pop(src)
        replaced = self.files.pop(dst, None)
        if replaced is not None and visible(dst) and replaced.gen is not None:
            self._leave(replaced)
        if visible(src) and not visible(dst):
            self._leave(f)
        elif visible(dst):
            gen = f.gen
            if gen is None:
                f.gen = self._gen(dst)
                f.last_change = self.now
            elif visible(src):
                gen.path, gen.number = dst, self._gen_number(dst)
            else:
                # A file that left comes back: the same one if what it counted is still there.
                fp = min(len(gen.counted), 1024)
                if len(f.content) >= len(gen.counted) and f.content[:fp] == gen.counted[:fp]:
                    if gen.path != dst:
                        gen.path, gen.number = dst, self._gen_number(dst)
                    gen.live = True
                else:
                    f.gen = self._gen(dst)
                f.last_change = self.now
        self.files[dst] = f
        self._sync()

    def _gen_number(self, name: str) -> int:
        number = self.next_number.get(name, 0)
        self.next_number[name] = number + 1
        return number

    @precondition(lambda self: any(f.content for f in self.files.values()))
    @rule(pick=st.data())
    def truncate(self, pick: st.DataObject) -> None:
        name = pick.draw(st.sampled_from(sorted(n for n, f in self.files.items() if f.content)))
        f = self.files[name]
        size = pick.draw(st.integers(0, len(f.content) - 1))
        if 0 < size < f.header:
            size = 0  # a cut header could be mistaken for another file's first bytes
        f.header = f.header if size else 0
        os.truncate(self._path(name), size)
        f.content = f.content[:size]
        f.last_change = self.now
        if visible(name) and f.gen is not None and size < len(f.gen.counted):
            f.gen = self._gen(name)
        self._sync()

    @precondition(lambda self: self.files)
    @rule(pick=st.data(), data=chunks)
    def replace(self, pick: st.DataObject, data: bytes) -> None:
        name = pick.draw(st.sampled_from(sorted(self.files)))
        content = self._header() + data
        tmp = self._path("replacing.tmp")
        with open(tmp, "wb") as out:
            out.write(content)
        os.replace(tmp, self._path(name))
        old = self.files[name]
        if visible(name) and old.gen is not None:
            self._leave(old)
        gen = self._gen(name) if visible(name) else None
        self.files[name] = ModelFile(content, gen, self.now, header=content.index(b"\n") + 1)
        self._sync()

    @precondition(lambda self: self.files)
    @rule(pick=st.data())
    def delete(self, pick: st.DataObject) -> None:
        name = pick.draw(st.sampled_from(sorted(self.files)))
        os.unlink(self._path(name))
        f = self.files.pop(name)
        if visible(name) and f.gen is not None:
            self._leave(f)
        self._sync()

    @precondition(lambda self: self.files)
    @rule(pick=st.data(), line=_valid, cut=st.integers(1, 60) | st.integers(27, 37))
    def settle_a_cut_line(self, pick: st.DataObject, line: bytes, cut: int) -> None:
        """An unterminated line, often cut inside its user, settles: it is counted
        provisionally, and taken back (that user's count falls) once the file grows."""
        name = pick.draw(st.sampled_from(sorted(self.files)))
        data = line[:cut]
        self._write(name, data)
        f = self.files[name]
        f.content += data
        f.last_change = self.now
        self._sync()
        self.now += SETTLE
        self._sync()

    @rule(seconds=st.sampled_from([1.0, SETTLE, SETTLE + 1]))
    def wait(self, seconds: float) -> None:
        self.now += seconds
        self._sync()

    @rule()
    def restart(self) -> None:
        assert self.watcher is not None
        self.watcher.close()
        self.watcher = self._new_watcher()
        self._sync()

    @precondition(lambda self: self.files)
    @rule(pick=st.data(), data=chunks.map(lambda b: b or b"\n"), point=st.sampled_from(["written", "committed"]))
    def crash_while_appending(self, pick: st.DataObject, data: bytes, point: str) -> None:
        """Appended bytes are counted once although the watcher dies in its commit."""
        name = pick.draw(st.sampled_from(sorted(self.files)))

        assert self.watcher is not None
        self._write(name, data)
        f = self.files[name]
        f.content += data
        f.last_change = self.now
        with crashing(point, SimulatedCrashError(point)), contextlib.suppress(SimulatedCrashError):
            self.watcher.drain()
        # The old one is dropped as a killed process would be, its database connection open.
        self.watcher = self._new_watcher()
        self._sync()

    # --- the checks ---

    @invariant()
    def outputs_equal_the_model(self) -> None:
        want = expected_outputs(self.gens, self.dir, self.scratch, self.settings)
        got = tuple(_read(os.path.join(self.out, name)) for name in OUTPUTS)
        assert got == want

    @invariant()
    def settled_and_untouched_equals_run(self) -> None:
        """When every generation is live and wholly counted, the outputs are those of run DIR."""
        live = [f for n, f in self.files.items() if visible(n)]
        if len(live) != len(self.gens) or any(f.gen is None or f.gen.counted != f.content
                                              for f in live):
            return
        reference = os.path.join(self.base, "reference")
        s = self.settings
        assert cli_main(["run", self.dir, "--out", reference, "--workers", "1", "--quiet",
                         "--top", str(s.top), "--burst-min-lines", str(s.burst_min_lines),
                         "--spike-min-errors", str(s.spike_min_errors),
                         "--burst-factor", str(s.burst_factor),
                         "--spike-factor", str(s.spike_factor), *range_options(s)]) == 0
        for name in COMPARED:
            assert _read(os.path.join(self.out, name)) == _read(os.path.join(reference, name))


def range_options(s: Settings) -> list[str]:
    """--tz, --since and --until of ``s`` on a command line (the bounds as UTC instants)."""
    out = [f"--tz={s.tz}"]
    for name, ns in (("--since", s.since_ns), ("--until", s.until_ns)):
        if ns is not None:
            second, nanos = divmod(ns, 1_000_000_000)
            out.append(f"{name}={time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(second))}"
                       f".{nanos:09d}Z")
    return out


def _read(path: str) -> bytes:
    """A file's bytes; a report page's without its run figures (the only part that may differ)."""
    with open(path, "rb") as f:
        data = f.read()
    return strip_run_figures(data) if path.endswith(".html") else data


TestWatchMachine = WatchMachine.TestCase
TestWatchMachine.settings = hypothesis_settings(
    max_examples=int(os.environ.get("WATCH_EXAMPLES", "40")), stateful_step_count=15,
    deadline=None,
)


class ArraysWatchMachine(WatchMachine):
    """The same, with every user and service judged from arrays (heavy.py), as those with
    tens of thousands of windows are."""

    def __init__(self) -> None:
        super().__init__()
        self.arrays_from = watch_judgments.ARRAYS_FROM
        watch_judgments.ARRAYS_FROM = 0

    def teardown(self) -> None:
        watch_judgments.ARRAYS_FROM = self.arrays_from
        super().teardown()


TestArraysWatchMachine = ArraysWatchMachine.TestCase
TestArraysWatchMachine.settings = hypothesis_settings(
    max_examples=int(os.environ.get("WATCH_EXAMPLES", "15")), stateful_step_count=15,
    deadline=None,
)


# --- helpers for the tests below -------------------------------------------------------------------


def wait_for(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` until it holds or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return done()
        time.sleep(0.02)
    return True


def summary(out: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(out, "summary.json"), "rb") as f:
            return json.loads(f.read())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def totals(out: str) -> dict[str, int]:
    doc = summary(out)
    return doc["totals"] if doc else {}


def run_outputs(folder: str, scratch: str) -> tuple[bytes, ...]:
    """What ``run DIR`` writes for the same folder."""
    assert cli_main(["run", folder, "--out", scratch, "--workers", "1", "--quiet"]) == 0
    return tuple(_read(os.path.join(scratch, name)) for name in COMPARED)


def outputs(out: str) -> tuple[bytes, ...]:
    try:
        return tuple(_read(os.path.join(out, name)) for name in COMPARED)
    except OSError:
        return ()


def log_lines(count: int, seed: int = 0, start: int = 0) -> bytes:
    """``count`` canonical lines, mostly in time order, a few malformed."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        t = 1_721_606_400 + (start + i) // 3
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        if rng.random() < 0.01:
            out.append(b"broken line %d" % i)
        else:
            level = rng.choice(["INFO", "INFO", "WARN", "ERROR", "DEBUG"])
            out.append(f"{stamp} {level} svc{rng.randrange(8)} user{rng.randrange(500)} m {i}"
                       .encode())
    return b"\n".join(out) + b"\n"


def start_watch(folder: str, out: str, *extra: str, log: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "mapreduce_logs", "watch", folder, "--out", out, *extra],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )


def _committed_seq(out: str) -> int:
    return committed_seq(os.path.join(out, ".watch"))


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the watcher, then make sure its pool workers (orphaned) are gone too."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.kill()
    proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()
    assert not alive, "pool workers outlived their killed watcher"


def stop_once(proc: subprocess.Popen[bytes], ready: Callable[[], bool], ready_within: float,
              exit_within: float) -> float:
    """SIGTERM ``proc`` once ``ready()``; the seconds it took to exit, with status 0 (it and
    its pool are killed if it does not)."""
    try:
        assert wait_for(ready, ready_within)
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        assert proc.wait(timeout=exit_within) == 0
        return time.monotonic() - began
    finally:
        if proc.poll() is None:
            kill_tree(proc)


def piece_files(out: str) -> list[str]:
    """The piece files of a big ``.gz`` left in ``out``'s checkpoint folder."""
    try:
        return [n for n in os.listdir(os.path.join(out, ".watch")) if n.startswith(PIECE_PREFIX)]
    except FileNotFoundError:
        return []


def folder_with_a_log(tmp_path: Any, count: int) -> tuple[str, str]:
    """(logs folder holding a.log of ``count`` lines, output folder), both under tmp_path."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    with open(os.path.join(logs, "a.log"), "wb") as f:
        f.write(log_lines(count))
    return logs, out


def in_process(folder: str, out: str, **options: Any) -> Watcher:
    options.setdefault("settle", 0.0)
    w = Watcher(folder, out, SETTINGS, SerialExecutor(), **options)
    w.open()
    return w


# --- the real command ------------------------------------------------------------------------------


def test_kill_9_at_random_moments_loses_nothing_and_counts_nothing_twice(tmp_path: Any) -> None:
    """A watch fed while it works, SIGKILLed at random moments and restarted, ends like run."""
    seed = int(os.environ.get("WATCH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    for i in range(3):
        with open(os.path.join(logs, f"start{i}.log"), "wb") as f:
            f.write(log_lines(3000, seed=i))
    stop = threading.Event()
    fed = [0]

    def feed() -> None:
        feeder = random.Random(seed + 1)
        half: dict[str, bytes] = {}
        while not stop.is_set():
            name = f"fed{feeder.randrange(5)}.log"
            data = half.pop(name, b"") + log_lines(feeder.randrange(1, 60), seed=fed[0],
                                                    start=fed[0])
            if feeder.random() < 0.3:
                cut = feeder.randrange(1, len(data))
                data, half[name] = data[:cut], data[cut:]
            with open(os.path.join(logs, name), "ab") as f:
                f.write(data)
            fed[0] += 1
            stop.wait(0.003)
        for name, rest in half.items():
            with open(os.path.join(logs, name), "ab") as f:
                f.write(rest)

    feeder = threading.Thread(target=feed)
    feeder.start()
    log = str(tmp_path / "watch.log")
    common = ["--workers", "2", "--chunk-size", "65536", "--settle", "0.2", "--quiet"]
    committed = []
    try:
        for round_ in range(6):
            extra = ["--poll", "0.05"] if round_ % 3 == 2 else []
            before = _committed_seq(out)
            proc = start_watch(logs, out, *common, *extra, log=log)
            if round_ % 2:  # at any moment, start-up included
                time.sleep(rng.uniform(0.05, 1.0))
            else:  # at some moment after this run has committed work of its own
                assert wait_for(lambda b=before: _committed_seq(out) > b + 1, 30), seed
                time.sleep(rng.uniform(0.0, 0.3))
            kill_tree(proc)
            committed.append(_committed_seq(out))
    finally:
        stop.set()
        feeder.join()
    assert sum(b > a for a, b in zip([0, *committed], committed, strict=False)) >= 3, (seed, committed)
    want = run_outputs(logs, str(tmp_path / "reference"))
    proc = start_watch(logs, out, *common, log=log)
    try:
        assert wait_for(lambda: outputs(out) == want, 60), (
            f"seed {seed}: {totals(out)} != {json.loads(want[0])['totals']}"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            kill_tree(proc)
    leftovers = sorted(os.listdir(os.path.join(out, ".watch")))
    assert all(n.startswith(DATABASE) for n in leftovers), leftovers


def test_sigterm_stops_a_busy_watch_quickly_with_its_checkpoint(tmp_path: Any) -> None:
    """SIGTERM in the middle of work: exit 0 within seconds; a restart ends exactly like run."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    with open(os.path.join(logs, "big.log"), "wb") as f:
        f.write(log_lines(150_000))
    log = str(tmp_path / "watch.log")
    proc = start_watch(logs, out, "--workers", "2", log=log)
    stopped_in = stop_once(proc, lambda: _committed_seq(out) > 0, 20, 10)
    assert stopped_in < 5, stopped_in
    with open(log, encoding="utf-8") as f:
        assert "MB/s" in f.read()  # the run figures, on the way out
    before = totals(out)
    w = in_process(logs, out)
    w.drain()
    w.close()
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))
    assert totals(out)["lines"] >= before.get("lines", 0)


@pytest.mark.parametrize(("workers", "memory"), [("1", "100"), ("2", "300")])
def test_sigterm_stops_a_watch_in_the_middle_of_a_big_gz(
    tmp_path: Any, workers: str, memory: str
) -> None:
    """A .gz is one split that can take minutes; SIGTERM while it is read (its first piece is on
    disk) still stops within seconds, leaves no piece, and a restart ends like run."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    with open(os.path.join(logs, "big.log.gz"), "wb") as f:
        f.write(gzip.compress(log_lines(400_000), compresslevel=1))
    log = str(tmp_path / "watch.log")
    proc = start_watch(logs, out, "--workers", workers, "--settle", "0.1", "--memory-mb", memory,
                       log=log)
    stopped_in = stop_once(proc, lambda: bool(piece_files(out)), 30, 20)
    assert stopped_in < 3, stopped_in
    with open(log, encoding="utf-8") as f:
        assert "does not fit" not in f.read()
    assert piece_files(out) == []
    assert totals(out).get("lines", 0) == 0  # nothing of it was committed
    w = in_process(logs, out, settle=0.0)
    w.drain()
    w.close()
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))


@pytest.mark.parametrize("poll", [None, "0.2"])
def test_a_new_10_mb_file_shows_within_2_seconds(tmp_path: Any, poll: str | None) -> None:
    """docs/watch.md: a new 10 MB file is in summary.json within 2 s (deadline, not timing)."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    data = log_lines(215_000)
    assert len(data) >= 10_000_000
    expected = data.count(b"\n")
    extra = ["--poll", poll] if poll else []
    proc = start_watch(logs, out, "--workers", "2", "--quiet", *extra,
                       log=str(tmp_path / "watch.log"))
    try:
        assert wait_for(lambda: summary(out) is not None, 20)
        with open(os.path.join(logs, "big.log.part"), "wb") as f:
            f.write(data)
        os.rename(os.path.join(logs, "big.log.part"), os.path.join(logs, "big.log"))
        assert wait_for(lambda: totals(out).get("lines") == expected, 2.0), totals(out)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            kill_tree(proc)


# --- in process ------------------------------------------------------------------------------------


def test_a_flood_of_files_waits_in_a_bounded_queue(tmp_path: Any) -> None:
    """300 files at once through a queue of 8 paths: none lost, the queue never above 8."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    w = in_process(logs, out, pending_limit=8, batch_bytes=4096, rescan_seconds=3600)
    try:
        w.start_events()
        w.drain()
        for i in range(300):
            with open(os.path.join(logs, f"f{i:03d}.log"), "wb") as f:
                f.write(log_lines(3, seed=i, start=i))
        assert w.run_until(lambda: totals(out).get("files") == 300, 30), totals(out)
    finally:
        w.close()
    assert w.pending.most <= 8
    assert w.rescans >= 2  # the first scan, then at least one asked for by an overflow
    assert w.largest_batch <= 2 * 4096
    assert w.updates > 1
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))


def test_notifications_alone_bring_appends_and_renames(tmp_path: Any) -> None:
    """With rescans an hour apart, inotify events drive every update."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    a = os.path.join(logs, "a.log")
    with open(a, "wb") as f:
        f.write(log_lines(10) + b"oops\n")
    w = in_process(logs, out, rescan_seconds=3600)
    try:
        w.start_events()
        assert type(w.observer).__name__ == "InotifyObserver"
        w.drain()
        assert totals(out)["lines"] == 11
        with open(a, "ab") as f:
            f.write(log_lines(5, start=10))
        assert w.run_until(lambda: totals(out).get("lines") == 16, 10)
        os.rename(a, os.path.join(logs, "b.log"))
        assert w.run_until(lambda: b"b.log" in outputs(out)[1], 10)
        assert totals(out)["lines"] == 16
        with open(os.path.join(logs, "c.log.tmp"), "wb") as f:
            f.write(log_lines(7))
        os.rename(os.path.join(logs, "c.log.tmp"), os.path.join(logs, "c.log"))
        assert w.run_until(lambda: totals(out).get("lines") == 23, 10)
    finally:
        w.close()
    assert w.rescans == 1
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))


def _database(folder: str) -> str:
    return os.path.join(folder, DATABASE)


def _overwrite(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _flip_at(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


def _sql(folder: str, statement: str, *args: Any) -> None:
    """Change the database behind SQLite's back-free API: valid pages, wrong contents."""
    db = sqlite3.connect(_database(folder))
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()


def _flip_saved_totals(folder: str) -> None:
    db = sqlite3.connect(_database(folder))
    try:
        (blob,) = db.execute("SELECT value FROM meta WHERE key = 'small'").fetchone()
        data = bytearray(blob)
        data[len(data) // 2] ^= 0x20
        db.execute("UPDATE meta SET value = ? WHERE key = 'small'", (bytes(data),))
        db.commit()
    finally:
        db.close()


DAMAGES: dict[str, Callable[[str], None]] = {
    "empty database": lambda folder: open(_database(folder), "wb").close(),
    "garbage database": lambda folder: _overwrite(_database(folder), b"not a database\n" * 512),
    "missing database": lambda folder: os.unlink(_database(folder)),
    "truncated database": lambda folder: os.truncate(
        _database(folder), os.path.getsize(_database(folder)) // 2),
    "damaged page header": lambda folder: _flip_at(_database(folder), 4096),
    "flipped byte in the saved totals": _flip_saved_totals,
    "a user's count changed": lambda folder: _sql(
        folder, "UPDATE users SET n = n + 1 WHERE user = (SELECT min(user) FROM users)"),
    "a (user, window) count changed": lambda folder: _sql(
        folder, "UPDATE user_windows SET n = n + 1 WHERE (user, window) = "
                "(SELECT user, window FROM user_windows LIMIT 1)"),
    "a window's count changed": lambda folder: _sql(
        folder, "UPDATE windows SET n = n + 1 WHERE window = (SELECT min(window) FROM windows)"),
    "a file's offset lost": lambda folder: _sql(folder, "DELETE FROM files"),
    "never committed (a crash in its first commit)": lambda folder: _sql(
        folder, "DELETE FROM meta WHERE key = 'small'"),
    "an unknown level token's row added": lambda folder: _sql(
        folder, "INSERT INTO unknown VALUES (-1, x'612e6c6f67', 0, x'58', 0, 1, '[]')"),
}
"""Each damages a checkpoint after a clean stop; a restart must say so and count again."""


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_checkpoint_is_reported_and_rebuilt(tmp_path: Any, damage: str) -> None:
    logs, out = folder_with_a_log(tmp_path, 20)
    w = in_process(logs, out)
    w.drain()
    with open(os.path.join(logs, "a.log"), "ab") as f:
        f.write(log_lines(5, start=20))
    w.drain()
    w.close()
    DAMAGES[damage](os.path.join(out, ".watch"))
    said: list[str] = []
    w = in_process(logs, out, say=said.append)
    w.drain()
    w.close()
    assert any("checkpoint not used" in m for m in said), said
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))


def test_a_checkpoint_for_other_settings_is_not_trusted(tmp_path: Any) -> None:
    logs, out = folder_with_a_log(tmp_path, 20)
    w = in_process(logs, out)
    w.drain()
    w.close()
    said: list[str] = []
    other = Settings(workers=1, window=30)
    w = Watcher(logs, out, other, SerialExecutor(), settle=0.0, say=said.append)
    w.open()
    w.drain()
    w.close()
    assert any("checkpoint not used" in m for m in said), said
    assert cli_main(["run", logs, "--out", str(tmp_path / "ref"), "--workers", "1", "--quiet",
                     "--window", "30"]) == 0
    assert outputs(out) == tuple(_read(str(tmp_path / "ref" / n)) for n in COMPARED)


@pytest.mark.parametrize("first, second", [
    (Settings(workers=1), Settings(workers=1, tz="Asia/Kolkata")),
    (Settings(workers=1, tz="America/New_York"), Settings(workers=1, tz="-0500")),
    (Settings(workers=1, since_ns=1_721_606_400 * 10**9 + 300 * 10**9),
     Settings(workers=1, since_ns=1_721_606_400 * 10**9 + 301 * 10**9)),
    (Settings(workers=1, until_ns=1_721_606_400 * 10**9 + 600 * 10**9), Settings(workers=1)),
])
def test_a_restart_with_other_tz_since_or_until_counts_again(
    tmp_path: Any, first: Settings, second: Settings
) -> None:
    """--tz, --since and --until decide what the counts are: a checkpoint made with other values
    is not used (the watcher says so and counts again from the files), so no count mixes the
    two; each time the outputs equal run's with the same values once quiet."""
    logs, out = folder_with_a_log(tmp_path, 3000)
    for settings, says in ((first, False), (second, True)):
        said: list[str] = []
        w = Watcher(logs, out, settings, SerialExecutor(), settle=0.0, say=said.append)
        w.open()
        w.drain()
        w.close()
        assert any("checkpoint not used" in m for m in said) == says, said
        ref = str(tmp_path / f"ref-{says}")
        assert cli_main(["run", logs, "--out", ref, "--workers", "1", "--quiet",
                         *range_options(settings)]) == 0
        assert outputs(out) == tuple(_read(os.path.join(ref, n)) for n in COMPARED)
    assert json.loads(outputs(out)[0])["time_zone"] == second.tz


def test_a_restart_with_other_top_and_detector_settings_reuses_the_counts(tmp_path: Any) -> None:
    """--top and the detector settings are not tied to the checkpoint: a restart with others
    keeps the counts, judges again what they change, and gives what run gives with them."""
    logs, out = folder_with_a_log(tmp_path, 3000)
    with open(os.path.join(logs, "a.log"), "ab") as f:
        f.write(b"".join(b"2024-07-22T00:00:%02dZ ERROR svc1 loud\n" % (i % 60) for i in range(40)))
    w = in_process(logs, out)
    w.drain()
    w.close()
    other = Settings(workers=1, top=3, spike_factor=2.0, spike_min_errors=3,
                     burst_factor=2.0, burst_min_lines=4)
    said: list[str] = []
    w = Watcher(logs, out, other, SerialExecutor(), settle=0.0, say=said.append, top_size=3)
    w.open()
    w.drain()
    w.close()
    assert not said, said
    assert cli_main(["run", logs, "--out", str(tmp_path / "ref"), "--workers", "1", "--quiet",
                     "--top", "3", "--spike-factor", "2", "--spike-min-errors", "3",
                     "--burst-factor", "2", "--burst-min-lines", "4"]) == 0
    assert outputs(out) == tuple(_read(str(tmp_path / "ref" / n)) for n in COMPARED)


def test_a_long_spam_run_on_steady_traffic_is_reported_as_run_reports_it(tmp_path: Any) -> None:
    """Twenty users steady over 90 minutes and a spammer over 30 of them, arriving in pieces:
    the busiest share, the usual rates and the burst runs read from disk are those of run."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    rng = random.Random(5)
    lines = []
    for minute in range(90):
        stamp = f"2024-03-01T{minute // 60:02d}:{minute % 60:02d}"
        for i in range(60):
            lines.append(f"{stamp}:{i:02d}Z INFO svc{i % 3} user{rng.randrange(20)} ok\n")
        if 40 <= minute < 70:
            lines += [f"{stamp}:30Z INFO svc0 spammer buy now\n"] * 40
    data = "".join(lines).encode()
    w = in_process(logs, out, top_size=4)
    try:
        with open(os.path.join(logs, "a.log"), "wb") as f:
            for piece in range(0, len(data), len(data) // 5 + 1):
                f.write(data[piece: piece + len(data) // 5 + 1])
                f.flush()
                w.drain()
    finally:
        w.close()
    anomalies = json.loads(outputs(out)[1])
    assert [a["user"] for a in anomalies["anomalies"] if a["type"] == "user_burst"] == ["spammer"]
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))


def test_gz_files_are_read_whole_once_settled(tmp_path: Any) -> None:
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    now = [0.0]
    gz = os.path.join(logs, "old.log.gz")
    with open(gz, "wb") as f:
        f.write(gzip.compress(log_lines(30)))
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0])
    w.drain()
    assert totals(out)["lines"] == 0
    now[0] += 2
    w.drain()
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))
    with open(gz, "ab") as f:
        f.write(gzip.compress(log_lines(10, start=30)))
    w.drain()
    assert totals(out)["lines"] == 30
    now[0] += 2
    w.drain()
    w.close()
    assert totals(out)["lines"] == 40
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))


def test_a_big_gz_is_counted_in_pieces_on_disk(tmp_path: Any, monkeypatch: Any) -> None:
    """A ``.gz`` over the flush size goes through piece files, a few counters at a time, into
    the checkpoint; taken back in pieces when it grows; a crash in its commit loses nothing and
    leaves no piece behind. The outputs equal run's throughout."""
    from mapreduce_logs.ingest import scan
    from mapreduce_logs.watch import batches

    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    with open(os.path.join(logs, "a.log"), "wb") as f:
        f.write(log_lines(200, seed=1))
    gz = os.path.join(logs, "big.log.gz")
    with open(gz, "wb") as f:
        f.write(gzip.compress(log_lines(3000, seed=2)))
    largest: list[int] = []
    real_write_piece = watch_pieces.write_piece

    def counted(folder: str, counts: Any, *facts: Any) -> str:
        largest.append(len(counts.user_lines))
        return real_write_piece(folder, counts, *facts)

    monkeypatch.setattr(batches, "write_piece", counted)
    monkeypatch.setattr(watch_store, "PIECE_ROWS", 50)  # read back in the store
    monkeypatch.setattr(scan, "BLOCK", 1000)
    now = [0.0]
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0], gz_flush_bytes=4000)
    w.drain()
    assert totals(out)["lines"] == 200
    now[0] += 2
    with crashing("written", KeyboardInterrupt()), pytest.raises(KeyboardInterrupt):
        w.drain()
    w.close()
    with open(gz, "rb") as f:
        assert len(largest) >= len(gzip.decompress(f.read())) // 4000
    assert 0 < max(largest) < 300
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0], gz_flush_bytes=4000)
    assert piece_files(out) == []
    w.drain()
    now[0] += 2
    w.drain()
    assert piece_files(out) == []
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))
    with open(gz, "ab") as f:
        f.write(gzip.compress(log_lines(500, seed=3, start=3000)))
    w.drain()
    now[0] += 2
    w.drain()
    w.close()
    assert piece_files(out) == []
    assert totals(out)["lines"] == 3700
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference2"))


def test_error_spikes_saved_under_other_rules_are_judged_again(tmp_path: Any, monkeypatch: Any) -> None:
    """The checkpoint keeps each service's error spikes; a watcher whose spike rule differs
    (another version of the rule, not only other options) judges them again on restart."""
    from mapreduce_logs.watch import store as watch_store

    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    steady = [f"2024-07-22T00:{m:02d}:{s:02d}Z ERROR db u{s % 7} m".encode()
              for m in range(30) for s in (1, 31)]
    spike = [f"2024-07-22T00:31:{s:02d}Z ERROR db u{s % 7} m".encode() for s in range(60)]
    with open(os.path.join(logs, "a.log"), "wb") as f:
        f.write(b"\n".join(steady + spike) + b"\n")
    w = in_process(logs, out)
    w.drain()
    assert json.loads(outputs(out)[1])["counts"].get("error_spike") == 1
    # Another service's lines: committed with db's judgment made for the outputs, and the
    # other service still to judge (a judgment waits for the next anomaly pass).
    with open(os.path.join(logs, "b.log"), "wb") as f:
        f.write(b"2024-07-22T00:40:00Z INFO web u1 m\n")
    w.drain()
    w.close()
    monkeypatch.setattr(watch_judgments, "spikes", lambda *args: [])
    w = in_process(logs, out)
    w.close()
    assert json.loads(outputs(out)[1])["counts"].get("error_spike") == 1, "db's saved spike"
    monkeypatch.setattr(watch_store, "SPIKE_RULE_VERSION", watch_store.SPIKE_RULE_VERSION + 1)
    w = in_process(logs, out)
    w.close()
    assert json.loads(outputs(out)[1])["counts"]["error_spike"] == 0


def _bytes_written() -> int:
    """Bytes this process has passed to write() so far (Linux)."""
    with open("/proc/self/io", encoding="ascii") as f:
        return int(next(line for line in f if line.startswith("wchar:")).split()[1])


def test_an_update_writes_what_it_changed_not_the_whole_state(tmp_path: Any) -> None:
    """After a state of 100,000 lines is built, a one-line update writes a small part of it
    (checkpoint and outputs together)."""
    logs, out = folder_with_a_log(tmp_path, 100_000)
    w = in_process(logs, out)
    w.drain()
    with open(os.path.join(logs, "a.log"), "ab") as f:
        f.write(log_lines(1, start=100_000))
    before = _bytes_written()
    w.drain()
    written = _bytes_written() - before
    size = w.checkpoint.size()
    w.close()
    assert totals(out)["lines"] == 100_001
    assert written * 20 < size, (written, size)


def test_the_counts_of_users_and_services_live_on_disk(tmp_path: Any) -> None:
    """Whatever the number of users, the watcher's memory holds none of their counts."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    users = 20_000
    with open(os.path.join(logs, "a.log"), "wb") as f:
        f.write(b"".join(b"2024-01-01T00:%02d:00Z INFO svc%d user%d\n" % (i % 60, i % 7, i)
                         for i in range(users)))
    w = in_process(logs, out)
    w.drain()
    view = w.state.view()
    assert not (view.users or view.services or view.user_lines or view.service_errors
                or view.service_others)
    assert w.checkpoint.db is not None
    assert w.checkpoint.db.execute("SELECT count(*) FROM users").fetchone() == (users,)
    w.close()
    assert json.loads(outputs(out)[0])["distinct_users"] == users
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))


def test_a_tail_taken_back_lowers_a_top_user_exactly(tmp_path: Any) -> None:
    """Settled last lines make bob the top user and add zed; completed, they belong to bobby
    and zedd: bob falls back (the one-entry top list on disk is rebuilt) and zed is gone. The
    outputs are those of run at each stage."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    a, b = os.path.join(logs, "a.log"), os.path.join(logs, "b.log")
    line = b"2024-01-01T00:00:00Z INFO svc %s\n"
    with open(a, "wb") as f:
        f.write(line % b"alice" * 2 + line % b"bob" * 2 + (line % b"bob")[:-1])
    with open(b, "wb") as f:
        f.write((line % b"zed")[:-1])
    settings = Settings(workers=1, top=1)
    now = [0.0]
    w = Watcher(logs, out, settings, SerialExecutor(), settle=1.0, clock=lambda: now[0],
                top_size=1)
    w.open()
    w.drain()
    now[0] += 1
    w.drain()
    reference = ["run", logs, "--workers", "1", "--quiet", "--top", "1", "--out"]
    summary_now = json.loads(outputs(out)[0])
    assert (summary_now["user_counts"], summary_now["distinct_users"]) == ({"bob": 3}, 3)
    assert cli_main([*reference, str(tmp_path / "r1")]) == 0
    assert outputs(out) == outputs(str(tmp_path / "r1"))
    for path in (a, b):
        with open(path, "ab") as f:
            f.write(b"by\n" if path == a else b"d\n")
    w.drain()
    rebuilt = w.checkpoint.store.full_passes if w.checkpoint.store else 0
    w.close()
    summary_now = json.loads(outputs(out)[0])
    assert (summary_now["user_counts"], summary_now["distinct_users"]) == ({"alice": 2}, 4)
    assert cli_main([*reference, str(tmp_path / "r2")]) == 0
    assert outputs(out) == outputs(str(tmp_path / "r2"))
    assert rebuilt >= 1


@hypothesis_settings(max_examples=200)
@given(
    size=st.integers(1, 4),
    updates=st.lists(st.dictionaries(st.sampled_from("abcdef"), st.integers(-3, 5), max_size=4),
                     max_size=12),
)
def test_a_top_list_is_exact_for_what_it_holds(size: int, updates: list[dict[str, int]]) -> None:
    """Whatever totals rise or fall, a TopList's entries are the exact top of all totals, and
    it is complete exactly when it holds every subject."""
    truth: dict[bytes, int] = {}
    top = TopList(size)
    for update in updates:
        changed = {}
        for name, delta in update.items():
            key = name.encode()
            truth[key] = max(0, truth.get(key, 0) + delta)
            changed[key] = truth[key]
        top.update(changed)
        live = sorted(((k, n) for k, n in truth.items() if n), key=lambda kn: (-kn[1], kn[0]))
        assert top.items == live[: len(top.items)]
        if top.complete:
            assert top.items == live


def test_only_the_first_1000_unknown_levels_are_reported_as_run_does(tmp_path: Any) -> None:
    """Past 1000 distinct unknown level tokens, the ones first in input order are reported."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    w = in_process(logs, out)
    for name, first in (("b.log", 0), ("a.log", 700), ("b.log", 1400)):
        with open(os.path.join(logs, name), "ab") as f:
            f.write(b"".join(b"2024-01-01T00:00:00Z LEVEL%d svc u\n" % (first + i)
                             for i in range(700)))
        w.drain()
    w.close()
    anomalies = json.loads(outputs(out)[1])
    assert anomalies["counts"]["unknown_level"] == 1000
    assert outputs(out) == run_outputs(logs, str(tmp_path / "reference"))


def test_unknown_level_tokens_live_on_disk_and_follow_renames_tails_and_pieces(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """The tokens are rows of the checkpoint, none in memory; which are reported follows the
    files' order as it changes (a rename moves a file's tokens later), a provisional tail's
    token is taken back, and a big ``.gz``'s tokens come through its pieces: like run."""
    from mapreduce_logs import settings as knobs_module
    from mapreduce_logs.ingest import scan

    monkeypatch.setattr(knobs_module, "LIMITS", knobs_module.Limits(unknown_levels=3))
    monkeypatch.setattr(scan, "BLOCK", 200)
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)

    def tokens(*names: str, end: bytes = b"\n") -> bytes:
        return b"\n".join(b"2024-01-01T00:00:%02dZ %s svc u%d" % (i % 60, name.encode(), i)
                          for i, name in enumerate(names)) + end

    def write(name: str, data: bytes, mode: str = "ab") -> None:
        with open(os.path.join(logs, name), mode) as f:
            f.write(data)

    now = [0.0]
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0], gz_flush_bytes=300)
    scratch = iter(range(100))

    def settled_like_run() -> None:
        w.drain()
        now[0] += 2
        w.drain()
        st = w.state
        assert not st.partial.unknown_levels and not any(t.unknown_levels for t in st.tails.values())
        assert not any(seg.unknown_examples for part in (st.partial, *st.tails.values())
                       for segs in part.segments.values() for seg in segs)
        assert outputs(out) == run_outputs(logs, str(tmp_path / f"run{next(scratch)}"))

    write("m.log", tokens("Zed", "Yak", "Zed", "Xu", "Zed", "Zed", "Zed", "Zed"))
    settled_like_run()
    write("b.log", tokens("Bee", "Zed"))
    settled_like_run()
    write("c.log.gz", gzip.compress(tokens(*[f"G{i}" for i in range(40)], "Xu", "Yak", "Bee")),
          "wb")
    write("b.log", tokens("Wasp", end=b""))
    settled_like_run()
    write("b.log", b" more\n" + tokens("Ant", "Wasp"))
    settled_like_run()
    os.rename(os.path.join(logs, "b.log"), os.path.join(logs, "z.log"))
    settled_like_run()
    os.rename(os.path.join(logs, "m.log"), os.path.join(logs, "zz.log"))
    settled_like_run()
    w.close()
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0], gz_flush_bytes=300)
    settled_like_run()
    w.close()
    reported = [a["level"] for a in json.loads(outputs(out)[1])["anomalies"]
                if a["type"] == "unknown_level"]
    assert sorted(reported) == ["G0", "G1", "G2"]


def test_batches_get_smaller_when_memory_runs_high(tmp_path: Any) -> None:
    """Past three quarters of --memory-mb the batch is halved, once for each new peak."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    peak = [0]
    w = in_process(logs, out, memory=lambda: peak[0])
    first = w.batches.bytes
    budget = SETTINGS.memory_mb * 1_000_000
    sizes = []
    for memory in (budget // 2, budget * 8 // 10, budget * 8 // 10, budget * 9 // 10):
        peak[0] = memory
        with open(os.path.join(logs, "a.log"), "ab") as f:
            f.write(log_lines(5))
        w.drain()
        sizes.append(w.batches.bytes)
    w.close()
    assert sizes == [first, first // 2, first // 2, first // 4]
    assert w.batches.chunk_size <= w.batches.bytes


def test_the_first_batches_start_small_and_double_while_memory_is_low(tmp_path: Any) -> None:
    """A quarter of the full batch first, doubled after each update under half the budget."""
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    w = in_process(logs, out, memory=lambda: SETTINGS.memory_mb * 100_000)  # 10 %
    sizes = [w.batches.bytes]
    for _ in range(3):
        with open(os.path.join(logs, "a.log"), "ab") as f:
            f.write(log_lines(5))
        w.drain()
        sizes.append(w.batches.bytes)
    w.close()
    assert sizes == [w.batches.limit // 4, w.batches.limit // 2, w.batches.limit, w.batches.limit]


def test_future_stamps_are_judged_against_the_files_newest_mtime(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """A line read while its file's mtime was early is flagged then; once the file's mtime moves
    on (appends, a touch) it is judged again, as a later run judges it: through appends, a
    touch, a rename, a restart, a provisional tail and a ``.gz`` counted in pieces."""
    from mapreduce_logs.ingest import scan

    monkeypatch.setattr(scan, "BLOCK", 200)
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    t0 = 1_893_456_000  # 2030-01-01, seconds

    def lines(*offsets: int, end: bytes = b"\n") -> bytes:
        return b"\n".join(
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + s)).encode() + b" INFO svc u%d" % i
            for i, s in enumerate(offsets)) + end

    def write(name: str, data: bytes, mtime: int, mode: str = "ab") -> None:
        path = os.path.join(logs, name)
        with open(path, mode) as f:
            f.write(data)
        os.utime(path, ns=(mtime * 10**9, mtime * 10**9))

    now = [0.0]
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0], gz_flush_bytes=300)
    scratch = iter(range(100))

    def settled_like_run(future: int) -> None:
        w.drain()
        now[0] += 2
        w.drain()
        assert json.loads(outputs(out)[1])["counts"]["future_timestamp"] == future
        assert outputs(out) == run_outputs(logs, str(tmp_path / f"run{next(scratch)}"))

    write("a.log", lines(-100, 400, 1000, 5000), t0)
    settled_like_run(1)
    write("a.log", lines(500), t0 + 800)
    settled_like_run(1)
    os.utime(os.path.join(logs, "a.log"), ns=((t0 + 4800) * 10**9, (t0 + 4800) * 10**9))
    settled_like_run(0)
    write("a.log", lines(99_999, 6000, end=b""), t0 + 4800)
    settled_like_run(1)
    write("a.log", b" more\n", t0 + 5000)
    settled_like_run(1)
    os.rename(os.path.join(logs, "a.log"), os.path.join(logs, "b.log"))
    settled_like_run(1)
    write("c.log.gz", gzip.compress(lines(*range(0, 4000, 40))), t0 - 3000, "wb")
    settled_like_run(2)
    w.close()
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0], gz_flush_bytes=300)
    settled_like_run(2)
    write("b.log", lines(7000), t0 + 9000)
    settled_like_run(2)
    w.close()
    found = [a for a in json.loads(outputs(out)[1])["anomalies"] if a["type"] == "future_timestamp"]
    assert sorted((os.path.basename(a["file"]), a["count"]) for a in found) == [
        ("b.log", 1), ("c.log.gz", 100)]


@pytest.mark.parametrize("arrays_from", [watch_judgments.ARRAYS_FROM, 0])
def test_many_windows_are_folded_into_sorted_arrays_like_run(tmp_path: Any, monkeypatch: Any,
                                                             arrays_from: int) -> None:
    """Past ``limits().window_buffer`` windows (here 3) the lines per window counted for good move to sorted
    arrays, and a checkpoint with more is loaded into them: through appends, a provisional
    tail, a restart and a rename the outputs stay those of run (user bursts included), with
    users and services judged from dicts, or all from arrays (as past ARRAYS_FROM windows)."""
    from mapreduce_logs import settings as knobs_module

    monkeypatch.setattr(knobs_module, "LIMITS", knobs_module.Limits(window_buffer=3))
    monkeypatch.setattr(watch_judgments, "ARRAYS_FROM", arrays_from)
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    rng = random.Random(9)

    def lines(count: int, end: bytes = b"\n") -> bytes:
        out = []
        for i in range(count):
            minute = rng.randrange(300) if i % 2 else rng.randrange(10**6)
            user = b"steady" if i % 3 == 0 else b"u%d" % rng.randrange(40)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute * 60)).encode()
            level = b"ERROR" if minute % 40 == 3 else b"INFO"
            out.append(b"%s %s s%d %s m" % (stamp, level, rng.randrange(3), user))
        return b"\n".join(out) + end

    now = [0.0]
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0])
    scratch = iter(range(100))

    def settled_like_run() -> None:
        w.drain()
        now[0] += 2
        w.drain()
        assert outputs(out) == run_outputs(logs, str(tmp_path / f"run{next(scratch)}"))

    with open(os.path.join(logs, "a.log"), "wb") as f:
        f.write(lines(400))
    settled_like_run()
    assert w.state.window_base is not None
    with open(os.path.join(logs, "a.log"), "ab") as f:
        f.write(lines(200, end=b"") + b"\n".join(
            [b"1970-01-01T02:00:%02dZ INFO s1 spammer m" % s for s in range(60)] * 2) + b"\n")
    with open(os.path.join(logs, "b.log"), "wb") as f:
        f.write(lines(50, end=b""))
    settled_like_run()
    assert b"spammer" in outputs(out)[1]
    w.close()
    w = in_process(logs, out, settle=2.0, clock=lambda: now[0])
    assert w.state.window_base is not None
    os.rename(os.path.join(logs, "b.log"), os.path.join(logs, "c.log"))
    with open(os.path.join(logs, "c.log"), "ab") as f:
        f.write(b" more\n" + lines(30))
    settled_like_run()
    w.close()


def test_outputs_inside_a_watched_tree_are_not_read_back(tmp_path: Any) -> None:
    logs = str(tmp_path / "logs")
    out = os.path.join(logs, "results")
    os.mkdir(logs)
    with open(os.path.join(logs, "a.log"), "wb") as f:
        f.write(log_lines(20))
    w = in_process(logs, out, recursive=True)
    w.drain()
    w.drain()
    w.close()
    assert totals(out)["files"] == 1
    assert totals(out)["lines"] == 20


def test_anomalies_wait_for_the_backlog_and_the_summary_does_not(tmp_path: Any,
                                                                 monkeypatch: Any) -> None:
    """While files wait to be counted, summary.json follows every batch and anomalies.json (a
    pass over every counter) waits until the backlog is done or ANOMALIES_EVERY has passed;
    once quiet both are run's."""
    from mapreduce_logs.watch import outputs as watch_outputs

    monkeypatch.setattr(watch_outputs, "ANOMALIES_EVERY", 3600.0)
    logs, out = folder_with_a_log(tmp_path, 3000)
    w = in_process(logs, out, batch_bytes=20_000)
    anomalies = os.path.join(out, "anomalies.json")
    before = _read(anomalies)
    assert w.step() and w.todo, "one batch, with more to come"
    assert 0 < totals(out)["lines"] < 3000
    assert _read(anomalies) == before and w.outputs.anomalies_stale
    w.outputs.anomalies_due = time.monotonic()  # as if ANOMALIES_EVERY had passed
    assert w.step() and w.todo
    assert not w.outputs.anomalies_stale and _read(anomalies) != before, "written when due"
    w.drain()
    assert not w.outputs.anomalies_stale
    assert outputs(out) == run_outputs(logs, str(tmp_path / "run"))
    w.close()
