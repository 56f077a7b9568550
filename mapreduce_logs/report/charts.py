"""The charts: inline SVG made in Python, every one with a role, a title and a description."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .format import duration, number, text, utc_text
from .timeline import Marker, Points, subject_of


def svg_open(ident: str, width: int, height: int, title: str, desc: str) -> str:
    return (f"<svg id=\"{ident}\" role=\"img\" viewBox=\"0 0 {width} {height}\" "
            f"aria-labelledby=\"{ident}-t {ident}-d\" xmlns=\"http://www.w3.org/2000/svg\">"
            f"<title id=\"{ident}-t\">{title}</title><desc id=\"{ident}-d\">{desc}</desc>")


def hbars(ident: str, title: str, desc: str, bars: Sequence[tuple[str, int, int]]) -> str:
    """Horizontal bars: (escaped label, value, part of it drawn as errors)."""
    label_w, bar_w, row = 230, 560, 20
    width, height = label_w + bar_w + 110, row * len(bars) + 6
    top = max((v for _, v, _ in bars), default=0) or 1
    out = [svg_open(ident, width, height, title, desc)]
    for i, (label, value, errors) in enumerate(bars):
        y = 3 + i * row
        w = bar_w * value / top
        out.append(f"<text x=\"{label_w - 6}\" y=\"{y + 14}\" text-anchor=\"end\">{_cut_svg(label)}</text>"
                   f"<rect class=\"bar\" x=\"{label_w}\" y=\"{y + 2}\" width=\"{w:.1f}\" height=\"{row - 5}\"/>")
        if errors:
            out.append(f"<rect class=\"err\" x=\"{label_w}\" y=\"{y + 2}\" width=\"{bar_w * errors / top:.1f}\" height=\"{row - 5}\"/>")
        out.append(f"<text x=\"{label_w + w + 5:.1f}\" y=\"{y + 14}\">{number(value)}</text>")
    out.append("</svg>")
    return "".join(out)


def _cut_svg(label: str, most: int = 34) -> str:
    """An escaped label cut for a chart (its full text is in the table)."""
    plain = html.unescape(label)
    return label if len(plain) <= most else html.escape(plain[: most - 1] + "\u2026", quote=True)


def hour_chart(hours: Sequence[tuple[str, int]], peaks: Sequence[str], zone: str) -> str:
    width, height, left, bottom = 900, 220, 50, 30
    plot_h = height - bottom - 16
    step = (width - left - 10) / max(1, len(hours))
    top = max((n for _, n in hours), default=0) or 1
    peak_text = ", ".join(text(p) for p in peaks) or "none"
    out = [svg_open("hours-chart", width, height, "Valid lines by hour of day",
                    f"24 bars, hours in {zone}; peak hours: {peak_text}")]
    out.append(f"<line class=\"axis\" x1=\"{left}\" y1=\"{16 + plot_h}\" x2=\"{width - 10}\" y2=\"{16 + plot_h}\"/>"
               f"<text x=\"{left - 6}\" y=\"20\" text-anchor=\"end\">{_short(top)}</text>"
               f"<text x=\"{left - 6}\" y=\"{16 + plot_h}\" text-anchor=\"end\">0</text>")
    for i, (label, n) in enumerate(hours):
        h = plot_h * n / top
        x = left + i * step
        peak = label in peaks
        out.append(f"<rect class=\"bar{' peak' if peak else ''}\" x=\"{x + 2:.1f}\" y=\"{16 + plot_h - h:.1f}\" "
                   f"width=\"{step - 4:.1f}\" height=\"{h:.1f}\"><title>{text(label)}: {number(n)} lines"
                   f"{' (peak)' if peak else ''}</title></rect>")
        if i % 3 == 0:
            out.append(f"<text x=\"{x + step / 2:.1f}\" y=\"{height - 10}\" text-anchor=\"middle\">{text(label[:2])}</text>")
        if peak:
            out.append(f"<text x=\"{x + step / 2:.1f}\" y=\"{max(12.0, 16 + plot_h - h - 3):.1f}\" text-anchor=\"middle\">\u25b2</text>")
    out.append("</svg>")
    return "".join(out)


def _short(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _area(values: Sequence[int], x0: float, step: float, base: float, height: float, top: int) -> str:
    """An SVG path of a step area: one flat segment per bucket."""
    parts = [f"M{x0:.1f} {base:.1f}"]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1  # a flat stretch is one segment
        parts.append(f"V{base - height * values[i] / top:.1f}H{x0 + (j + 1) * step:.1f}")
        i = j + 1
    parts.append(f"V{base:.1f}Z")
    return "".join(parts)


def timeline_chart(
    pts: Points,
    bands: Sequence[Marker],
    items: Sequence[Mapping[str, Any]],
    marker_names: int,
    link: Callable[[int], str],
    ident: str = "timeline-chart",
) -> str:
    width, left, right = 1000, 56, 10
    lines_top, lines_h, errors_h, lane_h = 10, 150, 60, 14
    errors_top = lines_top + lines_h + 12
    lane_top = errors_top + errors_h + 8
    axis_y = lane_top + 2 * lane_h + 6
    height = axis_y + 28
    plot_w = width - left - right
    n = len(pts.lines)
    step = plot_w / n
    top_lines = max(pts.lines) or 1
    top_errors = max(pts.errors) or 1
    first, last = utc_text(pts.start), utc_text(pts.start + n * pts.width)
    desc = (f"{n} buckets of {duration(pts.width)} from {first} to {last}; at most "
            f"{number(top_lines)} lines and {number(top_errors if any(pts.errors) else 0)} errors in a bucket; "
            f"{sum(len(b.indexes) for b in bands)} error_spike and user_burst anomalies marked")
    out = [svg_open(ident, width, height, "Lines and errors over time", desc)]
    base_l, base_e = lines_top + lines_h, errors_top + errors_h
    out.append(f"<line class=\"axis\" x1=\"{left}\" y1=\"{base_l}\" x2=\"{width - right}\" y2=\"{base_l}\"/>"
               f"<line class=\"axis\" x1=\"{left}\" y1=\"{base_e}\" x2=\"{width - right}\" y2=\"{base_e}\"/>"
               f"<text x=\"{left - 6}\" y=\"{lines_top + 9}\" text-anchor=\"end\">{_short(top_lines)}</text>"
               f"<text x=\"{left - 6}\" y=\"{base_l}\" text-anchor=\"end\">lines</text>"
               f"<text x=\"{left - 6}\" y=\"{errors_top + 9}\" text-anchor=\"end\">{_short(top_errors)}</text>"
               f"<text x=\"{left - 6}\" y=\"{base_e}\" text-anchor=\"end\">errors</text>"
               f"<text x=\"{left - 6}\" y=\"{lane_top + 11}\" text-anchor=\"end\">spikes</text>"
               f"<text x=\"{left - 6}\" y=\"{lane_top + lane_h + 11}\" text-anchor=\"end\">bursts</text>")
    out.append(f"<path class=\"lines\" d=\"{_area(pts.lines, left, step, base_l, lines_h, top_lines)}\"/>")
    if any(pts.errors):
        out.append(f"<path class=\"errors\" d=\"{_area(pts.errors, left, step, base_e, errors_h, top_errors)}\"/>")
    for band in bands:
        lane = lane_top + (0 if band.kind == "error_spike" else lane_h)
        x = left + band.first * step
        w = max(3.0, (band.last - band.first + 1) * step)
        names = [text(subject_of(items[i]), 40) for i in band.indexes[:marker_names]]
        more = len(band.indexes) - len(names)
        label = (f"{band.kind} \u00d7{len(band.indexes)} from {utc_text(pts.start + band.first * pts.width)}"
                 + (": " + ", ".join(names) if names else "")
                 + (f" and {more} more" if more > 0 and names else ""))
        out.append(f"<a href=\"{link(band.indexes[0])}\"><rect class=\"{band.kind}\" x=\"{x:.1f}\" y=\"{lane}\" "
                   f"width=\"{w:.1f}\" height=\"{lane_h - 2}\"><title>{label}</title></rect></a>")
    ticks = 5
    for t in range(ticks + 1):
        i = round(t * n / ticks)
        x = left + i * step
        anchor = "start" if t == 0 else "end" if t == ticks else "middle"
        stamp = utc_text(pts.start + i * pts.width)
        shown = stamp[:10] if pts.width >= 86400 else stamp[:16].replace("T", " ")
        out.append(f"<line class=\"axis\" x1=\"{x:.1f}\" y1=\"{axis_y - 4}\" x2=\"{x:.1f}\" y2=\"{axis_y}\"/>"
                   f"<text x=\"{x:.1f}\" y=\"{axis_y + 14}\" text-anchor=\"{anchor}\">{shown}</text>")
    out.append("</svg>")
    return "".join(out)
