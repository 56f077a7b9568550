"""report.html: the run at a glance in one self-contained page (pure: documents in, bytes out).

Everything is drawn here, in Python: the charts are inline SVG, the style is one inline sheet,
and there is no script, font, image or link that leaves the page, so it reads the same mailed,
archived, or opened with JavaScript off. Every chart has its numbers in a table too.

The page is bounded whatever the input: the timeline has at most MAX_POINTS points (buckets of
windows summed, totals kept), tables are capped with their full counts said, and names from
the logs are cut to a length. Should a page still pass MAX_BYTES (names full of characters
that escape long, say), it is made again with tighter limits until it fits.

Apart from the run figures (time, memory: their own section), the same documents give the same
bytes: nothing here depends on the clock, the workers or the order work finished in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model.partial import Partial, Timeline
from .charts import hbars, hour_chart, timeline_chart
from .format import duration, number, share, text, utc_text
from .output import shown
from .timeline import Marker, Points, dense_part, markers, points, subject_of

MAX_BYTES = 2_000_000
"""Largest page written."""
DETAIL_GAIN = 8
"""The detail timeline is drawn when its buckets are at least this many times narrower than
the whole range's."""


@dataclass(frozen=True)
class Limits:
    """How much of each list the page shows; ``tighter()`` when a page came out too big."""

    name_chars: int = 160
    """Longest name, path or example text shown (longer ones are cut, with an ellipsis)."""
    rows_per_type: int = 100
    """Anomalies listed per type."""
    examples: int = 5
    """Examples shown per anomaly or malformed reason."""
    inputs: int = 100
    """Input files listed."""
    top: int = 50
    """Services and users drawn and listed."""
    marker_names: int = 3
    """Subjects named in a timeline marker's tooltip."""
    timeline_table: bool = True
    """The timeline's numbers as a table (one row per point with lines)."""

    def tighter(self) -> Limits:
        return Limits(
            name_chars=max(16, self.name_chars // 2),
            rows_per_type=max(5, self.rows_per_type // 2),
            examples=max(0, self.examples - 2),
            inputs=max(5, self.inputs // 2),
            top=max(5, self.top // 2),
            marker_names=max(0, self.marker_names - 1),
            timeline_table=self.timeline_table and self.rows_per_type > 25,
        )


@dataclass(frozen=True)
class PageData:
    """What the page shows: the two documents and what the run knows besides them."""

    summary: Mapping[str, Any]
    anomalies: Mapping[str, Any]
    timeline: Timeline = field(default_factory=Timeline)
    inputs: Sequence[tuple[str, int]] = ()
    """(file name as shown, bytes read) of each input, in path order."""
    failures: Mapping[str, str] = field(default_factory=dict)
    """file name as shown -> why it could not be read."""
    service_errors: Mapping[str, int] | None = None
    """ERROR, CRITICAL and FATAL lines of each top service (None: not known)."""
    user_errors: Mapping[str, int] | None = None
    """ERROR, CRITICAL and FATAL lines of each top user (None: not known)."""
    metrics: Mapping[str, Any] | None = None
    """The run figures (metrics.json), if any: the only part that changes from run to run."""
    window: int = 60


def page_data(
    partial: Partial,
    summary: Mapping[str, Any],
    anomalies: Mapping[str, Any],
    window: int,
    metrics: Mapping[str, Any] | None = None,
) -> PageData:
    """The page's data from a finished run's Partial and its documents."""
    sizes: dict[str, int] = {}
    for (path, _), segments in partial.segments.items():
        name = shown(path)
        sizes[name] = sizes.get(name, 0) + sum(s.end - s.start for s in segments)
    if partial.digest is not None:
        service_errors = _named(partial.digest.service_errors)
        user_errors = _named(partial.digest.user_errors)
    else:
        service_errors = _named(_per_subject(partial.service_errors))
        user_errors = _named(_per_subject(partial.user_errors))
    return PageData(
        summary=summary,
        anomalies=anomalies,
        timeline=partial.timeline,
        inputs=sorted(sizes.items()),
        failures={shown(path): why for path, why in sorted(partial.failures.items())},
        service_errors=service_errors,
        user_errors=user_errors,
        metrics=metrics,
        window=window,
    )


def _per_subject(counts: Mapping[tuple[bytes, int], int]) -> dict[bytes, int]:
    totals: dict[bytes, int] = {}
    for (subject, _), n in counts.items():
        totals[subject] = totals.get(subject, 0) + n
    return totals


def _named(counts: Mapping[bytes, int] | None) -> dict[str, int] | None:
    """Counts keyed by the names the page shows (None: not known)."""
    if counts is None:
        return None
    return {k.decode("utf-8", "replace"): v for k, v in counts.items()}


def build_page(data: PageData, limits: Limits | None = None) -> bytes:
    """The page as UTF-8 bytes, at most MAX_BYTES."""
    limits = limits or Limits()
    facts = Facts.of(data)
    for _ in range(12):
        page = Page(data, facts, limits).render().encode("utf-8")
        if len(page) <= MAX_BYTES:
            return page
        limits = limits.tighter()
    raise ValueError("report.html does not fit in its size limit")  # pragma: no cover


# --- the page --------------------------------------------------------------------------------


STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1c2127;--muted:#5a6470;--line:#d5dbe1;
--card:#f5f7f9;--lines:#2b6cb0;--errors:#c53030;--spike:#dd6b20;--burst:#805ad5;--peak:#d69e2e;
--bar:#4a83c4;--ok:#2f855a}
@media (prefers-color-scheme:dark){:root{--bg:#11161c;--fg:#e3e7eb;--muted:#9aa5b1;
--line:#313a44;--card:#1a2129;--lines:#63a4ff;--errors:#fc8181;--spike:#f6ad55;--burst:#b794f4;
--peak:#f6e05e;--bar:#63a4ff;--ok:#68d391}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:72rem;padding:1rem;background:var(--bg);color:var(--fg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
h1{font-size:1.6rem;margin:.2rem 0 .8rem}h2{font-size:1.25rem;margin:0 0 .6rem}
h3{font-size:1rem;margin:.8rem 0 .4rem}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem;
margin:0 0 1rem}
nav{display:flex;flex-wrap:wrap;gap:.3rem .9rem;margin:0 0 1rem}
a{color:var(--lines)}
.muted,caption,.note{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.6rem;margin:0 0 .8rem}
.cards div{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:.5rem .7rem}
.cards b{display:block;font-size:1.15rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;margin:.3rem 0 .6rem;font-variant-numeric:tabular-nums}
caption{text-align:left;font-size:.9rem;padding:.2rem 0}
th,td{border-bottom:1px solid var(--line);padding:.25rem .5rem;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}
code,.name{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em;
overflow-wrap:anywhere;word-break:break-word}
ul.ex{margin:0;padding-left:1.1rem}td.name{min-width:9em}
.sev{font-weight:600;white-space:nowrap}.critical{color:var(--errors)}.warning{color:var(--spike)}
.info{color:var(--muted)}
tr:target{outline:2px solid var(--peak)}
svg{display:block;width:100%;height:auto;max-width:100%}
svg text{fill:var(--fg);font:11px system-ui,sans-serif}
svg .axis{stroke:var(--line);stroke-width:1}
svg .lines{fill:var(--lines);fill-opacity:.35;stroke:var(--lines);stroke-width:1}
svg .errors{fill:var(--errors);fill-opacity:.45;stroke:var(--errors);stroke-width:1}
svg .bar{fill:var(--bar)}svg .bar.peak{fill:var(--peak)}svg .err{fill:var(--errors)}
svg .error_spike{fill:var(--spike);fill-opacity:.8}svg .user_burst{fill:var(--burst);fill-opacity:.8}
svg a:focus rect,svg a:hover rect{fill-opacity:1;stroke:var(--fg)}
.key{display:inline-block;width:.8em;height:.8em;border-radius:2px;vertical-align:-.05em;margin-right:.3em}
.k-lines{background:var(--lines)}.k-errors{background:var(--errors)}.k-spike{background:var(--spike)}
.k-burst{background:var(--burst)}.k-peak{background:var(--peak)}.k-bar{background:var(--bar)}
details summary{cursor:pointer;color:var(--muted)}
@media (max-width:40rem){body{padding:.5rem;font-size:14px}section{padding:.6rem}
th,td{padding:.2rem .3rem}}
@media print{:root{--bg:#fff;--fg:#000;--muted:#444;--line:#bbb;--card:#fff}
body{max-width:none;padding:0;font-size:11pt}nav{display:none}
section{break-inside:avoid-page;border:none;padding:0}a{color:inherit;text-decoration:none}
.scroll{overflow:visible}}
"""


@dataclass
class Facts:
    """What the page draws that does not depend on its limits: worked out once."""

    items: list[Mapping[str, Any]]
    by_type: dict[str, list[int]]
    """Anomaly type -> the indexes of its anomalies, in document order."""
    pts: Points | None
    bands: list[Marker]
    by_severity: dict[str, int]
    detail: Points | None = None
    """The shortest stretch holding most lines, when the whole range dwarfs it."""
    detail_bands: list[Marker] = field(default_factory=list)

    @classmethod
    def of(cls, data: PageData) -> Facts:
        items = list(data.anomalies.get("anomalies", []))
        by_type: dict[str, list[int]] = {}
        by_severity: dict[str, int] = {}
        for index, item in enumerate(items):
            by_type.setdefault(str(item.get("type")), []).append(index)
            severity = str(item.get("severity"))
            by_severity[severity] = by_severity.get(severity, 0) + 1
        pts = points(data.timeline)
        bands = markers(items, pts, by_type) if pts is not None else []
        facts = cls(items, by_type, pts, bands, by_severity)
        detail = dense_part(data.timeline)
        if detail is not None and pts is not None:
            fine = points(detail)
            if fine is not None and pts.width >= DETAIL_GAIN * fine.width:
                facts.detail = fine
                facts.detail_bands = markers(items, fine, by_type, clip=True)
        return facts


class Page:
    """The page's parts, written in order into a list of strings."""

    def __init__(self, data: PageData, facts: Facts, limits: Limits) -> None:
        self.data = data
        self.facts = facts
        self.limits = limits
        self.out: list[str] = []
        self.summary = data.summary
        self.items = facts.items
        self.shown_rows = {i for rows in facts.by_type.values() for i in rows[: limits.rows_per_type]}

    def w(self, *parts: str) -> None:
        self.out.extend(parts)

    def name(self, value: object) -> str:
        return text(value, self.limits.name_chars)

    def link(self, index: int) -> str:
        """Where anomaly ``index`` is listed: its row, or the table when it is past the cap."""
        return f"#a{index}" if index in self.shown_rows else "#anomalies"

    def render(self) -> str:
        totals = self.summary.get("totals", {})
        self.w("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
               "<meta name=\"color-scheme\" content=\"light dark\">\n",
               f"<title>mapreduce-logs report: {number(totals.get('lines', 0))} lines</title>\n",
               f"<style>{STYLE}</style>\n</head>\n<body>\n")
        self.w("<header><h1>Log report</h1></header>\n<nav aria-label=\"Sections\">",
               "<a href=\"#read\">Read</a><a href=\"#timeline\">Timeline</a>",
               "<a href=\"#totals\">Totals</a><a href=\"#levels\">Levels</a>",
               "<a href=\"#hours\">Hours</a><a href=\"#services\">Services</a>",
               "<a href=\"#users\">Users</a><a href=\"#anomalies\">Anomalies</a>",
               "<a href=\"#run\">Run figures</a></nav>\n<main>\n")
        self.read_section()
        self.timeline_section()
        self.totals_section()
        self.levels_section()
        self.hours_section()
        self.top_section("services", "Services", "service_counts", "distinct_services")
        self.top_section("users", "Users", "user_counts", "distinct_users")
        self.anomalies_section()
        self.run_section()
        self.w("</main>\n</body>\n</html>\n")
        return "".join(self.out)

    # --- sections ------------------------------------------------------------------------

    def read_section(self) -> None:
        s = self.summary
        totals = s.get("totals", {})
        span = s.get("time_range")
        self.w("<section id=\"read\" aria-labelledby=\"h-read\"><h2 id=\"h-read\">What was read</h2>",
               "<div class=\"cards\">")
        for label, value in (("inputs", totals.get("files", 0)), ("bytes", totals.get("bytes", 0)),
                             ("lines", totals.get("lines", 0)), ("valid lines", totals.get("valid", 0))):
            self.w(f"<div><b>{number(value)}</b>{label}</div>")
        self.w("</div><table><tbody>")
        first = text(span["first"]) if span else "\u2013"
        last = text(span["last"]) if span else "\u2013"
        self.w(f"<tr><th scope=\"row\">First line</th><td><time>{first}</time></td></tr>",
               f"<tr><th scope=\"row\">Last line</th><td><time>{last}</time></td></tr>",
               f"<tr><th scope=\"row\">Time zone of the hours</th><td>{text(s.get('time_zone', 'UTC'))}</td></tr>",
               "<tr><th scope=\"row\">Everything else</th><td>UTC</td></tr></tbody></table>")
        self.file_table("Inputs", "<th scope=\"col\" class=\"n\">Bytes read</th>",
                        [(path, f"<td class=\"n\">{number(size)}</td>")
                         for path, size in self.data.inputs[: self.limits.inputs]],
                        len(self.data.inputs))
        failures = list(self.data.failures.items())
        self.file_table("Could not be read", "<th scope=\"col\">Why</th>",
                        [(path, f"<td>{self.name(why)}</td>")
                         for path, why in failures[: self.limits.inputs]],
                        len(failures))
        self.w("</section>\n")

    def file_table(self, caption: str, head: str, rows: list[tuple[str, str]], total: int) -> None:
        """A table of files (the first ``rows`` of ``total``): each path, then its cell."""
        if not total:
            return
        self.w("<div class=\"scroll\"><table><caption>",
               f"{caption}: {self.count_note(len(rows), total, 'file')}</caption>",
               f"<thead><tr><th scope=\"col\">File</th>{head}</tr></thead><tbody>")
        for path, cell in rows:
            self.w(f"<tr><td class=\"name\">{self.name(path)}</td>{cell}</tr>")
        self.w("</tbody></table></div>")

    def count_note(self, shown: int, total: int, thing: str) -> str:
        plural = "" if total == 1 else "s"
        if shown == total:
            return f"{number(total)} {thing}{plural}"
        return f"the first {number(shown)} of {number(total)} {thing}{plural}"

    def totals_section(self) -> None:
        totals = self.summary.get("totals", {})
        malformed = self.summary.get("malformed", {})
        self.w("<section id=\"totals\" aria-labelledby=\"h-totals\"><h2 id=\"h-totals\">Totals</h2>",
               "<div class=\"scroll\"><table><caption>Every line is exactly one of valid, blank, ",
               "malformed", ", outside the time range" if "outside" in totals else "",
               "</caption><tbody>")
        lines = totals.get("lines", 0)
        for key, value in totals.items():
            self.w(f"<tr><th scope=\"row\">{text(key)}</th><td class=\"n\">{number(value)}</td>")
            self.w(f"<td class=\"n muted\">{share(value, lines) if key in ('valid', 'blank', 'malformed', 'outside') else ''}</td></tr>")
        self.w("</tbody></table></div>")
        by_reason = {str(item.get("reason")): (index, item) for index, item in enumerate(self.items)
                     if item.get("type") == "malformed_lines"}
        self.w("<div class=\"scroll\"><table><caption>Malformed lines by reason</caption><thead><tr>",
               "<th scope=\"col\">Reason</th><th scope=\"col\" class=\"n\">Lines</th>",
               "<th scope=\"col\">Examples (file:line, text)</th></tr></thead><tbody>")
        for reason, count in malformed.items():
            found = by_reason.get(str(reason))
            examples = self.examples(found[1]) if found else ""
            self.w(f"<tr><th scope=\"row\">{text(reason)}</th><td class=\"n\">{number(count)}</td>",
                   f"<td>{examples}</td></tr>")
        self.w("</tbody></table></div></section>\n")

    def examples(self, item: Mapping[str, Any]) -> str:
        shown = list(item.get("examples", []))[: self.limits.examples]
        if not shown:
            return ""
        rows = "".join(
            f"<li><code>{self.name(ex.get('file', ''))}:{int(ex.get('line', 0))}</code> "
            f"<code>{self.name(ex.get('text', ''))}</code></li>" for ex in shown)
        return f"<ul class=\"ex\">{rows}</ul>"

    def levels_section(self) -> None:
        levels = list(self.summary.get("log_levels", {}).items())
        valid = self.summary.get("totals", {}).get("valid", 0)
        self.w("<section id=\"levels\" aria-labelledby=\"h-levels\"><h2 id=\"h-levels\">Levels</h2>")
        if levels:
            self.w(hbars("levels-chart", "Valid lines by level",
                         f"{len(levels)} levels; most: {text(levels[0][0])} with {number(levels[0][1])} lines",
                         [(text(k), v, 0) for k, v in levels]))
        self.w("<div class=\"scroll\"><table><caption>Valid lines by level</caption><thead><tr>",
               "<th scope=\"col\">Level</th><th scope=\"col\" class=\"n\">Lines</th>",
               "<th scope=\"col\" class=\"n\">Share</th></tr></thead><tbody>")
        for level, n in levels:
            self.w(f"<tr><th scope=\"row\">{text(level)}</th><td class=\"n\">{number(n)}</td>",
                   f"<td class=\"n\">{share(n, valid)}</td></tr>")
        if not levels:
            self.w("<tr><td colspan=\"3\" class=\"muted\">No valid line.</td></tr>")
        self.w("</tbody></table></div></section>\n")

    def hours_section(self) -> None:
        hours = list(self.summary.get("hourly_counts", {}).items())
        peaks = list(self.summary.get("peak_hours", []))
        zone = text(self.summary.get("time_zone", "UTC"))
        self.w("<section id=\"hours\" aria-labelledby=\"h-hours\"><h2 id=\"h-hours\">Lines by hour of day</h2>",
               f"<p class=\"note\">Hours in {zone}. <span class=\"key k-peak\"></span>Peak hours: ",
               ", ".join(text(p) for p in peaks) or "none", "</p>")
        self.w(hour_chart(hours, peaks, zone))
        self.w("<details><summary>The 24 hourly counts as a table</summary><div class=\"scroll\"><table>",
               "<caption>Valid lines by hour of day</caption><thead><tr><th scope=\"col\">Hour</th>",
               "<th scope=\"col\" class=\"n\">Lines</th><th scope=\"col\">Peak</th></tr></thead><tbody>")
        for label, n in hours:
            rank = f"#{peaks.index(label) + 1}" if label in peaks else ""
            self.w(f"<tr><th scope=\"row\">{text(label)}</th><td class=\"n\">{number(n)}</td><td>{rank}</td></tr>")
        self.w("</tbody></table></div></details></section>\n")

    def timeline_section(self) -> None:
        self.w("<section id=\"timeline\" aria-labelledby=\"h-timeline\"><h2 id=\"h-timeline\">Timeline</h2>")
        pts = self.facts.pts
        if pts is None:
            self.w("<p class=\"muted\">No valid line: nothing to draw.</p></section>\n")
            return
        self.timeline(pts, self.facts.bands, "timeline-chart", "the whole time range")
        detail = self.facts.detail
        if detail is not None:
            share = sum(detail.lines) / max(1, sum(pts.lines))
            self.w(f"<h3 id=\"h-detail\">Where {100 * share:.1f}% of the lines are</h3>")
            self.timeline(detail, self.facts.detail_bands, "detail-chart",
                          f"the shortest stretch holding {100 * share:.1f}% of the lines")
        self.w("</section>\n")

    def timeline(self, pts: Points, bands: Sequence[Marker], ident: str, what: str) -> None:
        spikes = sum(len(b.indexes) for b in bands if b.kind == "error_spike")
        bursts = sum(len(b.indexes) for b in bands if b.kind == "user_burst")
        window = self.data.window
        self.w(f"<p class=\"note\">Valid lines and error lines (ERROR, CRITICAL, FATAL) over {what}, per ",
               f"{duration(pts.width)} (UTC): {number(len(pts.lines))} point{'' if len(pts.lines) == 1 else 's'}",
               f" (the {duration(window)} windows summed {number(pts.width // window)} to a point)" if pts.width != window else "",
               ". <span class=\"key k-lines\"></span>lines <span class=\"key k-errors\"></span>errors ",
               f"<span class=\"key k-spike\"></span>error_spike ({number(spikes)}) ",
               f"<span class=\"key k-burst\"></span>user_burst ({number(bursts)}): ",
               "each band links to its anomaly below.</p>")
        self.w(timeline_chart(pts, bands, self.items, self.limits.marker_names, self.link, ident))
        if self.limits.timeline_table:
            rows = [i for i, n in enumerate(pts.lines) if n]
            self.w("<details><summary>This timeline as a table (", number(len(rows)),
                   " points with lines)</summary><div class=\"scroll\"><table><caption>",
                   f"Lines and errors per {duration(pts.width)}, from the start of each bucket (UTC)</caption>",
                   "<thead><tr><th scope=\"col\">From</th><th scope=\"col\" class=\"n\">Lines</th>",
                   "<th scope=\"col\" class=\"n\">Errors</th></tr></thead><tbody>")
            for i in rows:
                self.w(f"<tr><td>{utc_text(pts.start + i * pts.width)}</td><td class=\"n\">{number(pts.lines[i])}</td>",
                       f"<td class=\"n\">{number(pts.errors[i])}</td></tr>")
            self.w("</tbody></table></div></details>")
        if bands:
            self.w("<details><summary>Where its anomalies are</summary><div class=\"scroll\"><table>",
                   "<caption>error_spike and user_burst by the bucket they start in</caption><thead><tr>",
                   "<th scope=\"col\">Type</th><th scope=\"col\">From</th><th scope=\"col\">Subjects</th>",
                   "</tr></thead><tbody>")
            for band in bands:
                subjects = ", ".join(
                    f"<a href=\"{self.link(i)}\">{text(subject_of(self.items[i]), 40)}</a>"
                    for i in band.indexes[: max(1, self.limits.marker_names)])
                more = len(band.indexes) - max(1, self.limits.marker_names)
                self.w(f"<tr><td>{band.kind}</td><td>{utc_text(pts.start + band.first * pts.width)}</td>",
                       f"<td>{subjects}{f' and {number(more)} more' if more > 0 else ''}</td></tr>")
            self.w("</tbody></table></div></details>")

    def top_section(self, anchor: str, title: str, counts_key: str, distinct_key: str) -> None:
        counts = list(self.summary.get(counts_key, {}).items())
        distinct = self.summary.get(distinct_key, 0)
        valid = self.summary.get("totals", {}).get("valid", 0)
        errors = self.data.service_errors if anchor == "services" else self.data.user_errors
        shown = counts[: self.limits.top]
        self.w(f"<section id=\"{anchor}\" aria-labelledby=\"h-{anchor}\"><h2 id=\"h-{anchor}\">Top {title.lower()}</h2>",
               f"<p class=\"note\">{self.count_note(len(shown), distinct, title.lower()[:-1])} ",
               "by valid lines" if len(shown) == distinct else "seen, the busiest by valid lines",
               "; <span class=\"key k-bar\"></span>lines <span class=\"key k-errors\"></span>errors"
               if errors is not None else "", ".</p>")
        if shown:
            bars = [(self.name(k), v, (errors or {}).get(k, 0)) for k, v in shown]
            self.w(hbars(f"{anchor}-chart", f"Top {title.lower()} by valid lines",
                         f"{len(shown)} {title.lower()}; busiest: {self.name(shown[0][0])} with {number(shown[0][1])} lines",
                         bars))
        self.w(f"<div class=\"scroll\"><table><caption>Top {title.lower()}</caption><thead><tr>",
               f"<th scope=\"col\">{title[:-1]}</th><th scope=\"col\" class=\"n\">Lines</th>",
               "<th scope=\"col\" class=\"n\">Share of valid lines</th>")
        if errors is not None:
            self.w("<th scope=\"col\" class=\"n\">Errors</th><th scope=\"col\" class=\"n\">Error share</th>")
        self.w("</tr></thead><tbody>")
        for key, n in shown:
            self.w(f"<tr><td class=\"name\">{self.name(key)}</td><td class=\"n\">{number(n)}</td>",
                   f"<td class=\"n\">{share(n, valid)}</td>")
            if errors is not None:
                e = errors.get(key, 0)
                self.w(f"<td class=\"n\">{number(e)}</td><td class=\"n\">{share(e, n)}</td>")
            self.w("</tr>")
        if not shown:
            self.w("<tr><td colspan=\"5\" class=\"muted\">None.</td></tr>")
        self.w("</tbody></table></div>")
        self.w("</section>\n")

    def anomalies_section(self) -> None:
        counts = self.data.anomalies.get("counts", {})
        total = len(self.items)
        by_severity = self.facts.by_severity
        self.w("<section id=\"anomalies\" aria-labelledby=\"h-anomalies\"><h2 id=\"h-anomalies\">Anomalies</h2>",
               f"<p class=\"note\">{number(total)} in all",
               "".join(f"; {number(n)} {text(k)}" for k, n in counts.items() if n), ". By severity: ",
               ", ".join(f"<span class=\"sev {text(s)}\">{text(s)}</span> {number(by_severity[s])}"
                         for s in ("critical", "warning", "info") if s in by_severity) or "none",
               ".</p>")
        if not total:
            self.w("<p>None found.</p></section>\n")
            return
        for kind, rows in self.facts.by_type.items():
            shown = rows[: self.limits.rows_per_type]
            self.w(f"<h3 id=\"t-{text(kind)}\">{text(kind)}</h3><div class=\"scroll\"><table><caption>",
                   self.count_note(len(shown), len(rows), "anomaly").replace("anomalys", "anomalies"),
                   "</caption><thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Subject</th>",
                   "<th scope=\"col\">Window (UTC)</th><th scope=\"col\">Figures</th>",
                   "<th scope=\"col\">Examples (file:line, text)</th></tr></thead><tbody>")
            for i in shown:
                item = self.items[i]
                sev = text(item.get("severity", ""))
                window = ""
                if "window_start" in item:
                    window = f"<time>{text(item['window_start'])}</time> \u2013 <time>{text(item.get('window_end', ''))}</time>"
                self.w(f"<tr id=\"a{i}\"><td class=\"sev {sev}\">{sev}</td>",
                       f"<td class=\"name\">{self.name(subject_of(item))}</td><td>{window}</td>",
                       f"<td>{figures(item)}</td><td>{self.examples(item)}</td></tr>")
            self.w("</tbody></table></div>")
        self.w("</section>\n")

    def run_section(self) -> None:
        # The only part of the page that changes from one run of the same input to the next.
        self.w("<!-- run figures -->\n<section id=\"run\" aria-labelledby=\"h-run\"><h2 id=\"h-run\">Run figures</h2>")
        m = self.data.metrics
        if not m:
            self.w("<p class=\"muted\">Not measured.</p>")
        else:
            self.w("<div class=\"scroll\"><table><tbody>")
            for key, value in m.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.w(f"<tr><th scope=\"row\">{text(key.replace('_', ' '))}</th><td class=\"n\">{text(number(value))}</td></tr>")
            for stage, seconds in dict(m.get("stages", {})).items():
                self.w(f"<tr><th scope=\"row\">stage {text(stage)} (s)</th><td class=\"n\">{text(number(seconds))}</td></tr>")
            self.w("</tbody></table></div>")
        self.w("</section>\n<!-- /run figures -->\n")


def figures(item: Mapping[str, Any]) -> str:
    parts = []
    for key in ("count", "errors", "lines", "baseline"):
        if key in item:
            parts.append(f"{key} {text(number(item[key]))}")
    return ", ".join(parts)


def strip_run_figures(page: bytes) -> bytes:
    """The page without its run figures: what is the same for the same input."""
    start = page.find(b"<!-- run figures -->")
    end = page.find(b"<!-- /run figures -->")
    return page if start < 0 or end < 0 else page[:start] + page[end:]


__all__ = ["MAX_BYTES", "Limits", "PageData", "build_page", "page_data", "strip_run_figures"]
