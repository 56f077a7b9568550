"""The oracle: a deliberately plain second reading of the documented rules (docs/), one line at a time.

Nothing here comes from ``mapreduce_logs`` except ``to_json``-compatible output (we serialise
with ``json.dumps`` and check elsewhere that it agrees). Every file is read whole, split on
``b"\\n"``, and each line is classified by walking the rules of docs/input.md in order.
It is slow and simple on purpose: when it disagrees with the engine, the docs decide.

Choices the spec leaves open follow the engine, and are listed here so they are visible:
- an example's text is the raw line (a trailing ``\\r`` included), decoded with replacement;
- ``malformed_lines`` anomalies are sorted by reason name, ``unknown_level`` by the upper-cased
  token's bytes, the per-file kinds by file path, the window kinds by window start then subject;
- ``counts`` lists all six kinds;
- severities: line-level kinds by share of all lines (< 0.1% info, < 1% warning, else
  critical); window kinds by the peak of observed / threshold (< 1.5 info, < 5 warning, else
  critical), for user_burst the smaller of that and the run's lines / the minimum lines;
- error_spike and user_burst follow the rules written in the docstring of
  ``mapreduce_logs/anomalies.py`` (coded again here from the prose);
- ``--tz``: an instant in year 1 or 9999 is looked up 400 years nearer (same calendar, same
  rule); a --since / --until wall time that occurs twice is its first occurrence, one that does
  not occur is read with the offset in force before the change (Python's ``fold=0``);
- standard input (PATH ``-``) is given to ``documents`` as bytes, with its "modification time".
"""

from __future__ import annotations

import bisect
import datetime
import gzip
import json
import os
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

WHITESPACE = b" \t\n\r\x0b\x0c"
"""ASCII whitespace as ``bytes.split()`` knows it."""

LEVEL_NAMES = {
    "TRACE": "TRACE",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "NOTICE": "NOTICE",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
    "FATAL": "FATAL",
}
REASONS = ["too_long", "too_few_fields", "bad_timestamp", "unknown_level", "bad_encoding"]
KINDS = [
    "malformed_lines",
    "unknown_level",
    "time_went_backwards",
    "future_timestamp",
    "error_spike",
    "user_burst",
]
LONGEST = 65_536
BILLION = 1_000_000_000


@dataclass(frozen=True)
class Options:
    """The knobs that change what a run computes (names as in docs/cli.md)."""

    top: int = 10
    peak_hours: int = 3
    window: int = 60
    clock_skew: int = 300
    spike_factor: float = 5.0
    spike_min_errors: int = 20
    burst_factor: float = 5.0
    burst_min_lines: int = 20
    tz: str = "UTC"
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class Line:
    """One classified line: kind is "blank", "valid" or "malformed"."""

    kind: str
    reason: str = ""
    token: bytes = b""
    seconds: int = 0
    nanos: int = 0
    level: str = ""
    service: bytes = b""
    user: bytes = b""

    @property
    def instant(self) -> int:
        """UTC nanoseconds since 1970."""
        return self.seconds * BILLION + self.nanos


# --- section 1: one line ---------------------------------------------------------------------


def is_leap(year: int) -> bool:
    if year % 400 == 0:
        return True
    if year % 100 == 0:
        return False
    return year % 4 == 0


def days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if is_leap(year) else 28
    if month in (4, 6, 9, 11):
        return 30
    return 31


def _year_starts() -> list[int]:
    starts = [0]
    for year in range(10_002):
        starts.append(starts[-1] + (366 if is_leap(year) else 365))
    return starts


YEAR_START = _year_starts()
"""YEAR_START[y]: days from 0000-01-01 to y-01-01, counted year by year."""


def day_number(year: int, month: int, day: int) -> int:
    """Days since 0000-01-01 (proleptic Gregorian, year 0 is a leap year)."""
    total = YEAR_START[year]
    for m in range(1, month):
        total += days_in_month(year, m)
    return total + day - 1


EPOCH_DAY = day_number(1970, 1, 1)
FIRST_SECOND = (day_number(1, 1, 1) - EPOCH_DAY) * 86_400
AFTER_LAST_SECOND = (day_number(10_000, 1, 1) - EPOCH_DAY) * 86_400


def _digits(token: bytes) -> bool:
    return len(token) > 0 and all(48 <= c <= 57 for c in token)


def read_timestamp(token: bytes) -> tuple[int, int] | None:
    """(UTC seconds since 1970, nanoseconds) of a valid timestamp token, else None."""
    if len(token) < 19:
        return None
    date, sep, clock, rest = token[:10], token[10:11], token[11:19], token[19:]
    if sep not in (b"T", b"t"):
        return None
    if date[4:5] != b"-" or date[7:8] != b"-" or clock[2:3] != b":" or clock[5:6] != b":":
        return None
    parts = [date[0:4], date[5:7], date[8:10], clock[0:2], clock[3:5], clock[6:8]]
    if not all(_digits(p) for p in parts):
        return None
    year, month, day, hour, minute, second = (int(p) for p in parts)
    nanos = 0
    if rest.startswith(b"."):
        n = 1
        while n < len(rest) and 48 <= rest[n] <= 57:
            n += 1
        fraction = rest[1:n]
        if not 1 <= len(fraction) <= 9:
            return None
        nanos = int(fraction + b"0" * (9 - len(fraction)))
        rest = rest[n:]
    offset = 0
    if rest in (b"", b"Z", b"z"):
        pass
    elif rest[:1] in (b"+", b"-"):
        body = rest[1:]
        if len(body) == 5 and body[2:3] == b":":
            hh, mm = body[:2], body[3:]
        elif len(body) == 4:
            hh, mm = body[:2], body[2:]
        else:
            return None
        if not (_digits(hh) and _digits(mm)):
            return None
        if int(hh) > 23 or int(mm) > 59:
            return None
        offset = int(hh) * 3600 + int(mm) * 60
        if rest[:1] == b"-":
            offset = -offset
    else:
        return None
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month(year, month):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    local = (day_number(year, month, day) - EPOCH_DAY) * 86_400 + hour * 3600 + minute * 60
    utc = local + second - offset
    if not FIRST_SECOND <= utc < AFTER_LAST_SECOND:
        return None
    return utc, nanos


# --- section 2: --tz, --since, --until -------------------------------------------------------

FOUR_CENTURIES = 146_097 * 86_400
"""Seconds in 400 Gregorian years: after them the calendar repeats, weekdays included."""


def fixed_offset(tz: str) -> int | None:
    """Seconds east of UTC of a ``+HH:MM`` / ``-HHMM`` zone, else None."""
    if len(tz) not in (5, 6) or tz[0] not in "+-":
        return None
    body = tz[1:]
    if len(body) == 5:
        if body[2] != ":":
            return None
        body = body[:2] + body[3:]
    if not body.isdigit() or not body.isascii():
        return None
    seconds = int(body[:2]) * 3600 + int(body[2:]) * 60
    return -seconds if tz[0] == "-" else seconds


def near_the_ends(seconds: int) -> int:
    """``seconds`` moved 400 years when it lies in year 1 or year 9999 (datetime ends there)."""
    if seconds < FIRST_SECOND + 366 * 86_400:
        return seconds + FOUR_CENTURIES
    if seconds >= AFTER_LAST_SECOND - 366 * 86_400:
        return seconds - FOUR_CENTURIES
    return seconds


def local_hour(seconds: int, tz: str) -> int:
    """Hour of day on a wall clock in ``tz`` at the UTC second ``seconds``."""
    if tz == "UTC":
        return seconds % 86_400 // 3600
    offset = fixed_offset(tz)
    if offset is not None:
        return (seconds + offset) % 86_400 // 3600
    utc = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    moment = utc + datetime.timedelta(seconds=near_the_ends(seconds))
    return moment.astimezone(zoneinfo.ZoneInfo(tz)).hour


def instant_of(text: str, tz: str) -> int:
    """UTC nanoseconds of a --since / --until TIME; ValueError when it is not one."""
    raw = text.encode()
    if len(raw) == 10:
        raw += b"T00:00:00"  # a date: its midnight
    when = read_timestamp(raw)
    if when is None:
        raise ValueError(text)
    seconds, nanos = when
    if raw[19:].lstrip(b".0123456789"):  # it has its own offset
        return seconds * BILLION + nanos
    offset = fixed_offset(tz)
    if tz == "UTC":
        offset = 0
    if offset is None:
        moved = near_the_ends(seconds)
        wall = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=moved)
        delta = wall.replace(tzinfo=zoneinfo.ZoneInfo(tz), fold=0).utcoffset()
        assert delta is not None
        offset = int(delta.total_seconds())
    return (seconds - offset) * BILLION + nanos


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def classify(line: bytes) -> Line:
    """docs/input.md, rule after rule, for one line without its ``\\n``."""
    if all(c in WHITESPACE for c in line):
        return Line("blank")
    if len(line) > LONGEST:
        return Line("malformed", "too_long")
    fields = line.split()
    if len(fields) < 4:
        return Line("malformed", "too_few_fields")
    when = read_timestamp(fields[0])
    if when is None:
        return Line("malformed", "bad_timestamp")
    token = fields[1].upper()
    level = LEVEL_NAMES.get(token.decode("latin-1"))
    if level is None:
        return Line("malformed", "unknown_level", token=token)
    if not (_utf8(fields[2]) and _utf8(fields[3])):
        return Line("malformed", "bad_encoding")
    return Line("valid", seconds=when[0], nanos=when[1], level=level,
                service=fields[2], user=fields[3])


# --- input -----------------------------------------------------------------------------------


def skipped(name: str) -> bool:
    return name.startswith(".") or name.endswith(("~", ".tmp", ".part", ".swp"))


def list_folder(folder: str) -> list[str]:
    """The files a folder PATH means (not recursive), in sorted path order."""
    names = [n for n in os.listdir(folder) if not skipped(n)]
    paths = [os.path.join(folder, n) for n in names]
    return sorted(p for p in paths if os.path.isfile(p))


def read_lines(path: str, stdin: bytes = b"") -> tuple[int, list[bytes]]:
    """(uncompressed size, lines without their newline) of a file, read whole; ``-`` is
    standard input, given as ``stdin`` (never decompressed)."""
    if path == "-":
        data = stdin
    elif path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            data = f.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the text after the last \n is a line only when it is not empty
    return len(data), lines


# --- section 3 and 4 -------------------------------------------------------------------------


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def shown(path: str) -> str:
    """A path as JSON shows it: its bytes decoded as UTF-8, invalid bytes replaced (a Linux file
    name need not be UTF-8; Python hands it over with surrogate escapes)."""
    return text(os.fsencode(path))


def utc_text(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``; a window may start in year 0000 or end in year 10000."""
    day, rem = divmod(seconds, 86_400)
    day += EPOCH_DAY
    year = bisect.bisect_right(YEAR_START, day) - 1
    day -= YEAR_START[year]
    month = 1
    while day >= days_in_month(year, month):
        day -= days_in_month(year, month)
        month += 1
    clock = f"{rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}"
    return f"{year:04d}-{month:02d}-{day + 1:02d}T{clock}Z"


def hour_label(h: int) -> str:
    return f"{h:02d}:00-{(h + 1) % 24:02d}:00"


def ranked(counts: Counter[Any], key: Any = None) -> list[Any]:
    """Keys by count descending, then by ``key(k)`` ascending."""
    order = key or (lambda k: k)
    return sorted(counts, key=lambda k: (-counts[k], order(k)))


def line_severity(count: int, lines: int) -> str:
    share = count / lines if lines else 1.0
    if share < 0.001:
        return "info"
    if share < 0.01:
        return "warning"
    return "critical"


def window_severity(excess: float) -> str:
    if excess < 1.5:
        return "info"
    if excess < 5:
        return "warning"
    return "critical"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return 0.0
    if n % 2:
        return ordered[n // 2]
    return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@dataclass
class Tally:
    """Everything counted while reading the lines in order."""

    files: int = 0
    nbytes: int = 0
    lines: int = 0
    valid: int = 0
    blank: int = 0
    outside: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    services: Counter[bytes] = field(default_factory=Counter)
    users: Counter[bytes] = field(default_factory=Counter)
    hours: Counter[int] = field(default_factory=Counter)
    first: int | None = None
    last: int | None = None
    malformed: Counter[str] = field(default_factory=Counter)
    malformed_examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unknown: Counter[bytes] = field(default_factory=Counter)
    unknown_examples: dict[bytes, list[dict[str, Any]]] = field(default_factory=dict)
    backwards: Counter[str] = field(default_factory=Counter)
    backwards_examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    future: Counter[str] = field(default_factory=Counter)
    future_examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # per window of --window seconds
    errors: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    others: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    window_lines: Counter[int] = field(default_factory=Counter)
    user_lines: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    user_errors: Counter[bytes] = field(default_factory=Counter)
    """ERROR, CRITICAL and FATAL lines per user (report.html's error share)."""


def _example(store: dict[Any, list[dict[str, Any]]], key: Any, path: str, number: int,
             raw: bytes) -> None:
    examples = store.setdefault(key, [])
    if len(examples) < 5:
        examples.append({"file": shown(path), "line": number, "text": text(raw)[:200]})


def tally(paths: list[str], options: Options, stdin: bytes = b"", stdin_mtime_ns: int = 0
          ) -> Tally:
    t = Tally()
    skew = options.clock_skew * BILLION
    since = None if options.since is None else instant_of(options.since, options.tz)
    until = None if options.until is None else instant_of(options.until, options.tz)
    for path in paths:
        size, lines = read_lines(path, stdin)
        mtime = stdin_mtime_ns if path == "-" else os.stat(path).st_mtime_ns
        t.files += 1
        t.nbytes += size
        previous: int | None = None
        for number, raw in enumerate(lines, start=1):
            line = classify(raw)
            t.lines += 1
            if line.kind == "blank":
                t.blank += 1
                continue
            if line.kind == "malformed":
                t.malformed[line.reason] += 1
                _example(t.malformed_examples, line.reason, path, number, raw)
                if line.reason == "unknown_level":
                    t.unknown[line.token] += 1
                    _example(t.unknown_examples, line.token, path, number, raw)
                continue
            if (since is not None and line.instant < since) or (
                until is not None and line.instant >= until
            ):
                t.outside += 1
                continue
            t.valid += 1
            t.levels[line.level] += 1
            t.services[line.service] += 1
            t.users[line.user] += 1
            t.hours[local_hour(line.seconds, options.tz)] += 1
            if t.first is None or line.instant < t.first:
                t.first = line.instant
            if t.last is None or line.instant > t.last:
                t.last = line.instant
            if previous is not None and previous - line.instant > skew:
                t.backwards[path] += 1
                _example(t.backwards_examples, path, path, number, raw)
            previous = line.instant
            if line.instant - mtime > skew:
                t.future[path] += 1
                _example(t.future_examples, path, path, number, raw)
            window = line.seconds // options.window
            if line.level in ("ERROR", "CRITICAL", "FATAL"):
                t.errors[(line.service, window)] += 1
                t.user_errors[line.user] += 1
            else:
                t.others[(line.service, window)] += 1
            t.window_lines[window] += 1
            t.user_lines[(line.user, window)] += 1
    return t


def top_errors(t: Tally, options: Options) -> tuple[dict[str, int], dict[str, int]]:
    """The error lines of each top service and of each top user, by name (report.html)."""
    service_errors: Counter[bytes] = Counter()
    for (service, _), n in t.errors.items():
        service_errors[service] += n
    services = ranked(t.services, text)[: options.top]
    users = ranked(t.users, text)[: options.top]
    return ({text(s): service_errors[s] for s in services},
            {text(u): t.user_errors[u] for u in users})


def summary(t: Tally, options: Options) -> dict[str, Any]:
    services = ranked(t.services, text)[: options.top]
    users = ranked(t.users, text)[: options.top]
    busy = [h for h in range(24) if t.hours[h]]
    peaks = sorted(busy, key=lambda h: (-t.hours[h], h))[: options.peak_hours]
    time_range = None
    if t.first is not None and t.last is not None:
        time_range = {"first": utc_text(t.first // BILLION), "last": utc_text(t.last // BILLION)}
    return {
        "log_levels": {name: t.levels[name] for name in ranked(t.levels)},
        "top_services": [text(s) for s in services],
        "top_users": [text(u) for u in users],
        "peak_hours": [hour_label(h) for h in peaks],
        "service_counts": {text(s): t.services[s] for s in services},
        "user_counts": {text(u): t.users[u] for u in users},
        "hourly_counts": {hour_label(h): t.hours[h] for h in range(24)},
        "time_zone": options.tz,
        "distinct_services": len(t.services),
        "distinct_users": len(t.users),
        "time_range": time_range,
        "totals": {
            "files": t.files,
            "bytes": t.nbytes,
            "lines": t.lines,
            "valid": t.valid,
            "blank": t.blank,
            "malformed": sum(t.malformed.values()),
            "outside": t.outside,
        },
        "malformed": {reason: t.malformed[reason] for reason in REASONS},
    }


def _runs(windows: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for w in sorted(windows):
        if runs and runs[-1][-1] + 1 == w:
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


def _window_anomaly(kind: str, options: Options, subject_key: str, subject: bytes,
                    count_key: str, run: list[int], observed: dict[int, int],
                    expected: dict[int, float], threshold: dict[int, float]) -> dict[str, Any]:
    peak = max(observed[w] / threshold[w] for w in run)
    return {
        "type": kind,
        "severity": window_severity(peak),
        subject_key: text(subject),
        "window_start": utc_text(run[0] * options.window),
        "window_end": utc_text((run[-1] + 1) * options.window),
        count_key: sum(observed[w] for w in run),
        "baseline": round(sum(expected[w] for w in run) / len(run), 2),
    }


def trim_count(n: int) -> int:
    """A tenth of n windows, rounded up, but never all of them."""
    return min((n + 9) // 10, max(n - 1, 0))


def keep_after_trim(counts: dict[int, int], drop: int) -> list[int]:
    """The windows left after dropping the `drop` with the largest counts (earlier ones first
    on ties)."""
    order = sorted(counts, key=lambda w: (-counts[w], w))
    return order[drop:]


def weighted_median_ratio(errors: dict[int, int], others: dict[int, int]) -> float:
    """The smallest errors / others ratio of a window such that the windows whose ratio is at
    most it hold at least half of all the other lines; windows without other lines are left
    out; 0 when no window has other lines."""
    with_others = [w for w in others if others[w] > 0]
    total = sum(others[w] for w in with_others)
    candidates = []
    for w in with_others:
        ratio = Fraction(errors[w], others[w])
        below = sum(others[v] for v in with_others if Fraction(errors[v], others[v]) <= ratio)
        if 2 * below >= total:
            candidates.append(ratio)
    return float(min(candidates)) if candidates else 0.0


def error_spikes(t: Tally, options: Options) -> list[tuple[int, bytes, dict[str, Any]]]:
    """m = the median of the service's errors over its windows; the threshold of a window under
    a ratio x = max(min errors, factor * max(x * other lines, m)). r0 = the traffic-weighted
    median ratio; windows reaching their threshold under r0 are suspect. r = errors / other lines
    summed over the windows that are not suspect, less the tenth of all windows (rounded up,
    never all that are left) with most errors; expected = max(r * other lines, m); flagged when
    errors reach the threshold under r."""
    found = []
    for service in sorted(t.services):
        windows = sorted({w for (s, w) in list(t.errors) + list(t.others) if s == service})
        errors = {w: t.errors[(service, w)] for w in windows}
        others = {w: t.others[(service, w)] for w in windows}
        usual = median([float(errors[w]) for w in windows])

        def threshold_under(x: float, lines: int, usual: float = usual) -> float:
            return max(options.spike_min_errors, options.spike_factor * max(x * lines, usual))

        robust = weighted_median_ratio(errors, others)
        suspect = [w for w in windows if errors[w] >= threshold_under(robust, others[w])]
        rest = {w: errors[w] for w in windows if w not in suspect}
        kept = keep_after_trim(rest, min((len(windows) + 9) // 10, max(len(rest) - 1, 0)))
        kept_others = sum(others[w] for w in kept)
        rate = sum(errors[w] for w in kept) / kept_others if kept_others else 0.0
        expected = {w: max(rate * others[w], usual) for w in windows}
        threshold = {w: threshold_under(rate, others[w]) for w in windows}
        flagged = [w for w in windows if errors[w] >= threshold[w]]
        for run in _runs(flagged):
            found.append((run[0] * options.window, service, _window_anomaly(
                "error_spike", options, "service", service, "errors", run, errors, expected,
                threshold)))
    return found


def weighted_median_share(lines: dict[int, int], window_lines: dict[int, int]) -> float:
    """The smallest share lines / window lines of a window (0 where the user has none) such
    that the windows where the user's share is at most it hold at least half of everyone else's
    lines (window lines - the user's lines)."""
    theirs = {w: window_lines[w] - lines[w] for w in lines}
    share = {w: Fraction(lines[w], window_lines[w]) for w in lines}
    total = sum(theirs.values())
    candidates = [share[w] for w in lines
                  if 2 * sum(theirs[v] for v in lines if share[v] <= share[w]) >= total]
    return float(min(candidates))


def user_bursts(t: Tally, options: Options) -> list[tuple[int, bytes, dict[str, Any]]]:
    """Over all windows with traffic. The threshold of a user's window under a share x and a
    usual rate y = max(1, factor * max(min(x, 0.99) * lines of everyone else there, y)).

    Plain pass: drop the user's tenth (rounded up, never all) of busiest windows; share = its kept
    lines / all lines of those kept windows, usual = kept lines / kept window count.
    Robust pass: x0 = its traffic-weighted median share, m = the median over the windows of its
    local mean (its lines in windows w-2 .. w+2, with traffic or not, / 5); windows reaching their threshold under (x0, m), in a run of adjacent such windows
    with at least min lines in all, are suspect; share and usual as in the plain pass but over the
    windows that are not suspect, dropping the tenth of all windows (rounded up, never all that
    are left) with most lines.
    The user's share and usual are the smaller of the two passes'. S = the largest share, capped
    at 0.99. Expected lines in a window = max(S * lines of everyone else there, usual); flagged
    when lines >= max(1, factor * expected). A run of adjacent flagged windows is reported when
    its lines add up to at least min lines; its severity goes by min(peak of lines / threshold,
    run lines / min lines)."""
    windows = sorted(t.window_lines)
    drop = trim_count(len(windows))
    share = 0.0
    usual: dict[bytes, float] = {}
    for user in sorted(t.users):
        lines = {w: t.user_lines[(user, w)] for w in windows}

        def rate(kept: list[int], lines: dict[int, int] = lines) -> tuple[float, float]:
            kept_lines = sum(lines[w] for w in kept)
            kept_all = sum(t.window_lines[w] for w in kept)
            return (kept_lines / kept_all if kept_all else 0.0,
                    kept_lines / len(kept) if kept else 0.0)

        plain_share, plain_usual = rate(keep_after_trim(lines, drop))
        x0 = weighted_median_share(lines, dict(t.window_lines))
        m = median([sum(t.user_lines[(user, v)] for v in range(w - 2, w + 3)) / 5
                    for w in windows])
        first = [w for w in windows if lines[w] >= max(1.0, options.burst_factor * max(
            min(x0, 0.99) * (t.window_lines[w] - lines[w]), m))]
        suspect = [w for run in _runs(first) for w in run
                   if sum(lines[v] for v in run) >= options.burst_min_lines]
        rest = {w: lines[w] for w in windows if w not in suspect}
        robust_share, robust_usual = rate(
            keep_after_trim(rest, min((len(windows) + 9) // 10, max(len(rest) - 1, 0))))
        usual[user] = min(plain_usual, robust_usual)
        share = max(share, min(plain_share, robust_share))
    share = min(share, 0.99)
    found = []
    for user in sorted(t.users):
        lines = {w: t.user_lines[(user, w)] for w in windows}
        expected = {w: max(share * (t.window_lines[w] - lines[w]), usual[user]) for w in windows}
        threshold = {w: max(1.0, options.burst_factor * expected[w]) for w in windows}
        flagged = [w for w in windows if lines[w] and lines[w] >= threshold[w]]
        for run in _runs(flagged):
            total = sum(lines[w] for w in run)
            if total < options.burst_min_lines:
                continue
            anomaly = _window_anomaly(
                "user_burst", options, "user", user, "lines", run, lines, expected, threshold)
            peak = max(lines[w] / threshold[w] for w in run)
            anomaly["severity"] = window_severity(min(peak, total / options.burst_min_lines))
            found.append((run[0] * options.window, user, anomaly))
    return found


def anomalies(t: Tally, options: Options) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for reason in sorted(t.malformed):
        out.append({
            "type": "malformed_lines",
            "severity": line_severity(t.malformed[reason], t.lines),
            "reason": reason,
            "count": t.malformed[reason],
            "examples": t.malformed_examples[reason],
        })
    for token in sorted(t.unknown):
        out.append({
            "type": "unknown_level",
            "severity": line_severity(t.unknown[token], t.lines),
            "level": text(token),
            "count": t.unknown[token],
            "examples": t.unknown_examples[token],
        })
    for kind, counts, examples in (
        ("time_went_backwards", t.backwards, t.backwards_examples),
        ("future_timestamp", t.future, t.future_examples),
    ):
        for path in sorted(counts):
            out.append({
                "type": kind,
                "severity": line_severity(counts[path], t.lines),
                "file": shown(path),
                "count": counts[path],
                "examples": examples[path],
            })
    for found in (error_spikes(t, options), user_bursts(t, options)):
        out.extend(body for _, _, body in sorted(found, key=lambda f: (f[0], f[1])))
    kinds = {kind: sum(1 for a in out if a["type"] == kind) for kind in KINDS}
    return {"anomalies": out, "counts": kinds}


def dump(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON, 2-space indent, keys in order, newline at the end."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def documents(paths: list[str], options: Options | None = None, stdin: bytes = b"",
              stdin_mtime_ns: int = 0) -> tuple[bytes, bytes]:
    """summary.json and anomalies.json, as bytes, for ``paths`` read in the given order (``-``
    is ``stdin``, modified at ``stdin_mtime_ns``)."""
    options = options or Options()
    t = tally(paths, options, stdin, stdin_mtime_ns)
    return dump(summary(t, options)), dump(anomalies(t, options))
