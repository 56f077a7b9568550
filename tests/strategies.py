"""Hypothesis strategies for hostile log input: lines, files and whole runs.

Everything is built with ``.map`` from small parts, never filtered, so shrinking stays fast and
every hostile case of docs/input.md and docs/cli.md has a fair chance in every run.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

SCALE = float(os.environ.get("MAPREDUCE_LOGS_TEST_SCALE", "1"))
"""Multiplies every property test's example count: 10 for a deep hunt, 0.2 for a smoke run."""

DEADLINE = dt.timedelta(seconds=5)
"""Hypothesis deadline of the pure property tests (one example takes milliseconds): a loop
gone quadratic fails on its example, by name, instead of eating the per-test timeout. Not for
tests that fork or watch (their time says nothing about correctness)."""


def examples(n: int) -> int:
    """``n`` examples, scaled by MAPREDUCE_LOGS_TEST_SCALE."""
    return max(1, round(n * SCALE))


NOON = 1_753_185_600
"""2025-07-22T12:00:00Z, the middle of the "near" timestamps."""

_NO_WHITESPACE = bytes.maketrans(b" \t\n\r\x0b\x0c", b"______")


def _solid(raw: bytes) -> bytes:
    """``raw`` with its whitespace replaced, so it stays one field."""
    return raw.translate(_NO_WHITESPACE) or b"_"


def _no_newline(raw: bytes) -> bytes:
    return raw.replace(b"\n", b" ")


# --- whitespace -------------------------------------------------------------------------------

separators = st.sampled_from([b" ", b" ", b" ", b"  ", b"\t", b" \t ", b"\x0b", b"\x0c", b"   \t"])
leading = st.sampled_from([b"", b"", b"", b"", b" ", b"\t", b"\x0c ", b"\x0b"])
trailing = st.sampled_from([b"", b"", b"", b"\r", b"\r", b" ", b"\t", b" \r", b"\x0c"])

# --- timestamps -------------------------------------------------------------------------------


def _two(n: int) -> str:
    return f"{n:02d}"


near_clock = st.tuples(
    st.just(2025), st.just(7), st.just(22), st.sampled_from([11, 12, 12, 13]),
    st.sampled_from([0, 5, 5, 10, 55]) | st.integers(0, 59),
    st.sampled_from([0, 0, 1, 59]) | st.integers(0, 59),
)
"""Realistic instants around NOON, so clock checks and hours collide."""

edge_clock = st.tuples(
    st.sampled_from([0, 1, 2, 1900, 1969, 1970, 2000, 2023, 2024, 2025, 2100, 9998, 9999])
    | st.integers(0, 9999),
    st.integers(0, 13), st.integers(0, 32), st.integers(0, 24), st.integers(0, 60),
    st.integers(0, 60),
)
"""Any digits in range of the format, many of them not a real date or time."""

leap_day = st.tuples(
    st.sampled_from([0, 4, 100, 1900, 2000, 2023, 2024, 2100, 2400, 9996, 9999]), st.just(2),
    st.sampled_from([28, 29, 29, 30]), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
)

year_edge = st.sampled_from([
    (0, 12, 31, 23, 30, 0), (0, 12, 31, 22, 59, 59), (1, 1, 1, 0, 0, 0), (1, 1, 1, 0, 30, 0),
    (9999, 12, 31, 23, 59, 59), (9999, 12, 31, 23, 30, 0), (9999, 12, 31, 0, 0, 0),
])
"""Instants whose year the offset may move out of 0001-9999 or back in."""

fraction = st.one_of(
    st.just(""), st.just(""),
    st.text(alphabet="0123456789", min_size=1, max_size=10).map(lambda d: "." + d),
)

offset = st.one_of(
    st.sampled_from(["", "", "Z", "z", "+00:00", "-00:00", "+02:00", "-0100", "+0530"]),
    st.tuples(
        st.sampled_from("+-"), st.sampled_from([0, 1, 5, 12, 14, 23, 23, 24, 99]),
        st.sampled_from([0, 0, 30, 45, 59, 60]), st.booleans(),
    ).map(lambda t: f"{t[0]}{_two(t[1])}{':' if t[3] else ''}{_two(t[2])}"),
)

garbage_timestamp = st.sampled_from([
    b"2025-07-22", b"12:00:00", b"2025-7-22T12:00:00Z", b"20250722T120000Z",
    b"2025-07-22T12:00:00+5:00", b"2025-07-22T12:00:00.Z", b"2025-07-22T12:00:00ZZ",
    b"2025-07-22T12:00:00+05", b"2025-07-22T12:00:00+05:0", b"10000-01-01T00:00:00Z",
    b"2025-07-22T12:00:00,5Z", b"-2025-07-22T12:00:00Z", b"2025-07-22_12:00:00Z",
    b"2025-07-22T12:00Z", b"2025-07-22T12:00:00 Z", "\uff12\uff10\uff12\uff15-07-22T12:00:00Z".encode(),
    b"2025-07-22T12:00:00\xff", b"2025-07-22T1a:00:00Z", b"2025-07-22T12:00:00UTC",
])


def _timestamp(parts: tuple[tuple[int, int, int, int, int, int], str, str, str]) -> bytes:
    (y, mo, d, h, mi, s), sep, frac, off = parts
    return f"{y:04d}-{_two(mo)}-{_two(d)}{sep}{_two(h)}:{_two(mi)}:{_two(s)}{frac}{off}".encode()


timestamps = st.one_of(
    st.tuples(near_clock, st.sampled_from("TTTt"), fraction, offset).map(_timestamp),
    st.tuples(near_clock, st.sampled_from("Tt"), fraction, st.sampled_from(["Z", ""]))
    .map(_timestamp),
    st.tuples(edge_clock, st.sampled_from("Tt"), fraction, offset).map(_timestamp),
    st.tuples(leap_day, st.just("T"), fraction, offset).map(_timestamp),
    st.tuples(leap_day, st.just("T"), st.just(""), st.just("Z")).map(_timestamp),
    st.tuples(year_edge, st.sampled_from("Tt"), fraction, offset).map(_timestamp),
    st.tuples(year_edge, st.just("T"), st.just(""), offset).map(_timestamp),
    garbage_timestamp,
)
"""Timestamp tokens, valid and not, with every form docs/input.md names."""

# --- other fields -----------------------------------------------------------------------------

levels = st.sampled_from([
    b"INFO", b"INFO", b"info", b"Info", b"WARN", b"warn", b"WARNING", b"Warning", b"ERROR",
    b"error", b"ERROR", b"CRITICAL", b"critical", b"FATAL", b"fatal", b"DEBUG", b"debug",
    b"TRACE", b"NOTICE", b"notice", b"VERBOSE", b"verbose", b"WARNINGS", b"ERR", b"inf0",
    b"\xff", "ÉRROR".encode(), "info\u0131".encode(), b"-",
])

names = st.one_of(
    st.sampled_from([
        b"auth", b"auth", b"Auth", b"payment", b"payment-svc", b"db", b"u1", b"u2", b"u3",
        b"user123", "Zürich".encode(), "日本語".encode(), "ünï".encode(), "😀".encode(),
        b"svc\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"user\xe9", b"\xf4\x90\x80\x80",
    ]),
    st.binary(min_size=1, max_size=4).map(_solid),
)

messages = st.one_of(
    st.sampled_from([
        b"", b"ok", b"hello world", b"a\tb  c\x0bd", b"\xff\xfe bad bytes", "ça va".encode(),
        b"x" * 300, "é".encode() * 250, "日本".encode() * 120, b"\xe6\x97" * 130,
    ]),
    st.binary(max_size=30).map(_no_newline),
)


def _join(parts: tuple[bytes, list[bytes], list[bytes], bytes]) -> bytes:
    lead, fields, seps, trail = parts
    out = lead
    for i, f in enumerate(fields):
        out += (seps[i - 1] if i else b"") + f
    return out + trail


structured_lines = st.tuples(
    leading,
    st.tuples(timestamps, levels, names, names, messages).map(list),
    st.lists(separators, min_size=4, max_size=4),
    trailing,
).map(lambda t: _join((t[0], t[1] if t[1][4] else t[1][:4], t[2], t[3])))
"""TIMESTAMP LEVEL SERVICE USER [MESSAGE], each part hostile in its own way."""

valid_offset = st.one_of(
    st.sampled_from(["", "", "Z", "z", "+00:00", "-00:00", "+02:00", "-0100", "+0530"]),
    st.tuples(st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59), st.booleans())
    .map(lambda t: f"{t[0]}{_two(t[1])}{':' if t[3] else ''}{_two(t[2])}"),
)
valid_fraction = st.one_of(
    st.just(""), st.text(alphabet="0123456789", min_size=1, max_size=9).map(lambda d: "." + d)
)
valid_names = st.sampled_from([
    b"auth", b"auth", b"auth", b"Auth", b"payment", b"payment-svc", b"db", b"u1", b"u1", b"u2",
    b"u3", b"user123", "Zürich".encode(), "日本語".encode(), "😀".encode(), b"z",
])
valid_levels = st.sampled_from([
    b"INFO", b"INFO", b"info", b"WARN", b"WARNING", b"warning", b"ERROR", b"error", b"Error",
    b"CRITICAL", b"FATAL", b"fatal", b"DEBUG", b"TRACE", b"NOTICE",
])

clean_lines = st.tuples(
    leading,
    st.tuples(
        st.tuples(near_clock, st.sampled_from("TTTt"), valid_fraction, valid_offset)
        .map(_timestamp),
        valid_levels, valid_names, valid_names, messages,
    ).map(list),
    st.lists(separators, min_size=4, max_size=4),
    trailing,
).map(lambda t: _join((t[0], t[1] if t[1][4] else t[1][:4], t[2], t[3])))
"""Valid lines around NOON with every offset form, still with hostile whitespace."""

blank_lines = st.sampled_from([b"", b"", b" ", b"\t", b"\r", b" \t\x0b\x0c\r", b"\x0c"])

few_field_lines = st.tuples(
    leading,
    st.lists(st.one_of(timestamps, levels, names), min_size=1, max_size=3),
    st.lists(separators, min_size=3, max_size=3),
    trailing,
).map(_join)


def _pad(parts: tuple[bytes, int, bytes]) -> bytes:
    """A line of exactly ``size`` bytes: ``base`` padded in the message, then ``tail``."""
    base, size, tail = parts
    return base + b" " + b"m" * (size - len(base) - 1 - len(tail)) + tail


long_lines = st.one_of(
    st.tuples(
        st.sampled_from([
            b"2025-07-22T12:00:00Z INFO auth u1",
            b"2025-07-22T12:00:00Z INFO auth",
            b"2025-07-22T12:00:00Z ERROR db u2 \xff",
            b"not-a-time INFO auth u1",
        ]),
        st.sampled_from([65_535, 65_536, 65_536, 65_537, 65_537, 70_000]),
        st.sampled_from([b"", b"\r", b" "]),
    ).map(_pad),
    st.tuples(st.sampled_from([b" ", b"\t", b"\r", b" \x0b"]), st.sampled_from([65_537, 70_001]))
    .map(lambda t: (t[0] * t[1])[: t[1]]),
)
"""Lines around the 65,536-byte limit, and whitespace-only lines beyond it."""

random_lines = st.binary(max_size=40).map(_no_newline)

timestamp_lines = st.tuples(
    leading,
    st.tuples(timestamps, valid_levels, valid_names, valid_names, messages).map(list),
    st.lists(separators, min_size=4, max_size=4),
    trailing,
).map(lambda t: _join((t[0], t[1] if t[1][4] else t[1][:4], t[2], t[3])))
"""A hostile timestamp in an otherwise valid line."""

lines = st.one_of(
    clean_lines, clean_lines, clean_lines, timestamp_lines, timestamp_lines, structured_lines,
    structured_lines, blank_lines, few_field_lines, random_lines,
)
"""Any one line (without its newline); long lines come separately, they are costly."""

# --- files and runs ---------------------------------------------------------------------------

FILE_NAMES = [
    "a.log", "b.log", "c.txt", "d.log.gz", "e.gz", "Ünïcödé.log", "z-last", "noext", "A.LOG",
    ".hidden", "x~", "x.tmp", "x.part", "x.swp", ".y.gz",
]

mtimes = st.tuples(
    st.sampled_from([NOON, NOON, NOON + 300, NOON - 3600, 0, 4_102_444_800]),
    st.sampled_from([0, 0, 1, 500_000_000, 999_999_999]),
).map(lambda t: t[0] * 1_000_000_000 + t[1])
"""File modification times (ns) near the timestamps, so future_timestamp fires and does not."""


def _short(line: bytes) -> str:
    """A line's repr, giant lines abbreviated (hypothesis prints failing examples)."""
    if len(line) <= 200:
        return repr(line)
    return f"{line[:60]!r} + {line[60:61]!r} * {len(line) - 80} + {line[-20:]!r}  # {len(line)} bytes"


@dataclass(frozen=True, repr=False)
class LogFile:
    name: str
    lines: tuple[bytes, ...]
    final_newline: bool
    mtime_ns: int

    def __repr__(self) -> str:
        shown = ", ".join(_short(line) for line in self.lines)
        return (f"LogFile({self.name!r}, ({shown}), final_newline={self.final_newline}, "
                f"mtime_ns={self.mtime_ns})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    @property
    def content(self) -> bytes:
        data = b"\n".join(self.lines)
        return data + b"\n" if self.lines and self.final_newline else data


file_names = st.sampled_from(FILE_NAMES)


def _interleave(parts: tuple[list[bytes], list[bytes]]) -> tuple[bytes, ...]:
    """Valid lines and hostile ones, taken in turn, so every file has both."""
    a, b = parts
    out: list[bytes] = []
    for i in range(max(len(a), len(b))):
        out += a[i : i + 1] + b[i : i + 1]
    return tuple(out)


def log_files(line_strategy: st.SearchStrategy[bytes] = lines, max_lines: int = 25
              ) -> st.SearchStrategy[LogFile]:
    return st.builds(
        LogFile,
        name=file_names,
        lines=st.tuples(
            st.lists(clean_lines, max_size=max_lines), st.lists(line_strategy, max_size=max_lines)
        ).map(_interleave),
        final_newline=st.booleans(),
        mtime_ns=mtimes,
    )


def runs(line_strategy: st.SearchStrategy[bytes] = lines, max_files: int = 4,
         max_lines: int = 25) -> st.SearchStrategy[list[LogFile]]:
    """Several files with distinct names, some of which a folder listing must skip."""
    return st.lists(log_files(line_strategy, max_lines), min_size=1, max_size=max_files,
                    unique_by=lambda f: f.name)


with_long_lines = st.one_of(lines, lines, lines, long_lines)
"""Lines with a fair share of giant ones."""


def write_run(folder: str, files: list[LogFile]) -> None:
    """Write every file into ``folder`` (gzip for ``.gz`` names) and set its mtime."""
    for f in files:
        path = os.path.join(folder, f.name)
        data = f.content
        if f.name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        with open(path, "wb") as out:
            out.write(data)
        os.utime(path, ns=(f.mtime_ns, f.mtime_ns))


# --- traffic that makes the window detectors fire ---------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """Steady traffic over many windows, one service's errors spiking and one user bursting."""

    windows: int
    window: int
    services: tuple[tuple[int, int], ...]
    """Per service: (other lines per window, errors per window: 0 or 1)."""
    users: int
    spike_service: int
    spike_window: int
    spike_errors: int
    burst_window: int
    start: int


def traffic_lines(t: Traffic) -> list[bytes]:
    """The lines of ``t`` in time order (minute offsets spread inside each window)."""
    out: list[bytes] = []
    for w in range(t.windows):
        base = (t.start // t.window + w) * t.window  # aligned, so each window stays whole
        window_lines: list[tuple[bytes, bytes]] = []
        for i, (others, errors) in enumerate(t.services):
            service = f"svc{i}".encode()
            window_lines += [(b"INFO", service)] * others
            count = errors if (w + i) % 2 else 0
            if i == t.spike_service and w == t.spike_window:
                count = t.spike_errors
            window_lines += [(b"ERROR", service)] * count
        burst: list[bytes] = []
        if w == t.burst_window:
            # the ordinary users' share is at most 1/2, so 5x the others plus 50 is a burst
            burst = [b"spammer"] * (5 * len(window_lines) + 50)
        for k, (level, service) in enumerate(window_lines):
            user = f"user{k % t.users}".encode()
            when = base + (k * t.window) // max(1, len(window_lines) + len(burst))
            out.append(log_line(when, level, service, user))
        for k, user in enumerate(burst):
            when = base + (k * t.window) // len(burst)
            out.append(log_line(when, b"DEBUG", b"chatty", user))
    return out


def log_line(when: int, level: bytes, service: bytes, user: bytes) -> bytes:
    """A valid line at ``when`` (UTC seconds) with the message "msg"."""
    days, rem = divmod(when, 86_400)
    day = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    return (f"{day.isoformat()}T{rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}Z ".encode()
            + level + b" " + service + b" " + user + b" msg")


traffic = st.builds(
    Traffic,
    windows=st.integers(4, 16),
    window=st.sampled_from([60, 60, 10, 300]),
    services=st.lists(st.tuples(st.integers(5, 12), st.integers(0, 1)), min_size=2, max_size=3)
    .map(tuple),
    users=st.integers(3, 5),
    spike_service=st.integers(0, 1),
    spike_window=st.integers(0, 3),
    spike_errors=st.integers(30, 60),
    burst_window=st.integers(0, 3),
    start=st.sampled_from([NOON, NOON + 7, 0, -86_400]),
)
