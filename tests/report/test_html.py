"""report.html: escaping, the timeline's buckets, the caps, the size bound, determinism."""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
from collections import Counter
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapreduce_logs.cli import main
from mapreduce_logs.execute.base import SerialExecutor
from mapreduce_logs.model.partial import TIMELINE_BUCKETS, Partial, Timeline, bucket_width
from mapreduce_logs.pipeline import run_files
from mapreduce_logs.report.documents import build_summary
from mapreduce_logs.report.format import epoch_seconds, text
from mapreduce_logs.report.html import (
    MAX_BYTES,
    Limits,
    PageData,
    build_page,
    page_data,
    strip_run_figures,
)
from mapreduce_logs.report.timeline import MAX_POINTS, dense_part, markers, points
from mapreduce_logs.settings import Settings

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "data")
ERRORS = ("ERROR", "CRITICAL", "FATAL")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: bytes) -> Tags:
    tags = Tags()
    tags.feed(page.decode("utf-8"))  # strict: the page is valid UTF-8
    tags.close()
    return tags


ALLOWED = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "nav",
           "a", "main", "section", "div", "b", "table", "caption", "thead", "tbody", "tr", "th",
           "td", "time", "ul", "li", "code", "p", "span", "details", "summary", "svg", "desc",
           "line", "text", "rect", "path"}


def assert_inert(page: bytes) -> Tags:
    """Only the page's own tags, and no link that leaves it."""
    tags = parsed(page)
    assert {tag for tag, _ in tags.tags} <= ALLOWED
    for _, attrs in tags.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), name
            if name in ("href", "src"):
                assert value is not None and value.startswith("#"), value
    return tags


def run_page(tmp_path: Any, paths: list[str], *options: str) -> bytes:
    out = tmp_path / "out"
    assert main(["run", *paths, "--out", str(out), "--quiet", *options]) in (0, 3)
    return (out / "report.html").read_bytes()


# --- escaping ----------------------------------------------------------------------------------


def test_names_examples_and_file_names_are_text(tmp_path: Any) -> None:
    name = os.fsdecode(b"<img src=x onerror=alert(1)>&\"q\xff.log")
    path = tmp_path / name
    lines = [b"2025-07-22T10:00:%02dZ INFO <svc>&\"x\" <script>alert(1)</script> a \"b\" & <i>" % s
             for s in range(30)]
    lines += [b"2025-07-22T10:01:00Z INFO \x1b[31mred\x07 <u> bell", b"<b>not a line</b> &amp; \"",
              b"2025-07-22T10:01:01Z BOGUS<x> svc user msg"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    page = run_page(tmp_path, [str(path)])
    tags = assert_inert(page)
    shown = "".join(tags.text)
    assert "<script>alert(1)</script>" in shown  # as text, for people to read
    assert "<svc>&\"x\"" in shown
    assert "<img src=x onerror=alert(1)>&\"q\ufffd.log" in shown  # the invalid byte replaced
    assert "<b>not a line</b> &amp; \"" in shown
    assert "\x1b" not in page.decode() and "\x07" not in page.decode()
    assert "\u241b[31mred\u2407" in shown  # control characters as their symbols
    assert b"<script" not in page


def test_text_escapes_cuts_and_replaces() -> None:
    assert text("<a href=\"x\">&'") == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert text("abcdef", 4) == "abc\u2026"
    assert text("a\udcffb\x00") == "a\ufffdb\u2400"


# --- the timeline ------------------------------------------------------------------------------

windows_st = st.dictionaries(
    st.one_of(st.integers(-10**9, 10**9), st.integers(29_000_000, 29_010_000)),
    st.integers(1, 50), max_size=300)


@given(windows_st, st.integers(2, 20), st.sampled_from([1, 7, 60, 3600]))
def test_points_keep_every_line_within_the_cap(windows: dict[int, int], most: int, window: int) -> None:
    """Drawn in at most ``most`` consecutive buckets, the lines and errors add up to theirs."""
    errors = {w: n // 2 for w, n in windows.items() if n // 2}
    pts = points(Timeline.of(window, windows, errors), most)
    if not windows:
        assert pts is None
        return
    assert pts is not None
    assert 1 <= len(pts.lines) <= most
    assert sum(pts.lines) == sum(windows.values())
    assert sum(pts.errors) == sum(errors.values())
    assert pts.width % window == 0 and pts.start % pts.width == 0
    for w, n in windows.items():  # each window in the bucket its time falls in
        assert pts.lines[(w * window - pts.start) // pts.width] >= n


@given(st.lists(windows_st, max_size=6), st.randoms())
def test_timelines_merge_to_one_answer(parts: list[dict[int, int]], rnd: random.Random) -> None:
    """However the chunks' timelines are merged, the result is the timeline of all their
    windows: bucket widths are chosen by the data, never by the order."""
    every: Counter[int] = Counter()
    for part in parts:
        every.update(part)
    timelines = [Timeline.of(60, part, {}) for part in parts]
    rnd.shuffle(timelines)
    merged = Timeline()
    for t in timelines:
        merged.update(t)
    assert merged == Timeline.of(60, every, {})


@given(windows_st)
def test_the_dense_part_holds_most_lines_in_one_stretch(windows: dict[int, int]) -> None:
    """The detail timeline is every bucket of one stretch, holding at least 99% of the lines,
    and no shorter stretch holds as many."""
    t = Timeline.of(60, windows, {})
    part = dense_part(t)
    if part is None:
        return
    keys = sorted(part.lines)
    assert {k: n for k, n in t.lines.items() if keys[0] <= k <= keys[-1]} == part.lines
    assert sum(part.lines.values()) >= 0.99 * sum(t.lines.values())
    every = sorted(t.lines)
    for i, low in enumerate(every):  # any stretch as full is at least as long
        for high in every[i:]:
            held = sum(n for k, n in t.lines.items() if low <= k <= high)
            if held >= 0.99 * sum(t.lines.values()):
                assert high - low >= keys[-1] - keys[0]
                break


def test_a_timeline_widens_past_its_buckets() -> None:
    windows = dict.fromkeys(range(0, 3 * TIMELINE_BUCKETS), 1)
    t = Timeline.of(60, windows, {0: 1})
    assert len(t.lines) <= TIMELINE_BUCKETS and t.level > 0
    assert sum(t.lines.values()) == len(windows) and t.errors == {0: 1}
    assert bucket_width(60, t.level) == t.width and t.width % 60 == 0


@given(st.integers(0, 2**31), st.sampled_from([1, 7, 60]))
def test_many_windows_are_bucketed_as_one_by_one(seed: int, window: int) -> None:
    """A chunk with more windows than a timeline holds is bucketed in arrays: the same
    timeline as widening it a level at a time."""
    rnd = random.Random(seed)
    spread = rnd.choice([10**4, 10**6, 10**9])
    lines = {rnd.randrange(-spread, spread): rnd.randint(1, 9) for _ in range(TIMELINE_BUCKETS + 50)}
    errors = {w: n // 2 for w, n in lines.items() if n // 2}
    one_by_one = Timeline(window, 0, dict(lines), dict(errors))
    while len(one_by_one.lines) > TIMELINE_BUCKETS:
        one_by_one = one_by_one.raised(one_by_one.level + 1)
    assert Timeline.of(window, lines, errors) == one_by_one


def test_bucket_widths_divide_each_other() -> None:
    for window in (1, 7, 60, 90, 3600):
        widths = [bucket_width(window, level) for level in range(40)]
        assert all(b % a == 0 and b > a for a, b in itertools.pairwise(widths))
    assert [bucket_width(60, n) for n in range(6)] == [60, 120, 600, 1800, 3600, 7200]


def test_the_engine_counts_the_timeline(tmp_path: Any) -> None:
    """Through chunks and spilled counters, the timeline holds every valid line and error."""
    path = tmp_path / "a.log"
    rnd = random.Random(3)
    levels = ["INFO", "DEBUG", *ERRORS]
    path.write_bytes(b"".join(
        b"2025-07-%02dT%02d:%02d:00Z %s svc%d u%d m\n"
        % (rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59),
           rnd.choice(levels).encode(), rnd.randint(0, 3), rnd.randint(0, 500))
        for _ in range(3000)))
    settings = Settings(chunk_size=997, memory_mb=50)
    p = run_files([str(path)], settings, SerialExecutor())
    summary = build_summary(p, settings)
    assert sum(p.timeline.lines.values()) == summary["totals"]["valid"]
    assert sum(p.timeline.errors.values()) == sum(summary["log_levels"].get(x, 0) for x in ERRORS)


# --- the page ----------------------------------------------------------------------------------


def test_the_shipped_data_has_every_section(tmp_path: Any) -> None:
    page = run_page(tmp_path, [SHIPPED])
    tags = assert_inert(page)
    ids = {attrs.get("id") for _, attrs in tags.tags}
    assert {"read", "totals", "levels", "hours", "timeline", "services", "users", "anomalies",
            "run", "timeline-chart", "hours-chart", "levels-chart"} <= ids
    anomalies = (tmp_path / "out" / "anomalies.json").read_text()
    import json

    items = json.loads(anomalies)["anomalies"]
    for i, item in enumerate(items):  # every anomaly has its row, every window one a band
        assert f"id=\"a{i}\"".encode() in page
        if item["type"] in ("error_spike", "user_burst"):
            assert f"href=\"#a{i}\"".encode() in page
    svgs = [attrs for tag, attrs in tags.tags if tag == "svg"]
    assert svgs and all(a.get("role") == "img" and a.get("aria-labelledby") for a in svgs)
    for section in ("services", "users"):  # both top lists with their errors and error share
        body = page.split(f"<section id=\"{section}\"".encode())[1].split(b"</section>")[0]
        assert b">Errors</th>" in body and b">Error share</th>" in body


def test_the_same_input_gives_the_same_page(tmp_path: Any) -> None:
    one = run_page(tmp_path / "1", [SHIPPED], "--workers", "1")
    two = run_page(tmp_path / "2", [SHIPPED], "--workers", "2", "--chunk-size", "777")
    three = run_page(tmp_path / "3", [SHIPPED], "--workers", "2", "--chunk-size", "5000",
                     "--memory-mb", "50")
    assert strip_run_figures(one) == strip_run_figures(two) == strip_run_figures(three)
    assert b"id=\"run\"" in one and b"id=\"run\"" not in strip_run_figures(one)


def test_an_empty_input(tmp_path: Any) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    page = run_page(tmp_path, [str(tmp_path / "empty.log")])
    assert_inert(page)
    assert b"No valid line" in page and b"None found." in page


def test_no_valid_line(tmp_path: Any) -> None:
    (tmp_path / "bad.log").write_bytes(b"nope\n2025-13-01T00:00:00Z INFO a b\n\n")
    page = run_page(tmp_path, [str(tmp_path / "bad.log")])
    assert_inert(page)
    assert b"No valid line: nothing to draw." in page and b"bad_timestamp" in page


def test_one_window(tmp_path: Any) -> None:
    (tmp_path / "one.log").write_bytes(
        b"".join(b"2025-07-22T10:00:%02dZ ERROR s u m\n" % s for s in range(50)))
    page = run_page(tmp_path, [str(tmp_path / "one.log")])
    assert_inert(page)
    assert b"per 1 min (UTC): 1 point." in page and b"detail-chart" not in page


def test_lists_are_capped_with_their_totals_said() -> None:
    items = [{"type": "unknown_level", "severity": "info", "level": f"L{i}", "count": 1,
              "examples": [{"file": "f", "line": i, "text": "x"}] * 5} for i in range(1000)]
    data = PageData(summary={"totals": {"valid": 0}}, anomalies={"anomalies": items},
                    inputs=[(f"f{i}.log", i) for i in range(300)])
    page = build_page(data, Limits(rows_per_type=40, inputs=20, examples=2))
    assert b"the first 40 of 1,000 anomalies" in page
    assert b"the first 20 of 300 files" in page
    assert page.count(b"<tr id=\"a") == 40
    assert page.count(b"<li><code>f:") == 80


def test_a_huge_input_stays_under_the_size_limit() -> None:
    """Long names that escape to six times their length, many anomalies, a wide timeline."""
    nasty = "\"&<>" * 5_000  # 20,000 characters, 120,000 bytes escaped
    rnd = random.Random(5)
    windows = {rnd.randrange(-10**9, 10**9): 3 for _ in range(50_000)}
    items: list[dict[str, Any]] = []
    for kind, key in (("error_spike", "service"), ("user_burst", "user")):
        starts = list(windows)
        for i in range(10_000):
            minute = rnd.choice(starts) if i % 2 else 29_000_000 + i
            items.append({"type": kind, "severity": "warning", key: nasty,
                          "window_start": _stamp(minute * 60), "window_end": _stamp(minute * 60 + 60),
                          "errors": 40, "baseline": 2.0,
                          "examples": [{"file": nasty, "line": 1, "text": nasty}] * 5})
    summary = {"totals": {"files": 1, "lines": 10, "valid": 10}, "time_zone": nasty,
               "service_counts": {nasty + str(i): 100 - i for i in range(100)},
               "user_counts": {nasty + str(i): 100 - i for i in range(100)},
               "malformed": {"too_long": 1}, "log_levels": {"INFO": 10}, "peak_hours": [],
               "hourly_counts": {}}
    data = PageData(summary=summary, anomalies={"anomalies": items},
                    timeline=Timeline.of(60, windows, windows),
                    inputs=[(nasty, 1)] * 1000, failures={nasty + str(i): nasty for i in range(500)})
    page = build_page(data)
    assert len(page) <= MAX_BYTES
    tags = assert_inert(page)
    pts = points(data.timeline)
    assert pts is not None and len(pts.lines) <= MAX_POINTS
    assert sum(1 for tag, a in tags.tags if tag == "rect" and a.get("class") in ("error_spike", "user_burst")) \
        == len(markers(items, pts))


def _stamp(seconds: int) -> str:
    from mapreduce_logs.ingest.parse import format_utc

    return format_utc(seconds * 1_000_000_000)


def test_every_window_anomaly_is_in_one_band() -> None:
    timeline = Timeline.of(60, {w: 1 for w in range(29_000_000, 29_100_000, 7)}, {})
    pts = points(timeline)
    assert pts is not None
    items = [{"type": t, "window_start": _stamp(m * 60), "window_end": _stamp(m * 60 + 120)}
             for m in range(29_000_000, 29_100_000, 997) for t in ("error_spike", "user_burst")]
    items.append({"type": "malformed_lines"})
    bands = markers(items, pts)
    indexes = sorted(i for band in bands for i in band.indexes)
    assert indexes == list(range(len(items) - 1))
    for band in bands:
        for i in band.indexes:
            start = epoch_seconds(items[i]["window_start"])
            assert start is not None and pts.start + band.first * pts.width <= start
            assert start < pts.start + (band.first + 1) * pts.width


def test_page_data_of_a_partial_without_digest() -> None:
    p = Partial()
    p.service_errors[(b"svc", 1)] = 3
    data = page_data(p, {"service_counts": {"svc": 5}}, {"anomalies": []}, 60)
    assert data.service_errors == {"svc": 3}


@pytest.mark.timeout(120)
def test_watch_writes_the_page_run_writes(tmp_path: Any) -> None:
    from mapreduce_logs.watch.loop import Watcher

    logs, out = tmp_path / "logs", tmp_path / "out"
    logs.mkdir()
    shutil.copy(os.path.join(SHIPPED, "input.txt"), logs / "a.log")
    settings = Settings(workers=1)
    w = Watcher(str(logs), str(out), settings, SerialExecutor(), settle=0.0)
    w.open()
    w.drain()
    w.close()
    watched = (out / "report.html").read_bytes()
    ran = run_page(tmp_path / "ref", [str(logs)], "--workers", "1")
    assert strip_run_figures(watched) == strip_run_figures(ran)


def test_stamps_are_read_back() -> None:
    for seconds in (0, 1, -62135596800, 253402300799, 1753142400):
        assert epoch_seconds(_stamp(seconds)) == seconds
    assert epoch_seconds("10000-01-01T00:00:00Z") == 253402300800
    for bad in ("", "x", "2025-07-22 00:00:00Z", "2025-07-22T0a:00:00Z"):
        assert epoch_seconds(bad) is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", _stamp(0))
