"""Reduced Partial -> the summary.json and anomalies.json documents (pure functions)."""

from __future__ import annotations

import functools
import heapq
import os
from collections.abc import Callable
from typing import Any

from ..detect.digest import detect_bursts, detect_spikes, top_k
from ..detect.rules import ANOMALY_TYPES, severity_for_count
from ..ingest.parse import REASONS, format_utc
from ..ingest.split import STREAM
from ..model.digest import Found
from ..model.partial import MAX_EXAMPLES, Example, Partial, Segment, Source
from ..settings import Settings
from .output import shown

HOURS = [f"{h:02d}:00-{(h + 1) % 24:02d}:00" for h in range(24)]


def _text(key: bytes) -> str:
    return key.decode("utf-8", "replace")


def build_summary(p: Partial, settings: Settings) -> dict[str, Any]:
    """The summary.json document, keys in the documented order (docs/outputs.md)."""
    if p.digest is not None:
        p.digest.check(settings)
        services = p.digest.top_services[: settings.top]
        users = p.digest.top_users[: settings.top]
        distinct_services, distinct_users = p.digest.distinct_services, p.digest.distinct_users
    else:
        services = top_k(p.services.items(), settings.top)
        users = top_k(p.users.items(), settings.top)
        distinct_services, distinct_users = len(p.services), len(p.users)
    peak = heapq.nsmallest(
        settings.peak_hours, ((h, c) for h, c in enumerate(p.hours) if c), key=lambda hc: (-hc[1], hc[0])
    )
    levels = sorted(p.levels.items(), key=lambda kv: (-kv[1], kv[0]))
    malformed_total = sum(p.malformed.values())
    return {
        "log_levels": {_text(k): v for k, v in levels},
        "top_services": [_text(k) for k, _ in services],
        "top_users": [_text(k) for k, _ in users],
        "peak_hours": [HOURS[h] for h, _ in peak],
        "service_counts": {_text(k): v for k, v in services},
        "user_counts": {_text(k): v for k, v in users},
        "hourly_counts": dict(zip(HOURS, p.hours, strict=True)),
        "time_zone": settings.tz,
        "distinct_services": distinct_services,
        "distinct_users": distinct_users,
        "time_range": None
        if p.min_ts is None or p.max_ts is None
        else {"first": format_utc(p.min_ts), "last": format_utc(p.max_ts)},
        "totals": {
            "files": p.files,
            "bytes": p.bytes_read,
            "lines": p.lines,
            "valid": p.valid,
            "blank": p.blank,
            "malformed": malformed_total,
            "outside": p.outside,
        },
        "malformed": {reason: p.malformed.get(reason, 0) for reason in REASONS},
    }


def _placed(p: Partial) -> dict[Source, list[tuple[int, Segment]]]:
    """Every source's segments in input order, each with the number of lines before it in its
    file."""
    placed: dict[Source, list[tuple[int, Segment]]] = {}
    # Files in sorted path order, then standard input, which is read after them.
    for source in sorted(p.segments, key=lambda source: (source[0] == STREAM, source)):
        before = 0
        mine = placed[source] = []
        for segment in p.segments[source]:
            mine.append((before, segment))
            before += segment.newlines
    return placed


def _examples(
    placed: dict[Source, list[tuple[int, Segment]]], pick: Callable[[Segment], list[Example]]
) -> list[dict[str, Any]]:
    """The first MAX_EXAMPLES examples in input order, with their file and 1-based line."""
    out: list[dict[str, Any]] = []
    for (path, _), segments in placed.items():
        for before, segment in segments:
            for line, text in pick(segment):
                if len(out) == MAX_EXAMPLES:
                    return out
                out.append({"file": shown(path), "line": before + line + 1, "text": text})
    return out


def _malformed_examples(reason: str, segment: Segment) -> list[Example]:
    return segment.malformed_examples.get(reason, [])


def _unknown_examples(token: bytes, segment: Segment) -> list[Example]:
    return segment.unknown_examples.get(token, [])


_PER_FILE: list[tuple[str, Callable[[Segment], int], Callable[[Segment], list[Example]]]] = [
    ("time_went_backwards", lambda seg: seg.backwards, lambda seg: seg.backwards_examples),
    ("future_timestamp", lambda seg: seg.future, lambda seg: seg.future_examples),
]
"""The anomalies counted per file: kind, a segment's count of it, its examples."""


def build_anomalies(p: Partial, settings: Settings) -> dict[str, Any]:
    """The anomalies.json document: anomalies sorted by type, time and subject, then counts."""
    placed = _placed(p)
    found: list[tuple[int, int, bytes, dict[str, Any]]] = []

    def add(kind: str, item: Found) -> None:
        found.append((ANOMALY_TYPES.index(kind), item.time, item.subject, {"type": kind, **item.body}))

    for reason, count in p.malformed.items():
        add("malformed_lines", Found(0, reason.encode(), {
            "severity": severity_for_count(count, p.lines),
            "reason": reason,
            "count": count,
            "examples": _examples(placed, functools.partial(_malformed_examples, reason)),
        }))
    for token, count in p.unknown_levels.items():
        add("unknown_level", Found(0, token, {
            "severity": severity_for_count(count, p.lines),
            "level": _text(token),
            "count": count,
            "examples": _examples(placed, functools.partial(_unknown_examples, token)),
        }))
    for source, segments in placed.items():
        only = {source: segments}
        for kind, count_of, examples_of in _PER_FILE:
            count = sum(count_of(seg) for _, seg in segments)
            if count:
                add(kind, Found(0, os.fsencode(source[0]), {
                    "severity": severity_for_count(count, p.lines),
                    "file": shown(source[0]),
                    "count": count,
                    "examples": _examples(only, examples_of),
                }))
    if p.digest is not None:
        p.digest.check(settings)
        spikes, bursts = p.digest.spikes, p.digest.bursts
    else:
        spikes, bursts = detect_spikes(p, settings), detect_bursts(p, settings)
    for item in spikes:
        add("error_spike", item)
    for item in bursts:
        add("user_burst", item)
    found.sort(key=lambda f: f[:3])
    anomalies = [f[3] for f in found]
    counts = dict.fromkeys(ANOMALY_TYPES, 0)
    for anomaly in anomalies:
        counts[anomaly["type"]] += 1
    return {"anomalies": anomalies, "counts": counts}
