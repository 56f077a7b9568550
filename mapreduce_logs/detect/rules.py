"""The time-based detectors (error spikes, user bursts) over a reduced Partial, and severities.

Both rules compare a window with a robust expectation, so a busy hour is not a spike, skew alone
never fires, and a burst cannot raise its own baseline. "Trimmed" means: leave out the tenth of
the windows (rounded up, never all) where the subject counted most, which is where any burst sits.

- error_spike: for a service, over the windows it logged in: m = the median of its errors, and a
  window's threshold under a ratio x is max(spike_min_errors, spike_factor * max(x * its other
  lines there, m)). First a robust pass: r0 = the traffic-weighted median of its per-window error
  ratio (errors / lines of other levels: the smallest ratio such that the windows at or below it
  hold at least half of its other lines; 0 when it has none), and the windows that reach their
  threshold under r0 are *suspect*. Then r = its errors / its other lines, summed over the windows
  that are not suspect, less the tenth (of all its windows, rounded up, never all that are left)
  with most errors. Expected errors in a window: max(r * its other lines there, m); a window is
  flagged when errors reach its threshold under r. A burst in windows holding less than half of
  the service's other lines cannot lift r0 to its own ratio, so (at spike_factor times r0 or
  more) its windows are suspect and left out of r, however many windows it lasts; when nothing
  is suspect, r is the plain trimmed ratio.
- user_burst: over all windows with traffic (0 lines of a user where it has none). A window's
  threshold under a share x and a usual rate y is max(1, burst_factor * max(x * lines of
  everyone else there, y)) (x capped at 0.99). For each user, two passes:
  - plain: its lines / all lines, both summed over the windows left after trimming its tenth of
    busiest windows, and its usual rate: those lines / the number of windows kept;
  - robust: x0 = its traffic-weighted median share (the smallest share of a window such that
    the windows where its share is at most that hold at least half of everyone else's lines)
    and m = the median over the windows of its local mean (its lines in the window and the 2
    on each side, / 5). Windows reaching their threshold under (x0, m), in a run of adjacent
    such windows with at least burst_min_lines lines in all, are *suspect*; share and usual
    rate as in the plain pass, but over the windows that are not suspect, less the tenth (of
    all the windows, rounded up, never all that are left) with most lines.
  The user's share and usual rate u are the smaller of the two. S, the busiest ordinary user's
  share, is the largest share. Expected lines of a user in a window: max(S * lines of everyone
  else there, u); the window is flagged when its lines reach its threshold under (S, u), and a
  run of adjacent flagged windows of the user is reported when its lines add up to at least
  burst_min_lines: the floor is on the run, so a long burst on quiet traffic counts as much as
  a short one on busy traffic. A burst in windows holding less than half of everyone else's
  lines cannot lift x0, nor (less its 2 windows on each side) m, so its windows are suspect and
  left out of the spammer's share and usual rate however many windows it lasts; a job that
  comes back every few windows keeps a local mean all along and is not suspect. Neither figure
  is ever above the plain one, so every threshold is at most what the plain pass alone gives.

Adjacent flagged windows of one subject form one anomaly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from ..ingest.parse import NS, format_utc
from ..model.digest import Found, Key
from ..settings import Settings

ANOMALY_TYPES = (
    "malformed_lines",
    "unknown_level",
    "time_went_backwards",
    "future_timestamp",
    "error_spike",
    "user_burst",
)


MAX_SHARE = 0.99
"""Cap of the busiest share, so that one user holding all traffic keeps a finite expectation."""


def severity_for_count(count: int, lines: int) -> str:
    """Line-level anomalies: info under 0.1% of lines, warning under 1%, critical above."""
    share = count / lines if lines else 1.0
    if share < 0.001:
        return "info"
    return "warning" if share < 0.01 else "critical"


def severity_for_excess(excess: float) -> str:
    """Window anomalies by the peak of observed / threshold (>= 1 when flagged)."""
    if excess < 1.5:
        return "info"
    return "warning" if excess < 5 else "critical"


class Flagged(NamedTuple):
    window: int
    observed: int
    expected: float
    threshold: float


def _runs(flagged: Iterable[Flagged]) -> Iterator[list[Flagged]]:
    """Consecutive windows grouped together."""
    run: list[Flagged] = []
    for item in sorted(flagged):
        if run and item.window != run[-1].window + 1:
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def _window_fields(run: list[Flagged], settings: Settings) -> dict[str, Any]:
    width = settings.window * NS
    return {
        "window_start": format_utc(run[0].window * width),
        "window_end": format_utc((run[-1].window + 1) * width),
    }


def _round(x: float) -> float:
    return round(x, 2)


def _window_anomalies(
    flagged: Iterable[Flagged],
    subject_key: str,
    subject: bytes,
    count_key: str,
    settings: Settings,
    least: int = 0,
) -> list[Found]:
    """One anomaly per run of adjacent flagged windows of one subject whose observed counts add
    up to at least ``least``.

    Severity goes by the peak of observed / threshold over the run's windows; with a floor on
    the run, by the smaller of that and the run's total / ``least``, so a run that only just
    passes the floor is ``info`` (for a single window this is observed / max(least, threshold)).
    """
    found = []
    for run in _runs(flagged):
        total = sum(f.observed for f in run)
        if total < least:
            continue
        excess = max(f.observed / f.threshold for f in run)
        if least:
            excess = min(excess, total / least)
        found.append(
            Found(
                run[0].window * settings.window,
                subject,
                {
                    "severity": severity_for_excess(excess),
                    subject_key: subject.decode("utf-8", "replace"),
                    **_window_fields(run, settings),
                    count_key: total,
                    "baseline": _round(sum(f.expected for f in run) / len(run)),
                },
            )
        )
    return found


SPIKE_RULE_VERSION = 2
"""Changes whenever ``spikes`` judges the same counts differently: results saved by a watch
checkpoint under another version are judged again."""


def trim_count(windows: int) -> int:
    """How many of ``windows`` the trim leaves out: a tenth, rounded up, but never all."""
    return min((windows + 9) // 10, max(windows - 1, 0))


class UserRate(NamedTuple):
    share: float
    """Share of all lines (the smaller of the plain trimmed one and the robust one)."""
    usual: float
    """Lines per window with traffic (likewise)."""


NEIGHBOURS = 2
"""Windows on each side of a window that a user's local mean there takes in."""


def _burst_limits(
    share: float, usual: float, lines: int, window_total: int, settings: Settings
) -> tuple[float, float]:
    """(expected lines, threshold) of a user's window; both grow with ``share``."""
    expected = max(min(share, MAX_SHARE) * (window_total - lines), usual)
    return expected, max(1.0, settings.burst_factor * expected)


def burst_cut(lines_there: int, fs: float) -> int:
    """The fewest lines of one user that can be flagged in a window of ``lines_there`` lines,
    whatever the user's usual rate, with ``fs`` = --burst-factor x the busiest share:
    lines >= fs * (lines_there - lines), that is lines >= fs * lines_there / (1 + fs), lowered a
    hair so that float rounding cannot drop a window the exact test keeps."""
    return max(1, math.ceil(fs * lines_there / (1 + fs) * (1 - 1e-9)))


BurstCandidate = tuple[bytes, int, int, float]
"""(user, window index, lines, the user's usual rate) that may be a burst."""


Entry = tuple[Key, int]
"""((user, window index), lines)."""


def long_runs(entries: Iterable[Entry], least: int) -> Iterator[list[Entry]]:
    """Runs of adjacent windows of one user among ``entries`` (sorted by user, then window)
    whose lines add up to at least ``least``."""
    run: list[Entry] = []
    total = 0
    for entry in entries:
        (user, window), lines = entry
        if run and (window != run[-1][0][1] + 1 or user != run[-1][0][0]):
            if total >= least:
                yield run
            run, total = [], 0
        run.append(entry)
        total += lines
    if run and total >= least:
        yield run


def bursts(
    candidates: Iterable[BurstCandidate],
    share: float,
    window_lines: Mapping[int, int],
    settings: Settings,
) -> list[Found]:
    """user_burst anomalies among ``candidates`` under the run's busiest ``share``.

    Every window of a user that can be flagged in a reported run must be among the candidates.
    """
    flagged: dict[bytes, list[Flagged]] = defaultdict(list)
    for user, window, lines, usual in candidates:
        expected, threshold = _burst_limits(share, usual, lines, window_lines[window], settings)
        if lines >= threshold:
            flagged[user].append(Flagged(window, lines, expected, threshold))
    found: list[Found] = []
    for user, items in flagged.items():
        found += _window_anomalies(
            items, "user", user, "lines", settings, least=settings.burst_min_lines
        )
    return found
