"""The ``show`` command: the outputs of a run at a glance in a terminal, from the JSON files.

Aligned columns (wide characters counted as two), bars drawn with block characters, colour
only when writing to a terminal (and NO_COLOR unset). Names from the logs are made harmless
first: a control character (an escape sequence in a user name) is shown as a symbol, never
sent to the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .common import EXIT_OK

SEVERITIES = ("critical", "warning", "info")
BAR = 24
"""Cells of the longest bar."""
_CONTROLS = {c: 0x2400 + c for c in range(0x20)}
_CONTROLS[0x7F] = 0x2421
_CONTROLS.update({c: 0xFFFD for c in range(0x80, 0xA0)})


class NoOutputsError(Exception):
    """The folder holds no outputs of a run (or ones that cannot be read)."""


@dataclass(frozen=True)
class Outputs:
    summary: Mapping[str, Any]
    anomalies: Mapping[str, Any] | None
    metrics: Mapping[str, Any] | None


def load(out: str) -> Outputs:
    """The JSON outputs in ``out``: summary.json is needed, the others are shown if there."""
    if not os.path.isdir(out):
        raise NoOutputsError(f"no such folder: {out}")
    docs: dict[str, Any] = {}
    for name in ("summary", "anomalies", "metrics"):
        path = os.path.join(out, f"{name}.json")
        try:
            with open(path, "rb") as f:
                docs[name] = json.loads(f.read())
        except FileNotFoundError:
            docs[name] = None
        except (OSError, ValueError) as err:
            raise NoOutputsError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None
        if docs[name] is not None and not isinstance(docs[name], dict):
            raise NoOutputsError(f"{path} is not an output of mapreduce-logs")
    if docs["summary"] is None:
        raise NoOutputsError(f"no summary.json in {out}: run `mapreduce-logs run PATH --out {out}` first")
    return Outputs(docs["summary"], docs["anomalies"], docs["metrics"])


def clean(value: object) -> str:
    """``value`` as text safe to print: control characters shown as symbols."""
    return str(value).translate(_CONTROLS)


def cells(s: str) -> int:
    """Terminal cells ``s`` takes: wide and full-width characters two, combining marks none."""
    if s.isascii():
        return len(s)
    width = 0
    for c in s:
        if unicodedata.combining(c):
            continue
        width += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return width


def fit(s: str, width: int) -> str:
    """``s`` cut (with an ellipsis) or padded to exactly ``width`` cells."""
    if cells(s) > width:
        out, used = [], 0
        for c in s:
            w = cells(c)
            if used + w > width - 1:
                break
            out.append(c)
            used += w
        s = "".join(out) + "\u2026"
    return s + " " * (width - cells(s))


def bar(n: int, most: int, width: int = BAR) -> str:
    if most <= 0 or n <= 0:
        return ""
    eighths = max(1, round(8 * width * n / most))
    return "\u2588" * (eighths // 8) + ("", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589")[eighths % 8]


def pct(part: int, whole: int) -> str:
    return "" if whole <= 0 else f"{100 * part / whole:5.1f}%"


def size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    return f"{n / 1e3:.1f} kB" if n < 1_000_000 else f"{n / 1e6:,.1f} MB"


class Style:
    """ANSI styles, or none."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, *codes: str) -> str:
        if not self.colour or not codes:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"

    def head(self, text: str) -> str:
        return self(text, "1")

    def severity(self, text: str, severity: str) -> str:
        return self(text, {"critical": "1;31", "warning": "33", "info": "2"}.get(severity, ""))


def render(outputs: Outputs, colour: bool = False, rows: int = 10, width: int = 80) -> str:
    """The outputs as lines of text for a terminal ``width`` cells wide."""
    s = Style(colour)
    summary = outputs.summary
    totals = summary.get("totals", {})
    lines: list[str] = []
    add = lines.append
    span = summary.get("time_range")
    zone = clean(summary.get("time_zone", "UTC"))
    files = totals.get("files", 0)
    add(f"{s.head('Read')}   {files:,} file{'' if files == 1 else 's'}, {size(totals.get('bytes', 0))}, "
        f"{totals.get('lines', 0):,} lines: " + ", ".join(
            f"{totals.get(k, 0):,} {k}" for k in ("valid", "blank", "malformed", "outside") if k in totals))
    add(f"{s.head('Time')}   " + (f"{clean(span['first'])} .. {clean(span['last'])}" if span else "no valid line")
        + f"  (hours in {zone})")
    malformed = {k: v for k, v in summary.get("malformed", {}).items() if v}
    if malformed:
        add(f"{s.head('Bad')}    " + ", ".join(f"{clean(k)} {v:,}" for k, v in malformed.items()))
    valid = totals.get("valid", 0)
    name_w = max(12, min(32, width - 2 - 10 - 7 - BAR - 3))

    def table(title: str, items: Sequence[tuple[str, int]], note: str = "") -> None:
        add("")
        add(s.head(title) + (f"  {note}" if note else ""))
        most = max((n for _, n in items), default=0)
        for key, n in items[:rows]:
            add(f"  {fit(clean(key), name_w)} {n:>10,} {pct(n, valid):>6}  {s(bar(n, most), '36')}")
        if len(items) > rows:
            add(f"  \u2026 {len(items) - rows:,} more")
        if not items:
            add("  none")

    table("Levels", list(summary.get("log_levels", {}).items()))
    table("Top services", list(summary.get("service_counts", {}).items()),
          f"of {summary.get('distinct_services', 0):,}")
    table("Top users", list(summary.get("user_counts", {}).items()),
          f"of {summary.get('distinct_users', 0):,}")
    hours = summary.get("hourly_counts", {})
    peaks = [clean(p) for p in summary.get("peak_hours", [])]
    add("")
    add(s.head("Hours") + f"  ({zone}) " + spark(list(hours.values())))
    most = max(hours.values(), default=0)
    for label in peaks:
        n = hours.get(label, 0)
        add(f"  peak {fit(label, 11)} {n:>10,} {pct(n, valid):>6}  {s(bar(n, most), '33')}")
    if not peaks:
        add("  no peak hour (no valid line)")
    add("")
    add_anomalies(lines, outputs.anomalies, s, rows, width)
    metrics = outputs.metrics
    if metrics:
        add("")
        add(s.head("Run") + "    " + ", ".join(
            f"{label} {metrics[key]:,}{unit}" for key, label, unit in (
                ("wall_seconds", "wall", " s"), ("peak_memory_mb", "peak memory", " MB"),
                ("throughput_mb_s", "throughput", " MB/s"), ("workers", "workers", ""))
            if isinstance(metrics.get(key), int | float)))
    return "\n".join(lines) + "\n"


def spark(values: Sequence[int]) -> str:
    """One character per value, its height the value's share of the largest."""
    most = max(values, default=0)
    if most <= 0:
        return ""
    ticks = " \u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
    return "".join(ticks[0 if v <= 0 else max(1, round(8 * v / most))] for v in values)


def subject(item: Mapping[str, Any]) -> str:
    for key in ("service", "user", "reason", "level", "file"):
        if key in item:
            return clean(item[key])
    return ""


def figures(item: Mapping[str, Any]) -> str:
    parts = [f"{k} {item[k]:,}" for k in ("count", "errors", "lines") if isinstance(item.get(k), int)]
    if isinstance(item.get("baseline"), int | float):
        parts.append(f"(baseline {item['baseline']:g})")
    return " ".join(parts)


def add_anomalies(
    lines: list[str], doc: Mapping[str, Any] | None, s: Style, rows: int, width: int
) -> None:
    if doc is None:
        lines.append(s.head("Anomalies") + "  (no anomalies.json)")
        return
    items: list[Mapping[str, Any]] = list(doc.get("anomalies", []))
    by: dict[str, list[Mapping[str, Any]]] = {k: [] for k in SEVERITIES}
    for item in items:
        by.setdefault(str(item.get("severity")), []).append(item)
    counts = ", ".join(f"{clean(k)} {n:,}" for k, n in doc.get("counts", {}).items() if n)
    lines.append(s.head("Anomalies") + f"  {len(items):,}" + (f": {counts}" if counts else ""))
    if not items:
        lines.append("  none")
    type_w = max((len(clean(i.get("type", ""))) for i in items), default=0)
    subject_w = max(10, min(28, width - type_w - 46))
    for severity, found in by.items():
        if not found:
            continue
        lines.append("  " + s.severity(f"{clean(severity)} ({len(found):,})", severity))
        for item in found[:rows]:
            when = ""
            if "window_start" in item:
                when = f"{clean(item['window_start'])[:16]}Z"
            lines.append(f"    {fit(clean(item.get('type', '')), type_w)}  {fit(subject(item), subject_w)}"
                         f"  {fit(when, 17)}  {figures(item)}".rstrip())
        if len(found) > rows:
            lines.append(f"    \u2026 {len(found) - rows:,} more in anomalies.json")


def colour_wanted(choice: str, stream: Any) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def terminal_width(default: int = 80) -> int:
    import shutil

    return max(60, min(160, shutil.get_terminal_size((default, 24)).columns))


def show_main(args: argparse.Namespace) -> int:
    try:
        outputs = load(args.out)
    except NoOutputsError as err:
        raise UsageError(str(err)) from None
    width = terminal_width() if sys.stdout.isatty() else 80
    sys.stdout.write(render(outputs, colour=colour_wanted(args.color, sys.stdout), rows=args.rows,
                            width=width))
    return EXIT_OK
