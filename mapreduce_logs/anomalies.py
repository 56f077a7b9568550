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

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from itertools import compress
from operator import itemgetter
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
    return spikes(p.service_errors, p.service_others, settings)


def spikes(
    errors: Mapping[tuple[bytes, int], int],
    others: Mapping[tuple[bytes, int], int],
    settings: Settings,
) -> list[Found]:
    """error_spike anomalies of the services in these (service, window) counts.

    Each service is judged on its own windows only, so the services can be split into groups
    (as the spilling reducer does) as long as every window of a service is in its group.
    """
    windows: dict[bytes, dict[int, list[int]]] = defaultdict(dict)
    for (service, window), count in errors.items():
        windows[service][window] = [count, 0]
    for (service, window), count in others.items():
        windows[service].setdefault(window, [0, 0])[1] = count
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
        for w, (count, _) in counts.items():
            threshold = max(settings.spike_min_errors, settings.spike_factor * expected[w])
            if count >= threshold:
                flagged.append(Flagged(w, count, expected[w], threshold))
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
    return user_share(p.user_lines, p.window_lines)


def user_share(
    user_lines: Mapping[tuple[bytes, int], int],
    window_lines: Mapping[int, int],
    seen_in: Mapping[bytes, int] | None = None,
) -> float:
    """The largest median share among the users of ``user_lines`` (0 when there is none).

    Every window of a user must be in ``user_lines``; the run's share is the largest over any
    split of the users into groups. A user seen in fewer than half the windows has median 0.
    ``seen_in`` (windows per user) may be given when the caller has counted it already.
    """
    total = len(window_lines)
    if seen_in is None:
        seen_in = Counter(map(itemgetter(0), user_lines))
    candidates = {user for user, n in seen_in.items() if 2 * n >= total}
    if not candidates:
        return 0.0
    shares: dict[bytes, list[float]] = defaultdict(list)
    theirs = map(candidates.__contains__, map(itemgetter(0), user_lines))
    for (user, window), lines in compress(user_lines.items(), theirs):
        shares[user].append(lines / window_lines[window])
    return max(0.0, *(median_with_zeros(s, total) for s in shares.values()))


def _burst_scale(share: float) -> float:
    capped = min(share, MAX_SHARE)
    return capped / (1 - capped)


def _burst_limits(scale: float, lines: int, window_total: int, settings: Settings) -> tuple[float, float]:
    """(expected lines, threshold) of a user's window; both grow with ``scale``."""
    expected = scale * (window_total - lines)
    return expected, max(settings.burst_min_lines, settings.burst_factor * expected)


BurstCandidate = tuple[bytes, int, int]
"""(user, window index, lines) that may be a burst."""


def burst_candidates(
    user_lines: Mapping[tuple[bytes, int], int],
    window_lines: Mapping[int, int],
    share_floor: float,
    settings: Settings,
) -> list[BurstCandidate]:
    """The windows that can be flagged once the run's share is known to be at least ``share_floor``.

    The threshold only grows with the share, so filtering a group of users with the group's own
    share (never above the run's) keeps every window that the run's share flags, and few others.
    """
    scale = _burst_scale(share_floor)
    enough = map(settings.burst_min_lines.__le__, user_lines.values())
    out: list[BurstCandidate] = []
    for (user, window), lines in compress(user_lines.items(), enough):
        if lines >= _burst_limits(scale, lines, window_lines[window], settings)[1]:
            out.append((user, window, lines))
    return out


def bursts(
    candidates: Iterable[BurstCandidate],
    share: float,
    window_lines: Mapping[int, int],
    settings: Settings,
) -> list[Found]:
    """user_burst anomalies among ``candidates`` under the run's busiest ``share``.

    Every window of a user that can be flagged must be among the candidates.
    """
    scale = _burst_scale(share)
    flagged: dict[bytes, list[Flagged]] = defaultdict(list)
    for user, window, lines in candidates:
        expected, threshold = _burst_limits(scale, lines, window_lines[window], settings)
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


def detect_bursts(p: Partial, settings: Settings) -> list[Found]:
    """user_burst anomalies, one per run of adjacent flagged windows of a user."""
    share = busiest_share(p)
    candidates = burst_candidates(p.user_lines, p.window_lines, share, settings)
    return bursts(candidates, share, p.window_lines, settings)
