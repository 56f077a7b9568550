"""The mergeable Partial: raw totals of some lines, combined by an associative, commutative merge.

Order-free facts (counts per level, service, user, hour, window) live in counters. Facts that
depend on line order (line numbers, the previous line's timestamp, the first examples) live in
Segments: one per contiguous byte range of a source, with line numbers relative to the range.
Merging joins segments that touch, so a chunk never needs to know its first line number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .digest import Digest, Tables

if TYPE_CHECKING:  # numpy is imported only when a mapper hands columns over
    from .columns import Columns

K = TypeVar("K")

MAX_EXAMPLES = 5

Source = tuple[str, int]
"""A file as (path, generation); generation tells apart the contents of a replaced file."""

Example = tuple[int, str]
"""(line index within its segment, 0-based; example text)."""

FutureLine = tuple[int, int, str]
"""(line index within its segment, timestamp in ns, example text) of a future-stamped line."""


def _first(examples: list[Example], more: list[Example], shift: int) -> list[Example]:
    """The first MAX_EXAMPLES of ``examples`` followed by ``more`` shifted by ``shift`` lines."""
    room = MAX_EXAMPLES - len(examples)
    if room <= 0 or not more:
        return examples
    return examples + [(line + shift, text) for line, text in more[:room]]


def _all_lines(
    left: list[FutureLine] | None, right: list[FutureLine] | None, shift: int
) -> list[FutureLine] | None:
    if left is None and right is None:
        return None
    return (left or []) + [(line + shift, ts, text) for line, ts, text in right or []]


def _first_by_key(
    left: dict[K, list[Example]], right: dict[K, list[Example]], shift: int
) -> dict[K, list[Example]]:
    joined = dict(left)
    for key, more in right.items():
        joined[key] = _first(joined.get(key, []), more, shift)
    return joined


@dataclass(slots=True)
class Segment:
    """What depends on line order within the bytes [start, end) of one source."""

    start: int
    end: int
    newlines: int = 0
    first_valid: Example | None = None
    first_ts: int | None = None
    last_ts: int | None = None
    backwards: int = 0
    backwards_examples: list[Example] = field(default_factory=list)
    future: int = 0
    future_examples: list[Example] = field(default_factory=list)
    malformed_examples: dict[str, list[Example]] = field(default_factory=dict)
    unknown_examples: dict[bytes, list[Example]] = field(default_factory=dict)
    future_lines: list[FutureLine] | None = None
    """Every line counted in ``future``, only when the mapper is asked for them (``watch``
    judges them again against the file's newest modification time)."""

    def join(self, right: Segment, clock_skew_ns: int) -> Segment:
        """This segment followed directly by ``right`` (``self.end == right.start``)."""
        assert self.end == right.start, (self.end, right.start)
        shift = self.newlines
        backwards, backwards_examples = self.backwards, self.backwards_examples
        if (
            right.first_ts is not None
            and self.last_ts is not None
            and right.first_ts < self.last_ts - clock_skew_ns
        ):
            assert right.first_valid is not None
            backwards += 1
            backwards_examples = _first(backwards_examples, [right.first_valid], shift)
        has_left = self.first_ts is not None
        return Segment(
            start=self.start,
            end=right.end,
            newlines=self.newlines + right.newlines,
            first_valid=self.first_valid if has_left else _shifted(right.first_valid, shift),
            first_ts=self.first_ts if has_left else right.first_ts,
            last_ts=right.last_ts if right.last_ts is not None else self.last_ts,
            backwards=backwards + right.backwards,
            backwards_examples=_first(backwards_examples, right.backwards_examples, shift),
            future=self.future + right.future,
            future_examples=_first(self.future_examples, right.future_examples, shift),
            malformed_examples=_first_by_key(
                self.malformed_examples, right.malformed_examples, shift
            ),
            unknown_examples=_first_by_key(self.unknown_examples, right.unknown_examples, shift),
            future_lines=_all_lines(self.future_lines, right.future_lines, shift),
        )


TIMELINE_BUCKETS = 8192
"""Most buckets a Timeline holds: past it, its buckets are made wider."""

NICE_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
               43200, 86400, 604800, 1209600, 2419200)
"""Bucket widths in seconds a person reads at a glance (up to 4 weeks; then doubled)."""


def bucket_width(window: int, level: int) -> int:
    """Seconds in a Timeline bucket of ``level``: ``window`` at level 0, then each width the
    smallest nice multiple of the one before (at most 12 times it), else twice it. Each width
    divides the next, so buckets of one level are whole buckets of the level below."""
    width = window
    for _ in range(level):
        nice = next((n for n in NICE_WIDTHS if n > width and n % width == 0), None)
        width = nice if nice is not None and nice <= 12 * width else 2 * width
    return width


@dataclass(slots=True)
class Timeline:
    """Valid lines and ERROR/CRITICAL/FATAL lines per bucket of windows, over the whole run.

    A bucket of ``level`` is ``bucket_width(window, level)`` seconds aligned to the UTC epoch
    (key: its start // its width). It never holds more than TIMELINE_BUCKETS buckets: past
    that, every bucket goes up a level. Merging takes the higher level of the two and goes up
    while there are too many, so a timeline is at the lowest level where all its lines fit:
    the same whatever the order of the merges, with every count exact for its bucket.
    """

    window: int = 0
    """The --window in seconds (0: empty, takes the other's on merge)."""
    level: int = 0
    lines: dict[int, int] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, window: int, lines: Mapping[int, int], errors: Mapping[int, int]) -> Timeline:
        """The timeline of lines and errors per window index (no line: the empty timeline)."""
        if not lines:
            return cls()
        if len(lines) > TIMELINE_BUCKETS:
            return _widest_of(window, lines, errors)
        return cls(window, 0, dict(lines), dict(errors))

    @property
    def width(self) -> int:
        """Seconds per bucket."""
        return bucket_width(self.window, self.level) if self.window else 0

    def raised(self, level: int) -> Timeline:
        """This timeline with buckets of ``level`` (>= its own)."""
        if level == self.level or not self.window:
            return Timeline(self.window, level, dict(self.lines), dict(self.errors))
        factor = bucket_width(self.window, level) // self.width
        return Timeline(self.window, level, _rekeyed(self.lines, factor),
                        _rekeyed(self.errors, factor))

    def _fit(self) -> None:
        while len(self.lines) > TIMELINE_BUCKETS:
            wider = self.raised(self.level + 1)
            self.level, self.lines, self.errors = wider.level, wider.lines, wider.errors

    def update(self, other: Timeline) -> None:
        """Add ``other`` into this timeline (same window, or either empty)."""
        if not other.lines:
            return
        if not self.lines:
            self.window, self.level = other.window, other.level
            self.lines, self.errors = dict(other.lines), dict(other.errors)
            return
        if other.window != self.window:
            raise ValueError("timelines of different windows cannot be merged")
        if other.level > self.level:
            wider = self.raised(other.level)
            self.level, self.lines, self.errors = wider.level, wider.lines, wider.errors
        if other.level < self.level:
            other = other.raised(self.level)
        add_counts(self.lines, other.lines)
        add_counts(self.errors, other.errors)
        self._fit()


def _widest_of(window: int, lines: Mapping[int, int], errors: Mapping[int, int]) -> Timeline:
    """``Timeline.of`` for more windows than it holds, in sorted arrays: the level is the first
    whose buckets are few enough (each level's buckets found from the level below's), then the
    counts are summed into them once (a chunk with a line in each of a million windows: a dict
    pass per level would take seconds)."""
    import numpy as np

    def distinct(ascending: Any) -> Any:
        return ascending[np.concatenate(([True], ascending[1:] != ascending[:-1]))]

    level = 0
    buckets = np.sort(np.fromiter(lines.keys(), np.int64, len(lines)))
    while len(buckets) > TIMELINE_BUCKETS:
        level += 1
        step = bucket_width(window, level) // bucket_width(window, level - 1)
        buckets = distinct(buckets // step)  # floor division keeps the order
    factor = bucket_width(window, level) // window

    def summed(counts: Mapping[int, int]) -> dict[int, int]:
        if not counts:
            return {}
        at = np.fromiter(counts.keys(), np.int64, len(counts)) // factor
        values = np.fromiter(counts.values(), np.int64, len(counts))
        order = np.argsort(at, kind="stable")
        at, values = at[order], values[order]
        starts = np.flatnonzero(np.concatenate(([True], at[1:] != at[:-1])))
        return dict(zip(at[starts].tolist(), np.add.reduceat(values, starts).tolist(), strict=True))

    return Timeline(window, level, summed(lines), summed(errors))


def _rekeyed(counts: Mapping[int, int], factor: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for key, n in counts.items():
        wide = key // factor
        out[wide] = out.get(wide, 0) + n
    return out


def add_counts(total: dict[K, int], more: Mapping[K, int]) -> None:
    """Add ``more`` into ``total`` key by key, like ``Counter.update``, in C loops but one.

    ``Counter.update`` adds a mapping with a Python loop over every key; here only the keys the
    two share are summed in Python, the rest are copied by ``dict.update``.
    """
    if not more:
        return
    # dict.update replaces values (Counter.update, which total may be, would add them).
    common = total.keys() & more.keys() if total else ()
    if not common:
        dict.update(total, more)
        return
    sums = {key: total[key] + more[key] for key in common}
    dict.update(total, more)
    dict.update(total, sums)


def _shifted(example: Example | None, shift: int) -> Example | None:
    return None if example is None else (example[0] + shift, example[1])


DEFAULT_SKEW_NS = 300 * 1_000_000_000


def add_segment(segments: list[Segment], new: Segment, clock_skew_ns: int) -> None:
    """Insert ``new`` into a start-sorted list of disjoint segments, joining any it touches.

    An empty range carries nothing and is dropped.
    """
    if new.start == new.end:
        return
    lo, hi = 0, len(segments)
    while lo < hi:
        mid = (lo + hi) // 2
        if segments[mid].start < new.start:
            lo = mid + 1
        else:
            hi = mid
    if (lo > 0 and segments[lo - 1].end > new.start) or (
        lo < len(segments) and segments[lo].start < new.end
    ):
        raise ValueError(f"overlapping byte ranges at {new.start}-{new.end}")
    if lo < len(segments) and segments[lo].start == new.end:
        new = new.join(segments.pop(lo), clock_skew_ns)
    if lo > 0 and segments[lo - 1].end == new.start:
        lo -= 1
        new = segments.pop(lo).join(new, clock_skew_ns)
    segments.insert(lo, new)


@dataclass(slots=True)
class Partial:
    """Raw, combinable totals of some lines. ``Partial()`` is the identity of ``merge``."""

    clock_skew_ns: int | None = None
    """The --clock-skew the segments are joined with; None until a partial that has one merges in."""
    files: int = 0
    bytes_read: int = 0
    lines: int = 0
    valid: int = 0
    blank: int = 0
    outside: int = 0
    """Valid lines left out by --since / --until (counted in ``lines`` only)."""
    levels: Counter[bytes] = field(default_factory=Counter)
    services: Counter[bytes] = field(default_factory=Counter)
    users: Counter[bytes] = field(default_factory=Counter)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    """Valid lines per local hour of day in --tz."""
    min_ts: int | None = None
    max_ts: int | None = None
    malformed: Counter[str] = field(default_factory=Counter)
    unknown_levels: Counter[bytes] = field(default_factory=Counter)
    service_errors: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    """(service, window index) -> ERROR, CRITICAL and FATAL lines."""
    service_others: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    """(service, window index) -> valid lines of the other levels."""
    window_lines: Counter[int] = field(default_factory=Counter)
    """window index -> valid lines."""
    user_lines: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    """(user, window index) -> valid lines."""
    user_errors: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    """(user, window index) -> ERROR, CRITICAL and FATAL lines (the report's error share)."""
    runs: list[Columns] = field(default_factory=list)
    """More (subject, window) counts, as columns (a mapper that writes to the spill folder
    asks the kernel for them so): they add to the four tables above."""
    timeline: Timeline = field(default_factory=Timeline)
    """Valid and error lines over time, in at most TIMELINE_BUCKETS buckets (the report's
    timeline: ``window_lines`` may be millions of windows, and is not kept once digested)."""
    segments: dict[Source, list[Segment]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    """path -> why it could not be read (whole or in part)."""
    digest: Digest | None = None
    """Set by the spilling reducer, which empties the (user, window) and (service, window)
    counters (and the users and services they sum to) and keeps only what the report needs
    from them. Such a partial is finished: it cannot be merged any more."""

    def update(self, other: Partial) -> Partial:
        """Merge ``other`` into this partial in place and return it."""
        if self.digest is not None or other.digest is not None:
            raise ValueError("a digested Partial is finished and cannot be merged")
        self.files += other.files
        self.bytes_read += other.bytes_read
        self.lines += other.lines
        self.valid += other.valid
        self.blank += other.blank
        self.outside += other.outside
        add_counts(self.levels, other.levels)
        add_counts(self.services, other.services)
        add_counts(self.users, other.users)
        self.hours = [a + b for a, b in zip(self.hours, other.hours, strict=True)]
        if other.min_ts is not None and (self.min_ts is None or other.min_ts < self.min_ts):
            self.min_ts = other.min_ts
        if other.max_ts is not None and (self.max_ts is None or other.max_ts > self.max_ts):
            self.max_ts = other.max_ts
        add_counts(self.malformed, other.malformed)
        add_counts(self.unknown_levels, other.unknown_levels)
        add_counts(self.service_errors, other.service_errors)
        add_counts(self.service_others, other.service_others)
        add_counts(self.window_lines, other.window_lines)
        add_counts(self.user_lines, other.user_lines)
        add_counts(self.user_errors, other.user_errors)
        self.runs += other.runs
        self.timeline.update(other.timeline)
        if self.clock_skew_ns is None:
            self.clock_skew_ns = other.clock_skew_ns
        skew = DEFAULT_SKEW_NS if self.clock_skew_ns is None else self.clock_skew_ns
        for source, segments in other.segments.items():
            mine = self.segments.setdefault(source, [])
            for segment in segments:
                add_segment(mine, segment, skew)
        for path, reason in other.failures.items():
            self.failures.setdefault(path, reason)
            self.failures[path] = min(self.failures[path], reason)
        return self

    def take_tables(self) -> Tables:
        """Move the (subject, window) counters out, leaving empty ones."""
        tables = Tables(self.user_lines, self.service_errors, self.service_others, self.user_errors)
        self.user_lines, self.service_errors, self.service_others = Counter(), Counter(), Counter()
        self.user_errors = Counter()
        return tables

    def take_runs(self) -> list[Columns]:
        """Move the column runs out."""
        runs, self.runs = self.runs, []
        return runs

    def retain_unknown(self, keep: Collection[bytes]) -> None:
        """Forget the counts and examples of the unknown level tokens that are not in ``keep``."""
        for token in [t for t in self.unknown_levels if t not in keep]:
            del self.unknown_levels[token]
        for segments in self.segments.values():
            for segment in segments:
                examples = segment.unknown_examples
                if any(t not in keep for t in examples):
                    segment.unknown_examples = {t: e for t, e in examples.items() if t in keep}


def merge(a: Partial, b: Partial) -> Partial:
    """A new partial holding both ``a`` and ``b``; neither argument changes."""
    return copy_partial(a).update(b)


def copy_partial(p: Partial) -> Partial:
    """A copy that shares nothing mutable with ``p``."""
    out = Partial(clock_skew_ns=p.clock_skew_ns)
    out.update(p)
    return out
