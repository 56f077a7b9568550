"""watch on a fake clock, stepped the way the live loop steps it, with no forced rescan.

``Watcher.run`` calls ``step()`` until it reports idle, then waits for a file event or for
``_idle_seconds()`` (when the next rescan or the next settle is due). ``Live`` does the same,
except that the wait moves a fake clock instead of sleeping, and a file event is what the
observer would report: the path, added to the watcher's pending set. Nothing here calls
``drain()`` (which forces a full rescan and would hide the event-driven path): a settled last
line must come from the ``unsettled`` schedule, a missed event from the periodic rescan.
Expected outputs come from ``run DIR`` over the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mapreduce_logs import SerialExecutor, Settings
from mapreduce_logs.cli import main as cli_main
from mapreduce_logs.watch import outputs as outputs_module
from mapreduce_logs.watch.loop import RESCAN_SECONDS, Watcher

SETTINGS = Settings(workers=1)
SETTLE = 2.0
START = 1000.0
OUTPUTS = ("summary.json", "anomalies.json")
MOST_STEPS = 10_000
"""More steps than any test here needs: a loop that never goes idle fails by name."""


def line(second: int, user: str = "u1", level: str = "INFO") -> bytes:
    return b"2024-03-01T10:00:%02dZ %s auth %s hello" % (second % 60, level.encode(), user.encode())


class Live:
    """A watcher on ``folder`` and the loop of ``Watcher.run`` around it, on a fake clock."""

    def __init__(self, folder: Path, out: Path, **options: Any) -> None:
        self.folder, self.out = str(folder), str(out)
        self.now = START
        options.setdefault("settle", SETTLE)
        self.watcher = Watcher(self.folder, self.out, SETTINGS, SerialExecutor(),
                               clock=lambda: self.now, **options)
        self.watcher.open()
        self.steps = 0

    def close(self) -> None:
        self.watcher.close()

    def event(self, name: str) -> None:
        """What the observer reports after a write: the path, spelled as a listing spells it."""
        self.watcher.pending.add(os.path.join(self.folder, name))

    def busy(self) -> None:
        """Step until idle, as ``run`` does before it waits."""
        while self.watcher.step():
            self.steps += 1
            assert self.steps < MOST_STEPS, "the watcher never went idle"

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass as the live loop would: step until idle, sleep until the next
        thing is due (or the end), again. The last step happens at the end time."""
        end = self.now + seconds
        self.busy()
        while self.now < end:
            self.now = min(end, self.now + self.watcher._idle_seconds())
            self.busy()

    def totals(self) -> dict[str, int]:
        with open(os.path.join(self.out, "summary.json"), "rb") as f:
            totals: dict[str, int] = json.load(f)["totals"]
        return totals

    def users(self) -> dict[str, int]:
        with open(os.path.join(self.out, "summary.json"), "rb") as f:
            users: dict[str, int] = json.load(f)["user_counts"]
        return users

    def outputs(self) -> tuple[bytes, ...]:
        return tuple(Path(self.out, name).read_bytes() for name in OUTPUTS)


def run_outputs(folder: Path, scratch: Path) -> tuple[bytes, ...]:
    """What ``run DIR`` writes for the same bytes."""
    assert cli_main(["run", str(folder), "--out", str(scratch), "--workers", "1", "--quiet"]) == 0
    return tuple(Path(scratch, name).read_bytes() for name in OUTPUTS)


@pytest.fixture
def live(tmp_path: Path) -> Any:
    logs = tmp_path / "logs"
    logs.mkdir()
    watcher = Live(logs, tmp_path / "out")
    yield watcher
    watcher.close()


def write(live: Live, name: str, data: bytes, mode: str = "wb") -> None:
    with open(os.path.join(live.folder, name), mode) as f:
        f.write(data)
    live.event(name)


def test_an_unterminated_last_line_shows_after_settle_seconds_without_a_rescan(
    live: Live, tmp_path: Path
) -> None:
    """The tail is counted when --settle seconds have passed since the file last changed,
    by the watcher's own schedule: not before, and not only at the next periodic rescan."""
    live.busy()  # the first scan, of an empty folder
    assert live.watcher.rescans == 1
    write(live, "a.log", b"\n".join(line(s) for s in range(3)) + b"\n" + line(3))
    live.busy()
    assert live.totals()["lines"] == 3, "complete lines are counted at once"
    live.wait(SETTLE - 0.25)
    assert live.totals()["lines"] == 3, "the last line has not settled yet"
    live.wait(0.25)
    assert live.totals()["lines"] == 4, "settled: counted at settle time"
    assert live.watcher.rescans == 1 and live.now < START + RESCAN_SECONDS
    assert live.outputs() == run_outputs(Path(live.folder), tmp_path / "run")


def test_appends_while_unsettled_put_the_settle_time_back(live: Live, tmp_path: Path) -> None:
    """A file still growing without a newline is not settled: each change starts the wait
    again; a newline makes the line complete, counted at once."""
    live.busy()
    write(live, "a.log", line(0) + b"\n" + line(1)[:10])
    live.busy()
    assert live.totals()["lines"] == 1
    live.wait(1.5)
    write(live, "a.log", line(1)[10:20], "ab")
    live.wait(SETTLE - 0.25)  # the first settle time has passed, the second not yet
    assert live.totals()["lines"] == 1
    live.wait(0.25)
    assert live.totals()["lines"] == 2
    write(live, "a.log", line(1)[20:] + b"\n" + line(2), "ab")
    live.busy()
    assert live.totals()["lines"] == 2, "the completed line, again provisional tail not yet"
    assert live.users() == {"u1": 2}
    live.wait(SETTLE)
    assert live.totals()["lines"] == 3
    assert live.watcher.rescans == 1
    assert live.outputs() == run_outputs(Path(live.folder), tmp_path / "run")


def test_a_line_completed_after_it_was_taken_provisionally_is_counted_once(
    live: Live, tmp_path: Path
) -> None:
    """A settled tail is counted as it stood; when the rest of the line arrives, the line is
    counted once, as completed (its user is the whole user field, not the settled prefix)."""
    live.busy()
    complete = line(5, user="alice")
    cut = complete.index(b"alice") + 2
    write(live, "a.log", line(4, user="bob") + b"\n" + complete[:cut])
    live.wait(SETTLE)
    assert live.totals()["lines"] == 2
    assert live.users() == {"al": 1, "bob": 1}, "the tail as it stood"
    write(live, "a.log", complete[cut:] + b"\n", "ab")
    live.busy()
    assert live.totals()["lines"] == 2
    assert live.users() == {"alice": 1, "bob": 1}
    assert live.watcher.rescans == 1
    assert live.outputs() == run_outputs(Path(live.folder), tmp_path / "run")


def test_a_missed_event_is_found_by_the_rescan_every_rescan_seconds(
    live: Live, tmp_path: Path
) -> None:
    """Without a notification, a new file shows at the next periodic rescan, not before; the
    rescans come every ``rescan_seconds``."""
    live.busy()
    assert live.watcher.rescans == 1
    Path(live.folder, "quiet.log").write_bytes(line(0) + b"\n")  # no event
    live.wait(RESCAN_SECONDS - 1)
    assert live.totals()["lines"] == 0
    assert live.watcher.rescans == 1
    live.wait(1)
    assert live.totals()["lines"] == 1
    assert live.watcher.rescans == 2
    live.wait(3 * RESCAN_SECONDS)
    assert live.watcher.rescans == 5
    assert live.outputs() == run_outputs(Path(live.folder), tmp_path / "run")


def test_an_unsettled_gz_is_read_after_settle_seconds(live: Live, tmp_path: Path) -> None:
    """A .gz is read whole once it has not changed for --settle seconds, by the schedule."""
    import gzip

    live.busy()
    with gzip.open(os.path.join(live.folder, "a.log.gz"), "wb") as f:
        f.write(line(0) + b"\n" + line(1) + b"\n")
    live.event("a.log.gz")
    live.wait(SETTLE - 0.25)
    assert live.totals()["lines"] == 0
    live.wait(0.25)
    assert live.totals()["lines"] == 2
    assert live.watcher.rescans == 1
    assert live.outputs() == run_outputs(Path(live.folder), tmp_path / "run")


def test_the_anomalies_pass_waits_for_the_backlog_or_its_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a backlog is counted, summary.json follows each batch and anomalies.json is
    written at most every ANOMALIES_EVERY seconds of the watcher's clock, from when the backlog
    began; once the backlog is done it is written at once."""
    every = outputs_module.ANOMALIES_EVERY
    logs = tmp_path / "logs"
    logs.mkdir()
    data = b"".join((b"broken %d" % i if i % 50 == 0 else line(i % 60, user=f"u{i % 7}"))
                    + b"\n" for i in range(3000))
    live = Live(logs, tmp_path / "out", batch_bytes=len(data) // 6)
    try:
        anomalies = Path(live.out, "anomalies.json")
        live.busy()
        empty = anomalies.read_bytes()
        write(live, "a.log", data)
        assert live.watcher.step() and live.watcher.todo, "a batch, more to come"
        assert 0 < live.totals()["lines"] < 3000
        assert anomalies.read_bytes() == empty and live.watcher.outputs.anomalies_stale
        live.now += every - 0.5
        assert live.watcher.step() and live.watcher.todo
        assert anomalies.read_bytes() == empty, "not due yet"
        live.now += 0.5
        assert live.watcher.step() and live.watcher.todo
        written = anomalies.read_bytes()
        assert written != empty and not live.watcher.outputs.anomalies_stale, "due: written"
        assert live.watcher.step() and live.watcher.todo
        assert anomalies.read_bytes() == written, "the next period begins at that write"
        live.busy()  # the clock stands still: the backlog's end writes it without waiting
        assert not live.watcher.todo and not live.watcher.outputs.anomalies_stale
        assert live.outputs() == run_outputs(logs, tmp_path / "run")
    finally:
        live.close()


def test_the_loop_wakes_when_a_last_line_settles(tmp_path: Path) -> None:
    """The idle wait ends when the next settle is due, not at the next whole second or rescan:
    with --settle 2.5, the tail is counted at 2.5 s, to the step."""
    logs = tmp_path / "logs"
    logs.mkdir()
    counted: list[float] = []
    live = Live(logs, tmp_path / "out", settle=2.5, tell=lambda message: counted.append(live.now))
    try:
        live.busy()
        write(live, "a.log", line(0) + b"\n" + line(1))
        live.wait(10)
        assert counted == [START, START + 2.5]
        assert live.totals()["lines"] == 2
    finally:
        live.close()
