"""The time-based detectors (error spikes, user bursts) over a reduced Partial, and severities.

Both rules compare a window against a robust expectation scaled by that window's traffic, so a
busy hour is not a spike and a burst cannot raise its own baseline:

- error_spike: a service's expected errors in a window are r * n, where n is its lines of other
  levels in that window and r the median, over the windows it logged in, of errors / other lines.
  A window is flagged when errors >= max(spike_min_errors, spike_factor * expected).
- user_burst: S is the busiest ordinary user's share of traffic: the largest, over users, of the
  median over all windows with traffic of (user's lines / all lines), capped at 0.99. A user's
  expected lines in a window are what a user holding share S would write beside everyone else's
  lines there: S / (1 - S) * (lines of everyone else). The window is flagged when
  lines >= max(burst_min_lines, burst_factor * expected).

Adjacent flagged windows of one subject form one anomaly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from .parse import NS, format_utc
from .partial import Partial
from .settings import Settings

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


class Found(NamedTuple):
    """A detected anomaly with what it sorts by: window start (seconds) and subject."""

    time: int
    subject: bytes
    body: dict[str, Any]


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


def median_with_zeros(values: list[float], total: int) -> float:
    """The median of ``values`` together with ``total - len(values)`` zeros."""
    if total <= 0:
        return 0.0
    ordered = [0.0] * (total - len(values)) + sorted(values)
    mid = total // 2
    return ordered[mid] if total % 2 else (ordered[mid - 1] + ordered[mid]) / 2


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


def detect_spikes(p: Partial, settings: Settings) -> list[Found]:
    """error_spike anomalies, one per run of adjacent flagged windows of a service."""
    windows: dict[bytes, dict[int, list[int]]] = defaultdict(dict)
    for (service, window), errors in p.service_errors.items():
        windows[service][window] = [errors, 0]
    for (service, window), others in p.service_others.items():
        windows[service].setdefault(window, [0, 0])[1] = others
    found: list[Found] = []
    for service, counts in windows.items():
        if max(e for e, _ in counts.values()) < settings.spike_min_errors:
            continue
        ratios = [e / n for e, n in counts.values() if n]
        if ratios:
            rate = median_with_zeros(ratios, len(ratios))
            expected = {w: rate * n for w, (_, n) in counts.items()}
        else:
            usual = median_with_zeros([float(e) for e, _ in counts.values()], len(counts))
            expected = dict.fromkeys(counts, usual)
        flagged = []
        for w, (errors, _) in counts.items():
            threshold = max(settings.spike_min_errors, settings.spike_factor * expected[w])
            if errors >= threshold:
                flagged.append(Flagged(w, errors, expected[w], threshold))
        for run in _runs(flagged):
            found.append(
                Found(
                    run[0].window * settings.window,
                    service,
                    {
                        "severity": severity_for_excess(max(f.observed / f.threshold for f in run)),
                        "service": service.decode("utf-8", "replace"),
                        **_window_fields(run, settings),
                        "errors": sum(f.observed for f in run),
                        "baseline": _round(sum(f.expected for f in run) / len(run)),
                    },
                )
            )
    return found


def busiest_share(p: Partial) -> float:
    """The busiest ordinary user's median share of a window's lines (see the module doc)."""
    total = len(p.window_lines)
    active: dict[bytes, list[float]] = defaultdict(list)
    for (user, window), lines in p.user_lines.items():
        active[user].append(lines / p.window_lines[window])
    best = 0.0
    for shares in active.values():
        if 2 * len(shares) >= total:
            best = max(best, median_with_zeros(shares, total))
    return best


def detect_bursts(p: Partial, settings: Settings) -> list[Found]:
    """user_burst anomalies, one per run of adjacent flagged windows of a user."""
    share = min(busiest_share(p), MAX_SHARE)
    scale = share / (1 - share)
    flagged: dict[bytes, list[Flagged]] = defaultdict(list)
    for (user, window), lines in p.user_lines.items():
        if lines < settings.burst_min_lines:
            continue
        expected = scale * (p.window_lines[window] - lines)
        threshold = max(settings.burst_min_lines, settings.burst_factor * expected)
        if lines >= threshold:
            flagged[user].append(Flagged(window, lines, expected, threshold))
    found: list[Found] = []
    for user, items in flagged.items():
        for run in _runs(items):
            found.append(
                Found(
                    run[0].window * settings.window,
                    user,
                    {
                        "severity": severity_for_excess(max(f.observed / f.threshold for f in run)),
                        "user": user.decode("utf-8", "replace"),
                        **_window_fields(run, settings),
                        "lines": sum(f.observed for f in run),
                        "baseline": _round(sum(f.expected for f in run) / len(run)),
                    },
                )
            )
    return found
