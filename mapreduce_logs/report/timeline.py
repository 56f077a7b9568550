"""The timeline as drawn: buckets summed into at most MAX_POINTS points, the stretch where
most lines are, and the bands that mark error_spike and user_burst anomalies on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model.partial import Timeline, bucket_width
from .format import epoch_seconds

MAX_POINTS = 2000
"""Most points a timeline is drawn from."""
WINDOW_TYPES = ("error_spike", "user_burst")
"""The anomalies drawn on the timeline."""

@dataclass(frozen=True)
class Points:
    """The timeline as drawn: ``len(lines)`` consecutive buckets from ``start``."""

    start: int
    """Seconds since the epoch of the first bucket."""
    width: int
    """Seconds per bucket."""
    lines: list[int]
    errors: list[int]


def points(timeline: Timeline, most: int = MAX_POINTS) -> Points | None:
    """At most ``most`` consecutive buckets covering every line: the timeline's own, or
    wider ones (each the sum of whole buckets) when the time range needs more."""
    if not timeline.lines:
        return None
    most = max(2, most)  # buckets are aligned to the epoch: two may be needed, one each side
    level = timeline.level
    low, high = min(timeline.lines), max(timeline.lines)
    while True:
        factor = bucket_width(timeline.window, level) // timeline.width
        first, last = low // factor, high // factor
        if last - first < most:
            break
        level += 1
    wide = timeline.raised(level)
    lines = [0] * (last - first + 1)
    errors = [0] * (last - first + 1)
    for key, n in wide.lines.items():
        lines[key - first] = n
    for key, n in wide.errors.items():
        errors[key - first] = n
    width = wide.width
    return Points(first * width, width, lines, errors)


DETAIL_SHARE = 0.99
"""The detail timeline shows the shortest stretch holding this share of the lines."""


def dense_part(timeline: Timeline, keep: float = DETAIL_SHARE) -> Timeline | None:
    """The timeline cut to the shortest stretch of its buckets holding ``keep`` of its lines
    (the first such stretch): a few stray stamps years away make the whole range too coarse
    to see the rest. None when there is nothing to cut."""
    if len(timeline.lines) < 2:
        return None
    keys = sorted(timeline.lines)
    need = keep * sum(timeline.lines.values())
    best: tuple[int, int] | None = None
    total, low = 0, 0
    for key in keys:
        total += timeline.lines[key]
        while total - timeline.lines[keys[low]] >= need:
            total -= timeline.lines[keys[low]]
            low += 1
        if total >= need and (best is None or key - keys[low] < best[1] - best[0]):
            best = (keys[low], key)
    if best is None or best == (keys[0], keys[-1]):
        return None
    first, last = best
    return Timeline(timeline.window, timeline.level,
                    {k: n for k, n in timeline.lines.items() if first <= k <= last},
                    {k: n for k, n in timeline.errors.items() if first <= k <= last})


@dataclass
class Marker:
    """Anomalies of one type starting in one bucket, drawn as one band."""

    kind: str
    first: int
    last: int
    indexes: list[int] = field(default_factory=list)


def markers(
    anomalies: Sequence[Mapping[str, Any]],
    pts: Points,
    kinds: Mapping[str, list[int]] | None = None,
    clip: bool = False,
) -> list[Marker]:
    """One band per type and bucket where error_spikes or user_bursts begin, spanning to the
    last bucket any of them reaches; every such anomaly is in exactly one band (with ``clip``,
    those that begin outside the points are left out). ``kinds``: the indexes of each type's
    anomalies, if known."""
    if kinds is None:
        kinds = {}
        for index, item in enumerate(anomalies):
            kinds.setdefault(str(item.get("type")), []).append(index)
    out: list[Marker] = []
    n = len(pts.lines)
    for kind in WINDOW_TYPES:
        bands: dict[int, Marker] = {}
        for index in kinds.get(kind, []):
            item = anomalies[index]
            start = epoch_seconds(str(item.get("window_start", "")))
            if start is None:
                continue
            end = epoch_seconds(str(item.get("window_end", ""))) or 0
            if clip and not pts.start <= start < pts.start + n * pts.width:
                continue
            first = min(max((start - pts.start) // pts.width, 0), n - 1)
            last = min(max((max(end, start + 1) - 1 - pts.start) // pts.width, first), n - 1)
            band = bands.get(first)
            if band is None:
                band = bands[first] = Marker(kind, first, last)
            elif last > band.last:
                band.last = last
            band.indexes.append(index)
        out += sorted(bands.values(), key=lambda m: m.first)
    return out


def subject_of(item: Mapping[str, Any]) -> str:
    for key in ("service", "user", "reason", "level", "file"):
        if key in item:
            return str(item[key])
    return ""
