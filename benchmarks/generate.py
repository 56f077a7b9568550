"""A fast, deterministic generator of log files in the documented log format, with ground truth.

Most lines are canonical, ``YYYY-MM-DDTHH:MM:SSZ LEVEL Service user message``; on request a share
of lines takes other valid forms (fractions, offsets, lowercase levels, tabs, CRLF, ...), a share
is malformed with every reason of docs/input.md (too_long lines and invalid UTF-8 included),
and incidents are injected: a service's error burst, a user's burst, clocks jumping back, future
timestamps. What went in is written as JSON beside the file (``.NAME.truth.json``: hidden, so a
run over the folder skips it), exact for the lines written.

Speed comes from doing per block of 131,072 lines what would otherwise be done per line: numpy
draws every random choice in one call, timestamps are formatted per distinct second with array
arithmetic, and a line is four pieces gathered from precomputed tables of NUL-padded bytes (stamp,
level and service, user, message) into one matrix whose padding is then dropped in one call.
Only the rare special lines (variants, malformed, blank) are made in Python and spliced in.

The same parameters and seed give the same bytes, on any machine (numpy's PCG64 streams).

    python -m benchmarks.generate bench-data/1g.log --size 1G --users 200000 --skew 1.1
    python -m benchmarks.generate sample.log --lines 5000 --malformed 0.02 --error-bursts 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ByteMatrix = npt.NDArray[np.uint8]
"""Rows of bytes, each left-aligned and padded with NULs (which no generated text contains)."""

GENERATOR_VERSION = 1
BLOCK_LINES = 1 << 17
"""Lines drawn per block. Part of the output's definition: changing it changes the bytes."""
NS = 1_000_000_000
DAY = 86_400
MAX_LINE = 65_536
GRID = 60
"""Seconds per cell of the traffic-intensity grid (diurnal cycle and noise)."""
USER_TABLE_MAX = 1 << 20
"""Up to this many users, names are precomputed once; above, they are formatted per block."""
BURST_USER_BASE = 10**12
"""Ids of users that exist only to burst: never those of the ordinary population."""

LEVELS = (b"TRACE", b"DEBUG", b"INFO", b"NOTICE", b"WARN", b"ERROR", b"CRITICAL", b"FATAL")
ERROR_LEVELS = (5, 6, 7)
REASONS = ("too_long", "too_few_fields", "bad_timestamp", "unknown_level", "bad_encoding")
REASON_WEIGHTS = (0.0, 0.3, 0.3, 0.2, 0.2)
TOO_LONG_SHARE = 0.002
"""Share of malformed lines that are too_long (each is 64 KiB or more, so they stay rare)."""
CANONICAL, VARIANT, MALFORMED, BLANK = 0, 1, 2, 3

SERVICE_NAMES = (
    "AuthService", "PaymentService", "OrderService", "InventoryService", "SearchService",
    "CartService", "ShippingService", "NotificationService", "UserService", "GatewayService",
    "BillingService", "RecommendationService", "ReportingService", "CatalogService",
    "ReviewService", "PricingService", "FraudService", "EmailService", "SessionService",
    "MetricsService",
)
UNICODE_SERVICE_NAMES = ("Zahlungsdienst", "ServiceDePaiement-é", "検索サービス", "Überwachung")
RESOURCES = ("orders", "users", "carts", "payments", "items", "sessions", "invoices", "reviews")
MESSAGE_TEMPLATES = (
    "GET /api/v1/{res}/{n} 200 {ms}ms",
    "POST /api/v1/{res} 201 {ms}ms",
    "request completed status=200 duration_ms={ms}",
    "cache miss key={res}:{hex}",
    "connection reset by peer remote=10.{a}.{b}.{c}:{port}",
    "timeout after {ms}ms calling {res}-backend",
    "retrying attempt={k} backoff_ms={ms}",
    "session refreshed ttl={n}s",
    "payment authorised amount={n}.{k}0 currency=EUR",
    "order {n} shipped carrier=DHL",
    "slow query table={res} rows={n} ms={ms}",
    "NullPointerException at com.example.{res}.Handler.handle(Handler.java:{k})",
    "rate limit exceeded limit={n}/min",
    "health check ok",
    "login failed: invalid password attempts={k}",
    "queue depth={n} consumer_lag_ms={ms}",
    "feature flag {res}_v{k} evaluated=true",
    "TLS handshake completed cipher=TLS_AES_128_GCM_SHA256",
    "scheduled job {res}-cleanup finished in {ms}ms",
    'json payload {{"id": {n}, "ok": true, "tags": ["a", "b"]}}',
)
MESSAGES = 512

OFFSETS = ((b"+02:00", 7200), (b"+05:30", 19800), (b"-07:00", -25200), (b"+0900", 32400),
           (b"-0330", -12600), (b"+00:00", 0))
UNKNOWN_LEVELS = (b"VERBOSE", b"SEVERE", b"ERR", b"WARNN", b"INF0", b"LOG", b"EMERG", b"Alert",
                  b"notice!", b"DBG")
BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82")
BLANKS = (b"", b" ", b"\t\t", b"\r", b"  \x0b \x0c")

SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "y": 365 * DAY}


def parse_size(text: str) -> int:
    """``4G``, ``256M``, ``512K``, ``1000`` -> bytes (binary units: 1M = 1,048,576)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if m is None:
        raise ValueError(f"not a size: {text!r} (try 100M, 4G)")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2).upper()])


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``6h``, ``1d``, ``2w``, ``50y`` -> seconds (a year is 365 days)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([smhdwy]?)\s*", text)
    if m is None:
        raise ValueError(f"not a duration: {text!r} (try 90s, 6h, 1d)")
    return float(m.group(1)) * DURATION_UNITS[m.group(2)]


def parse_start(text: str) -> int:
    """``2025-07-22``, ``2025-07-22T06:00:00Z`` or with an offset -> Unix seconds."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp())


def iso(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truth_path(path: str) -> str:
    """Where the ground truth of ``path`` goes: a hidden file beside it, which runs skip."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.truth.json")


@dataclass
class Params:
    """Everything that defines a generated file. The same Params give the same bytes."""

    lines: int | None = None
    """Total physical lines (incident lines included); or give ``size``."""
    size: int | None = None
    """Bytes to reach: the file stops at the first line end at or after this many bytes."""
    users: int = 1000
    services: int = 12
    skew: float = 1.0
    """Zipf-like exponent of the users' (and by default the services') popularity; 0 = uniform."""
    service_skew: float | None = None
    malformed: float = 0.0
    blank: float = 0.0
    variants: float = 0.0
    """Share of valid lines written in another valid form than the canonical one."""
    seed: int = 0
    start: str = "2025-07-22T00:00:00Z"
    span: float | None = None
    """Seconds covered; default: lines / lines_per_second, or one day."""
    lines_per_second: float | None = None
    diurnal: float = 0.0
    """Amplitude of the daily cycle, 0 (flat) to 1 (silent at the quietest hour)."""
    peak_hour: float = 14.0
    busy_hours: tuple[float, float] | None = None
    """Office hours (UTC, start:end): traffic outside them is ``night`` times the traffic inside."""
    night: float = 0.05
    error_rate: float = 0.02
    """Median, over services, of the share of ERROR, CRITICAL and FATAL lines."""
    noise: float = 0.0
    """Sigma of a log-normal factor on each minute's traffic (0 = a plain Poisson process)."""
    jitter: int = 0
    """Lines may be up to this many seconds late (keep it under clock_skew)."""
    new_user_every_line: bool = False
    unicode_names: bool = False
    error_bursts: int = 0
    user_bursts: int = 0
    clock_jumps: int = 0
    future_stamps: int = 0
    error_multiplier: tuple[float, float] = (5.0, 50.0)
    user_multiplier: tuple[float, float] = (5.0, 20.0)
    burst_windows: tuple[int, int] = (1, 10)
    error_floor: int = 1
    """Fewest errors an error burst adds to each of its windows."""
    user_floor: int = 1
    """Fewest lines a user burst writes in each of its windows."""
    window: int = 60
    clock_skew: int = 300
    future_jump: float | None = None
    """Seconds a future stamp is ahead; default: the span plus a day."""

    def check(self) -> None:
        if (self.lines is None) == (self.size is None):
            raise ValueError("give exactly one of lines and size")
        if (self.lines is not None and self.lines < 0) or (self.size is not None and self.size < 1):
            raise ValueError("lines must be >= 0 and size >= 1")
        if self.users < 1 or self.services < 1:
            raise ValueError("users and services must be >= 1")
        if not 0 <= self.malformed + self.blank + self.variants <= 1:
            raise ValueError("malformed + blank + variants must be a share between 0 and 1")
        if not 0 < self.error_rate < 0.5 or self.night < 0:
            raise ValueError("error_rate must be in (0, 0.5) and night >= 0")
        if not 0 <= self.diurnal <= 1:
            raise ValueError("diurnal is an amplitude between 0 and 1")
        if self.skew < 0 or (self.service_skew or 0) < 0 or self.noise < 0 or self.jitter < 0:
            raise ValueError("skew, noise and jitter must be >= 0")
        if self.window < 1 or self.clock_skew < 0:
            raise ValueError("window must be >= 1 and clock_skew >= 0")
        if self.span is not None and self.span <= 0:
            raise ValueError("span must be > 0")
        if self.lines_per_second is not None and self.lines_per_second <= 0:
            raise ValueError("lines_per_second must be > 0")


# -- vectorised formatting ----------------------------------------------------------------------


def civil_from_days(days: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Year, month, day of days since 1970-01-01 (proleptic Gregorian), for arrays."""
    days = days + 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _stamp_table(seconds: IntArray) -> ByteMatrix:
    """``b"YYYY-MM-DDTHH:MM:SSZ "`` for each of ``seconds`` (years 0001-9999)."""
    days, rem = np.divmod(seconds, DAY)
    year, month, day = civil_from_days(days)
    buf = np.empty((len(seconds), 21), np.uint8)
    zero = ord("0")
    for col, value, div in ((0, year, 1000), (1, year, 100), (2, year, 10), (3, year, 1),
                            (5, month, 10), (6, month, 1), (8, day, 10), (9, day, 1),
                            (11, rem // 3600, 10), (12, rem // 3600, 1),
                            (14, rem // 60 % 60, 10), (15, rem // 60 % 60, 1),
                            (17, rem % 60, 10), (18, rem % 60, 1)):
        buf[:, col] = value // div % 10 + zero
    for col, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "Z"), (20, " ")):
        buf[:, col] = ord(char)
    return buf


def format_stamps(seconds: IntArray) -> ByteMatrix:
    """The stamp piece of each line, formatting each distinct second once."""
    if not len(seconds):
        return np.empty((0, 21), np.uint8)
    lo, hi = int(seconds.min()), int(seconds.max())
    if hi - lo < 4 * len(seconds) + 4096:
        return _stamp_table(np.arange(lo, hi + 1, dtype=np.int64))[seconds - lo]
    unique, inverse = np.unique(seconds, return_inverse=True)
    return _stamp_table(unique)[inverse]


_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)


def decimal_names(prefix: bytes, ids: IntArray) -> tuple[ByteMatrix, IntArray]:
    """``prefix + str(id)`` for each id >= 0, vectorised: padded rows and their lengths."""
    n = len(ids)
    if not n:
        return np.empty((0, 1), np.uint8), np.empty(0, np.int64)
    digits = np.ones(n, np.int64)
    for k in range(1, 19):
        digits += ids >= _POW10[k]
    width = len(prefix) + int(digits.max())
    buf = np.zeros((n, width), np.uint8)
    buf[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    for j in range(int(digits.max())):
        place = digits - 1 - j
        digit = ids // _POW10[np.maximum(place, 0)] % 10 + ord("0")
        buf[:, len(prefix) + j] = np.where(place >= 0, digit, 0)
    return buf, digits + len(prefix)


def padded(texts: Sequence[bytes]) -> tuple[ByteMatrix, IntArray]:
    """A table of byte strings as padded rows, and their lengths."""
    width = max((len(t) for t in texts), default=1)
    buf = np.zeros((len(texts), max(width, 1)), np.uint8)
    for i, text in enumerate(texts):
        buf[i, : len(text)] = np.frombuffer(text, np.uint8)
    return buf, np.array([len(t) for t in texts], dtype=np.int64)


# -- the model: who logs what, and when ---------------------------------------------------------


class Model:
    """Services, users, levels, messages and the traffic intensity over time, fixed by Params."""

    def __init__(self, p: Params, lines: int, span: float) -> None:
        self.p = p
        rng = np.random.default_rng([p.seed, 0])
        self.t0 = parse_start(p.start)
        self.span = span
        self.lines = lines
        self._services(rng)
        self._users()
        self._messages(rng)
        self._timeline(rng)

    def _services(self, rng: np.random.Generator) -> None:
        p = self.p
        count = p.services
        names = [SERVICE_NAMES[i % len(SERVICE_NAMES)] + (str(i // len(SERVICE_NAMES) + 1)
                                                          if i >= len(SERVICE_NAMES) else "")
                 for i in range(count)]
        if p.unicode_names:
            for i, name in enumerate(UNICODE_SERVICE_NAMES):
                if 2 * i + 1 < count:
                    names[2 * i + 1] = name
        order = rng.permutation(count)
        self.service_names = [names[i].encode() for i in order]
        skew = p.skew if p.service_skew is None else p.service_skew
        weights = (np.arange(count) + 1.0) ** -skew
        self.service_p = weights / weights.sum()
        self.service_cdf = np.cumsum(self.service_p)
        self.service_cdf[-1] = 1.0
        self.error_rate = np.clip(np.exp(rng.normal(math.log(p.error_rate), 0.7, count)),
                                  p.error_rate / 10, min(0.45, p.error_rate * 6))
        weights = np.zeros((count, len(LEVELS)))
        weights[:, 0], weights[:, 1], weights[:, 3], weights[:, 4] = 0.02, 0.10, 0.03, 0.07
        weights[:, 5] = self.error_rate * 0.90
        weights[:, 6] = self.error_rate * 0.08
        weights[:, 7] = self.error_rate * 0.02
        weights[:, 2] = 1.0 - weights.sum(axis=1)
        cdf = np.cumsum(weights, axis=1)
        cdf[:, -1] = 1.0
        # One sorted array: row s holds s + cdf; searchsorted(s + u) - 8 s is the level.
        self.level_flat = (np.arange(count)[:, None] + cdf).ravel()
        self.level_weights = weights
        self.level_service, self.level_service_len = padded(
            [level + b" " + name + b" " for level in LEVELS for name in self.service_names])

    def _users(self) -> None:
        count = self.p.users
        self.user_step = 2_654_435_761
        while math.gcd(self.user_step, count) != 1:
            self.user_step += 2
        self.user_offset = (self.p.seed * 7_919) % count
        self.user_table: tuple[ByteMatrix, IntArray] | None = None
        if not self.p.new_user_every_line and count <= USER_TABLE_MAX:
            self.user_table = decimal_names(b"user", np.arange(count, dtype=np.int64))

    def _messages(self, rng: np.random.Generator) -> None:
        out = []
        for i in range(MESSAGES):
            template = MESSAGE_TEMPLATES[i % len(MESSAGE_TEMPLATES)]
            a, b, c = (int(x) for x in rng.integers(0, 256, 3))
            text = template.format(
                res=RESOURCES[int(rng.integers(len(RESOURCES)))],
                n=int(rng.integers(1, 100_000)), ms=int(rng.lognormal(3.5, 1.0)) + 1,
                k=int(rng.integers(1, 10)), hex=f"{int(rng.integers(1 << 32)):08x}",
                a=a, b=b, c=c, port=int(rng.integers(1024, 65_536)),
            )
            out.append(b" " + text.encode() + b"\n")
        self.message_texts = out
        self.messages, self.message_len = padded(out)

    def _timeline(self, rng: np.random.Generator) -> None:
        """Expected lines before each grid edge: a Poisson process of this intensity."""
        p = self.p
        cells = math.ceil(1.5 * self.span / GRID) + 2
        middle = self.t0 + (np.arange(cells) + 0.5) * GRID
        hours = (middle % DAY) / 3600.0
        intensity = 1.0 + p.diurnal * np.cos(2 * np.pi * (hours - p.peak_hour) / 24.0)
        if p.busy_hours is not None:
            lo, hi = p.busy_hours
            inside = (hours >= lo) & (hours < hi) if lo <= hi else (hours >= lo) | (hours < hi)
            intensity *= np.where(inside, 1.0, p.night)
        if p.noise > 0:
            intensity *= np.exp(rng.normal(0.0, p.noise, cells) - p.noise**2 / 2)
        intensity = np.maximum(intensity, 1e-9)
        self.edges = np.arange(cells + 1, dtype=np.float64) * GRID
        cum = np.concatenate([[0.0], np.cumsum(intensity * GRID)])
        self.cum = cum * (max(self.lines, 1) / float(np.interp(self.span, self.edges, cum)))

    def rescale(self, lines: int) -> None:
        """Make ``lines`` the expected number of ordinary lines over the span."""
        self.cum *= max(lines, 1) / max(self.lines, 1)
        self.lines = lines

    # sampling

    def services_of(self, rng: np.random.Generator, n: int) -> IntArray:
        return np.searchsorted(self.service_cdf, rng.random(n), side="right").astype(np.int64)

    def levels_of(self, rng: np.random.Generator, services: IntArray) -> IntArray:
        values = services + rng.random(len(services))
        found = np.searchsorted(self.level_flat, values, side="right").astype(np.int64)
        level: IntArray = np.minimum(found - services * len(LEVELS), len(LEVELS) - 1)
        return level

    def user_ranks(self, rng: np.random.Generator, n: int) -> IntArray:
        """Zipf-like ranks: a continuous power law of exponent ``skew`` over [1, users + 1)."""
        count, s = self.p.users, self.p.skew
        u = rng.random(n)
        if s == 0:
            x = u * count + 1
        elif abs(s - 1.0) < 1e-9:
            x = np.exp(u * math.log(count + 1))
        else:
            a = 1.0 - s
            x = (1.0 + u * ((count + 1) ** a - 1.0)) ** (1.0 / a)
        return np.clip(x.astype(np.int64) - 1, 0, count - 1)

    def rank_share(self, rank: int) -> float:
        """Expected share of all lines that the user of this rank writes."""
        count, s = self.p.users, self.p.skew

        def cdf(x: float) -> float:
            if s == 0:
                return (x - 1) / count
            if abs(s - 1.0) < 1e-9:
                return math.log(x) / math.log(count + 1)
            a = 1.0 - s
            return float((x**a - 1.0) / ((count + 1) ** a - 1.0))

        return cdf(rank + 2.0) - cdf(rank + 1.0)

    def user_ids(self, ranks: IntArray) -> IntArray:
        """A bijection of ranks onto ids, so that the busiest user is not ``user0``."""
        return (ranks * self.user_step + self.user_offset) % self.p.users

    def user_names(self, ids: IntArray) -> tuple[ByteMatrix, IntArray]:
        """Padded user names of ``ids`` and their lengths."""
        if self.user_table is None or (ids >= len(self.user_table[0])).any():
            return decimal_names(b"user", ids)
        table, lengths = self.user_table
        return table[ids], lengths[ids]

    def user_name(self, uid: int) -> bytes:
        return b"user" + str(uid).encode()

    def expected_lines(self, start: FloatArray, end: FloatArray) -> FloatArray:
        """Expected ordinary lines between relative times ``start`` and ``end``."""
        return np.interp(end, self.edges, self.cum) - np.interp(start, self.edges, self.cum)

    def time_of(self, position: FloatArray) -> FloatArray:
        """Relative time of the line at this position of the expected-lines scale."""
        return np.interp(position, self.cum, self.edges)


# -- incidents ----------------------------------------------------------------------------------


@dataclass
class Rows:
    """Lines as columns; ``tag`` names the incident a line belongs to (-1: none)."""

    pos: FloatArray
    service: IntArray
    level: IntArray
    user: IntArray
    message: IntArray
    kind: IntArray
    tag: IntArray

    @staticmethod
    def empty() -> Rows:
        f, i = np.empty(0, np.float64), np.empty(0, np.int64)
        return Rows(f, i, i, i, i, i, i)

    def take(self, index: IntArray | slice) -> Rows:
        return Rows(*(getattr(self, name)[index] for name in ROW_FIELDS))

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        return Rows(*(np.concatenate([getattr(r, name) for r in parts]) for name in ROW_FIELDS))

    def __len__(self) -> int:
        return len(self.pos)


ROW_FIELDS = ("pos", "service", "level", "user", "message", "kind", "tag")


@dataclass
class Shift:
    """Lines at relative times [start, end) carry stamps moved by ``delta`` seconds."""

    start: float
    end: float
    delta: int
    tag: int


class Planner:
    """Places incidents in windows that do not touch each other, and makes their lines."""

    def __init__(self, model: Model) -> None:
        self.m = model
        self.p = model.p
        self.rng = np.random.default_rng([self.p.seed, 2])
        self.busy: list[tuple[float, float]] = []
        self.rows: list[Rows] = []
        self.shifts: list[Shift] = []
        self.truth: dict[str, list[dict[str, Any]]] = {
            "error_spike": [], "user_burst": [], "clock_jump": [], "future_stamp": [],
        }
        self.tags: list[tuple[str, int]] = []
        self.new_users = 0

    def _free(self, start: float, end: float) -> bool:
        return all(end <= s or start >= e for s, e in self.busy)

    def _windows(self) -> tuple[int, int] | None:
        """A free run of 1-10 windows inside the span: (first window index, count)."""
        p, m = self.p, self.m
        lo_w = math.ceil((m.t0 + 0.05 * m.span) / p.window)
        lo, hi = p.burst_windows
        for _ in range(200):
            count = int(self.rng.integers(lo, hi + 1))
            hi_w = math.floor((m.t0 + 0.9 * m.span) / p.window) - count
            if hi_w < lo_w:
                return None
            first = int(self.rng.integers(lo_w, hi_w + 1))
            start, end = (first - 3) * p.window, (first + count + 3) * p.window
            if self._free(start, end):
                self.busy.append((start, end))
                return first, count
        return None

    def _window_bounds(self, first: int, count: int) -> tuple[FloatArray, FloatArray]:
        w = self.p.window
        starts = (first + np.arange(count)) * w - self.m.t0
        return starts.astype(np.float64), (starts + w).astype(np.float64)

    def _tag(self, kind: str) -> int:
        self.tags.append((kind, len(self.truth[kind])))
        return len(self.tags) - 1

    def _rows_in(self, starts: FloatArray, per_window: IntArray, tag: int) -> Rows:
        total = int(per_window.sum())
        pos = np.repeat(starts, per_window) + self.rng.random(total) * self.p.window
        i = np.zeros(total, np.int64)
        return Rows(pos, i.copy(), i.copy(), i.copy(),
                    self.rng.integers(0, MESSAGES, total).astype(np.int64), i.copy(),
                    np.full(total, tag, np.int64))

    def _population(self, n: int) -> IntArray:
        if self.p.new_user_every_line:
            self.new_users += n
            return BURST_USER_BASE // 2 + np.arange(self.new_users - n, self.new_users)
        return self.m.user_ids(self.m.user_ranks(self.rng, n))

    def _multiplier(self, bounds: tuple[float, float]) -> float:
        lo, hi = bounds
        return float(math.exp(self.rng.uniform(math.log(lo), math.log(hi))))

    def error_burst(self) -> None:
        found = self._windows()
        if found is None:
            return
        first, count = found
        m, p = self.m, self.p
        starts, ends = self._window_bounds(first, count)
        lines = m.expected_lines(starts, ends)
        mult = self._multiplier(p.error_multiplier)
        errors = np.outer(m.service_p * m.error_rate, lines)
        loud = np.flatnonzero((mult * errors).min(axis=1) >= 20)
        if self.rng.random() < 0.8 and len(loud):
            service = int(self.rng.choice(loud))
        elif self.rng.random() < 0.8:
            service = int(np.argmax(errors.min(axis=1)))
        else:
            service = int(self.rng.integers(p.services))
        usual = errors[service]
        extra = np.maximum(p.error_floor, np.round((mult - 1.0) * usual)).astype(np.int64)
        effective = float(((usual + extra) / np.maximum(usual, 1e-9)).min())
        tag = self._tag("error_spike")
        rows = self._rows_in(starts, extra, tag)
        rows.service[:] = service
        rows.level[:] = self.rng.choice(ERROR_LEVELS, len(rows), p=(0.9, 0.08, 0.02))
        rows.user[:] = self._population(len(rows))
        self.rows.append(rows)
        self.truth["error_spike"].append({
            "service": m.service_names[service].decode(),
            "window_start": iso(first * p.window),
            "window_end": iso((first + count) * p.window),
            "windows": count,
            "multiplier": round(min(effective, 1e6), 2),
            "usual_errors_per_window": round(float(usual.mean()), 3),
            "min_errors_per_window": round(float((usual + extra).min()), 2),
            "injected_lines": int(extra.sum()),
            "spec_requires_catch": bool(effective >= 10 and (usual + extra).min() >= 20),
        })

    def user_burst(self) -> None:
        found = self._windows()
        if found is None:
            return
        first, count = found
        m, p = self.m, self.p
        starts, ends = self._window_bounds(first, count)
        mult = self._multiplier(p.user_multiplier)
        top = 1.0 / max(m.lines, 1) if p.new_user_every_line else m.rank_share(0)
        busiest = top * m.expected_lines(starts, ends)
        per_window = np.maximum(p.user_floor, np.round(mult * busiest)).astype(np.int64)
        effective = float((per_window / np.maximum(busiest, 1e-9)).min())
        burst_index = len(self.truth["user_burst"])
        if p.new_user_every_line or p.users <= 10 or self.rng.random() < 0.5:
            uid = BURST_USER_BASE + burst_index
        else:
            uid = int(m.user_ids(np.array([self.rng.integers(10, p.users)]))[0])
        tag = self._tag("user_burst")
        rows = self._rows_in(starts, per_window, tag)
        rows.service[:] = m.services_of(self.rng, len(rows))
        rows.level[:] = m.levels_of(self.rng, rows.service)
        rows.user[:] = uid
        self.rows.append(rows)
        self.truth["user_burst"].append({
            "user": m.user_name(uid).decode(),
            "window_start": iso(first * p.window),
            "window_end": iso((first + count) * p.window),
            "windows": count,
            "multiplier": round(min(effective, 1e6), 2),
            "busiest_user_lines_per_window": round(float(busiest.mean()), 3),
            "min_lines_per_window": int(per_window.min()),
            "injected_lines": int(per_window.sum()),
            "spec_requires_catch": bool(effective >= 10),
        })

    def _moment(self, before: float, shortest: float) -> tuple[float, float] | None:
        """A free moment (relative seconds) and a duration of at least ``shortest`` seconds that
        holds about 8 expected lines there (at most a twentieth of the span)."""
        m = self.m
        for _ in range(200):
            at = float(self.rng.uniform(0.05 * m.span, 0.85 * m.span))
            duration = self._lasting(at, shortest)
            start = m.t0 + at - before - 3 * self.p.window
            end = m.t0 + at + duration + 3 * self.p.window
            if self._free(start, end):
                self.busy.append((start, end))
                return at, duration
        return None

    def _lasting(self, at: float, shortest: float, lines: float = 8.0) -> float:
        m = self.m
        longest = max(m.span / 20, shortest)
        duration = shortest
        while duration < longest:
            expected = m.expected_lines(np.array([at]), np.array([at + duration]))[0]
            if expected >= lines:
                break
            duration *= 1.25
        return min(duration, longest)

    def clock_jump(self) -> None:
        skew = self.p.clock_skew
        jump = int(self.rng.integers(2 * skew + 1, 2 * skew + 3601))
        found = self._moment(jump, float(self.rng.uniform(5, 60)))
        if found is None:
            return
        at, duration = found
        tag = self._tag("clock_jump")
        self.shifts.append(Shift(at, at + duration, -jump, tag))
        self.truth["clock_jump"].append({
            "at": iso(self.m.t0 + int(at)), "back_seconds": jump,
            "duration_seconds": round(duration, 1),
        })

    def future_stamp(self) -> None:
        m = self.m
        jump = int(self.p.future_jump if self.p.future_jump is not None else m.span + DAY)
        found = self._moment(0, float(self.rng.uniform(1, 10)))
        if found is None:
            return
        at, duration = found
        tag = self._tag("future_stamp")
        self.shifts.append(Shift(at, at + duration, jump, tag))
        self.truth["future_stamp"].append({
            "at": iso(m.t0 + int(at)), "ahead_seconds": jump,
            "duration_seconds": round(duration, 1),
        })

    def plan(self) -> Rows:
        p = self.p
        for _ in range(p.error_bursts):
            self.error_burst()
        for _ in range(p.user_bursts):
            self.user_burst()
        for _ in range(p.clock_jumps):
            self.clock_jump()
        for _ in range(p.future_stamps):
            self.future_stamp()
        rows = Rows.concat([Rows.empty(), *self.rows])
        return rows.take(np.argsort(rows.pos, kind="stable"))


# -- special lines ------------------------------------------------------------------------------


def _iso_bytes(seconds: int) -> bytes:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S").encode()


def variant_line(second: int, level: int, service: bytes, user: bytes, message: bytes,
                 r: int) -> tuple[bytes, int]:
    """A valid line in a non-canonical form, and the fraction of a second its stamp carries."""
    form, r = r % 14, r // 14
    stamp, frac = _iso_bytes(second) + b"Z", 0
    token, sep, lead, end = LEVELS[level], b" ", b"", b"\n"
    text = message[1:-1]
    if form == 0:
        frac = r % 1000 * 1_000_000
        stamp = _iso_bytes(second) + b".%03dZ" % (frac // 1_000_000)
    elif form == 1:
        frac = r % NS
        stamp = _iso_bytes(second) + b".%09d" % frac + (b"z" if r % 2 else b"")
    elif form in (2, 3):
        suffix, offset = OFFSETS[r % len(OFFSETS)]
        if form == 3:
            suffix = suffix.replace(b":", b"")
        stamp = _iso_bytes(second + offset) + suffix
    elif form == 4:
        stamp = _iso_bytes(second) + b"z"
    elif form == 5:
        stamp = _iso_bytes(second).replace(b"T", b"t") + b"Z"
    elif form == 6:
        stamp = _iso_bytes(second)
    elif form == 7:
        token = token.lower() if r % 2 else token.capitalize()
    elif form == 8:
        token = b"WARNING" if token == b"WARN" else token.lower()
    elif form == 9:
        sep = (b"\t", b"  ", b" \t ", b"\x0b")[r % 4]
    elif form == 10:
        end = b"\r\n"
    elif form == 11:
        lead = (b"  ", b"\t", b" \r ")[r % 3]
    elif form == 12:
        text = b"" if r % 2 else b"   "
    else:
        text = (b"caf\xe9 ", b"\xff\xfe ", b"na\xefve ")[r % 3] + text
    body = lead + sep.join((stamp, token, service, user))
    return (body + (sep + text if text else b"") + end), frac


def _bad_stamps(second: int) -> list[bytes]:
    day, clock = _iso_bytes(second).split(b"T")
    year = day[:4]
    hh, mm, ss = clock.split(b":")
    return [
        day + b" " + clock, day + b"T24:" + mm + b":" + ss + b"Z", day + b"T" + hh + b":60:" + ss + b"Z",
        day + b"T" + hh + b":" + mm + b":60Z", year + b"-02-30T" + clock + b"Z",
        year + b"-13-01T" + clock + b"Z", b"2023-02-29T12:00:00Z", day + b"T" + clock + b".1234567890Z",
        day + b"T" + clock + b"+24:00", day + b"T" + clock + b"+02:60", day + b"T" + clock + b"ZZ",
        str(second).encode(), b"22/Jul/2025:10:00:00", b"0000-12-31T23:59:59Z",
        b"9999-12-31T23:00:00-02:00", b"-", day[2:] + b"T" + clock + b"Z",
    ]


_TOO_FEW = (
    lambda s, lv, sv: s + b" " + lv + b" " + sv,
    lambda s, lv, sv: s + b" " + lv,
    lambda s, lv, sv: s,
    lambda s, lv, sv: b"--- truncated ---",
    lambda s, lv, sv: b"}",
    lambda s, lv, sv: b"\tat com.example.orders.Handler.handle(Handler.java:42)",
    lambda s, lv, sv: lv + b" " + sv,
)


def malformed_line(reason: int, second: int, level: int, service: bytes, user: bytes,
                   message: bytes, r: int, first_too_long: bool) -> tuple[bytes, bytes]:
    """A line whose first failing check (the documented order) is ``REASONS[reason]``; and the
    upper-cased level token for unknown_level."""
    stamp = _iso_bytes(second) + b"Z"
    token = LEVELS[level]
    text = message[1:-1]
    if reason == 0:
        length = MAX_LINE + 1 if first_too_long else MAX_LINE + 1 + r % 40_000
        head = b" ".join((stamp, b"ERROR", service, user, b"payload="))
        filler = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo= " * (length // 36 + 1)
        return (head + filler)[:length] + b"\n", b""
    if reason == 1:
        return _TOO_FEW[r % len(_TOO_FEW)](stamp, token, service) + b"\n", b""
    if reason == 2:
        bad = _bad_stamps(second)
        return b" ".join((bad[r % len(bad)], token, service, user, text)) + b"\n", b""
    if reason == 3:
        unknown = UNKNOWN_LEVELS[r % len(UNKNOWN_LEVELS)]
        return b" ".join((stamp, unknown, service, user, text)) + b"\n", unknown.upper()
    bad_bytes = BAD_UTF8[r % len(BAD_UTF8)]
    if r // len(BAD_UTF8) % 2:
        service = service[:3] + bad_bytes + service[3:]
    else:
        user = user + bad_bytes
    return b" ".join((stamp, token, service, user, text)) + b"\n", b""


# -- the writer ---------------------------------------------------------------------------------


class Truth:
    """Exact counts of what was written, built block by block."""

    def __init__(self, model: Model, planner: Planner) -> None:
        self.m = model
        self.planner = planner
        self.lines = 0
        self.blank = 0
        self.variants = 0
        self.malformed: Counter[str] = Counter()
        self.unknown: Counter[bytes] = Counter()
        self.levels = np.zeros(len(LEVELS), np.int64)
        self.services = np.zeros(model.p.services, np.int64)
        self.hours = np.zeros(24, np.int64)
        self.first: int | None = None
        self.last: int | None = None
        self.previous: int | None = None
        self.backwards = 0
        self.tagged = np.zeros(len(planner.tags), np.int64)
        self.future_ns: list[int] = []
        self.latest_ordinary: int | None = None

    def add(self, rows: Rows, seconds: IntArray, frac: IntArray, shifted: IntArray,
            reasons: list[int], unknown: list[bytes]) -> None:
        self.lines += len(rows)
        kind = rows.kind
        self.blank += int((kind == BLANK).sum())
        self.variants += int((kind == VARIANT).sum())
        for reason in reasons:
            self.malformed[REASONS[reason]] += 1
        self.unknown.update(token for token in unknown)
        valid = kind <= VARIANT
        if len(self.tagged):
            tags = np.concatenate([rows.tag[valid & (rows.tag >= 0)], shifted[valid & (shifted >= 0)]])
            self.tagged += np.bincount(tags, minlength=len(self.tagged))
        sec = seconds[valid]
        if not len(sec):
            return
        self.levels += np.bincount(rows.level[valid], minlength=len(LEVELS))
        self.services += np.bincount(rows.service[valid], minlength=len(self.services))
        self.hours += np.bincount(sec // 3600 % 24, minlength=24)
        lo, hi = int(sec.min()), int(sec.max())
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)
        ns = sec * NS + frac[valid]
        before = np.concatenate([[ns[0] if self.previous is None else self.previous], ns[:-1]])
        self.backwards += int((ns < before - self.m.p.clock_skew * NS).sum())
        self.previous = int(ns[-1])
        future = np.zeros(len(sec), bool)
        for shift in self.planner.shifts:
            if shift.delta > 0:
                future |= shifted[valid] == shift.tag
        self.future_ns.extend(int(x) for x in ns[future])
        if (~future).any():
            top = int(sec[~future].max())
            self.latest_ordinary = top if self.latest_ordinary is None else max(top, self.latest_ordinary)

    def document(self, path: str, nbytes: int, mtime: int, p: Params) -> dict[str, Any]:
        m = self.m
        malformed = {reason: self.malformed.get(reason, 0) for reason in REASONS}
        valid = self.lines - self.blank - sum(malformed.values())
        incidents: dict[str, list[dict[str, Any]]] = {}
        for kind, items in self.planner.truth.items():
            incidents[kind] = []
            for index, item in enumerate(items):
                tag = self.planner.tags.index((kind, index))
                written = int(self.tagged[tag])
                if written:
                    key = "injected_lines" if kind in ("error_spike", "user_burst") else "lines"
                    incidents[kind].append({**item, key: written})
        skew_ns = p.clock_skew * NS
        future = sum(1 for ns in self.future_ns if ns > mtime * NS + skew_ns)
        levels = {LEVELS[i].decode(): int(n) for i, n in enumerate(self.levels) if n}
        services = {m.service_names[i].decode(): int(n) for i, n in enumerate(self.services) if n}
        busiest = None if p.new_user_every_line else m.user_name(int(m.user_ids(np.zeros(1, np.int64))[0]))
        return {
            "generator": GENERATOR_VERSION,
            "file": os.path.basename(path),
            "params": asdict(p),
            "bytes": nbytes,
            "mtime": iso(mtime),
            "totals": {"lines": self.lines, "valid": valid, "blank": self.blank,
                       "malformed": sum(malformed.values()), "variants": self.variants},
            "malformed": malformed,
            "unknown_levels": {t.decode(): n for t, n in sorted(self.unknown.items())},
            "log_levels": dict(sorted(levels.items(), key=lambda kv: (-kv[1], kv[0]))),
            "service_counts": dict(sorted(services.items(), key=lambda kv: (-kv[1], kv[0]))),
            "hourly_counts": [int(x) for x in self.hours],
            "time_range": None if self.first is None or self.last is None
            else {"first": iso(self.first), "last": iso(self.last)},
            "busiest_user": None if busiest is None
            else {"user": busiest.decode(), "share": round(m.rank_share(0), 6)},
            "expected": {"time_went_backwards": self.backwards, "future_timestamp": future},
            "incidents": incidents,
        }


def _span_and_lines(p: Params, model_lines: int) -> float:
    if p.span is not None:
        return p.span
    if p.lines_per_second is not None:
        return max(model_lines / p.lines_per_second, 1.0)
    return float(DAY)


class Writer:
    """Draws blocks of lines, mixes in the incidents, formats and writes them."""

    def __init__(self, p: Params, model: Model, planner: Planner, incident_rows: Rows) -> None:
        self.p, self.m, self.planner = p, model, planner
        self.incidents = incident_rows
        self.taken = 0
        self.position = 0.0
        self.line_index = 0
        self.first_too_long = True
        self.forced = False

    def block(self, block: int, n: int, last: bool) -> tuple[bytes, Rows, IntArray, IntArray,
                                                              IntArray, list[int], list[bytes]]:
        p, m = self.p, self.m
        rng = np.random.default_rng([p.seed, 1, block])
        steps = np.cumsum(rng.standard_exponential(n)) + self.position
        if n:
            self.position = float(steps[-1])
        rows = Rows(m.time_of(steps), *self._columns(rng, n))
        limit = np.inf if last else (float(rows.pos[-1]) if n else -np.inf)
        stop = int(np.searchsorted(self.incidents.pos, limit, side="right"))
        if stop > self.taken:
            rows = Rows.concat([rows, self.incidents.take(slice(self.taken, stop))])
            rows = rows.take(np.argsort(rows.pos, kind="stable"))
            self.taken = stop
        seconds = m.t0 + np.floor(rows.pos).astype(np.int64)
        if p.jitter:
            late = rng.integers(0, p.jitter + 1, len(rows))
            seconds -= np.where(rows.tag < 0, late, 0)
        shifted = np.full(len(rows), -1, np.int64)
        for shift in self.planner.shifts:
            inside = (rows.pos >= shift.start) & (rows.pos < shift.end)
            seconds[inside] += shift.delta
            shifted[inside] = shift.tag
        frac = np.zeros(len(rows), np.int64)
        names, name_len = m.user_names(rows.user)
        pair = rows.level * p.services + rows.service
        matrix = np.concatenate(
            [format_stamps(seconds), m.level_service[pair], names, m.messages[rows.message]], axis=1)
        special = np.flatnonzero(rows.kind != CANONICAL)
        reasons: list[int] = []
        unknown: list[bytes] = []
        if not len(special):
            flat = matrix.ravel()
            data = flat[flat.view(bool)].tobytes()
        else:
            matrix[special] = 0
            flat = matrix.ravel()
            body = memoryview(flat[flat.view(bool)].tobytes())
            lengths = 21 + m.level_service_len[pair] + name_len + m.message_len[rows.message]
            lengths[special] = 0
            before = (np.cumsum(lengths) - lengths)[special].tolist()
            lines = self._specials(rng, rows, special, seconds, frac, reasons, unknown)
            parts: list[bytes | memoryview] = []
            at = 0
            for offset, line in zip(before, lines, strict=True):
                parts.append(body[at:offset])
                parts.append(line)
                at = offset
            parts.append(body[at:])
            data = b"".join(parts)
        return data, rows, seconds, frac, shifted, reasons, unknown

    def _columns(self, rng: np.random.Generator, n: int) -> tuple[IntArray, ...]:
        p, m = self.p, self.m
        service = m.services_of(rng, n)
        level = m.levels_of(rng, service)
        if p.new_user_every_line:
            user = np.arange(self.line_index, self.line_index + n, dtype=np.int64)
        else:
            user = m.user_ids(m.user_ranks(rng, n))
        message = rng.integers(0, MESSAGES, n).astype(np.int64)
        r = rng.random(n)
        kind = np.full(n, CANONICAL, np.int64)
        kind[r < p.malformed + p.blank + p.variants] = VARIANT
        kind[r < p.malformed + p.blank] = BLANK
        kind[r < p.malformed] = MALFORMED
        self.line_index += n
        return service, level, user, message, kind, np.full(n, -1, np.int64)

    def _specials(self, rng: np.random.Generator, rows: Rows, special: IntArray, seconds: IntArray,
                  frac: IntArray, reasons: list[int], unknown: list[bytes]) -> list[bytes]:
        """The text of each special line (variant, malformed, blank), in row order."""
        m = self.m
        draws = rng.integers(0, 1 << 40, len(special)).tolist()
        bad = np.flatnonzero(rows.kind[special] == MALFORMED)
        reason_of = np.searchsorted(np.cumsum(REASON_WEIGHTS), rng.random(len(bad)), side="right")
        reason_of = np.minimum(reason_of, len(REASONS) - 1)
        reason_of[rng.random(len(bad)) < TOO_LONG_SHARE] = 0
        if not self.forced and len(bad) >= len(REASONS):
            reason_of[: len(REASONS)] = np.arange(len(REASONS))
            self.forced = True
        reason_at = dict(zip(bad.tolist(), reason_of.tolist(), strict=True))
        lines: list[bytes] = []
        for j, i in enumerate(special.tolist()):
            kind = int(rows.kind[i])
            r = draws[j]
            service = m.service_names[int(rows.service[i])]
            user = m.user_name(int(rows.user[i]))
            message = m.message_texts[int(rows.message[i])]
            if kind == BLANK:
                line = BLANKS[r % len(BLANKS)] + b"\n"
            elif kind == VARIANT:
                line, frac[i] = variant_line(
                    int(seconds[i]), int(rows.level[i]), service, user, message, r)
            else:
                reason = reason_at[j]
                line, token = malformed_line(
                    reason, int(seconds[i]), int(rows.level[i]), service, user, message, r,
                    self.first_too_long)
                if reason == 0:
                    self.first_too_long = False
                reasons.append(reason)
                if token:
                    unknown.append(token)
            lines.append(line)
        return lines


def _estimate_line_bytes(p: Params) -> float:
    """Mean bytes per line, from a pilot block of the same model."""
    pilot = Params(**{**asdict(p), "lines": 20_000, "size": None, "error_bursts": 0,
                      "user_bursts": 0, "clock_jumps": 0, "future_stamps": 0, "seed": p.seed + 1})
    model = Model(pilot, 20_000, _span_and_lines(pilot, 20_000))
    writer = Writer(pilot, model, Planner(model), Rows.empty())
    data, rows, *_ = writer.block(0, 20_000, True)
    too_long = sum(len(line) for line in data.split(b"\n") if len(line) > MAX_LINE)
    ordinary = (len(data) - too_long) / max(len(rows), 1)
    return ordinary + p.malformed * TOO_LONG_SHARE * (MAX_LINE + 20_000)


def generate(path: str, params: Params, truth: str | None = "") -> dict[str, Any]:
    """Write a log file at ``path`` and its ground truth (``truth``: a path, "" for the default
    hidden file beside it, None for none). Returns the ground-truth document, plus a
    ``"timing"`` entry (not written to the truth file)."""
    p = params
    p.check()
    started = time.perf_counter()
    if p.lines is not None:
        target_lines = p.lines
    else:
        assert p.size is not None
        target_lines = int(p.size / _estimate_line_bytes(p) * 1.03) + 1000
    span = _span_and_lines(p, target_lines)
    model = Model(p, target_lines, span)
    planner = Planner(model)
    incident_rows = planner.plan()
    base = target_lines
    if p.lines is not None and len(incident_rows):
        # Incident lines count in --lines, and their number grows with the ordinary traffic they
        # are sized on: plan again on the remaining traffic until the two agree.
        def settle(next_base: Callable[[], int]) -> None:
            """Plan again on ``next_base()`` lines of traffic until it stops moving."""
            nonlocal model, planner, incident_rows
            for _ in range(8):
                base = next_base()
                if abs(base - model.lines) <= max(1, model.lines // 200):
                    return
                model = Model(p, base, span)
                planner = Planner(model)
                incident_rows = planner.plan()

        settle(lambda: max(0, target_lines - len(incident_rows)))
        base = max(0, target_lines - len(incident_rows))
        if base < model.lines // 2:
            # The incidents sized on the traffic outnumber the lines left for it (long bursts of
            # a very skewed population): the plain iteration swings from too much traffic to
            # almost none. They grow in proportion to the traffic, so give it the share of the
            # lines that it keeps next to them.
            settle(lambda: round(target_lines * model.lines
                                 / max(model.lines + len(incident_rows), 1)))
            base = max(0, target_lines - len(incident_rows))
        model.rescale(base)
    writer = Writer(p, model, planner, incident_rows)
    tally = Truth(model, planner)
    written = 0
    block = 0
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        done = False
        while not done:
            n = min(BLOCK_LINES, base - block * BLOCK_LINES) if p.lines is not None else BLOCK_LINES
            n = max(n, 0)
            last = p.lines is not None and (block + 1) * BLOCK_LINES >= base
            data, rows, seconds, frac, shifted, reasons, unknown = writer.block(block, n, last)
            if p.size is not None and written + len(data) >= p.size:
                cut = data.find(b"\n", p.size - written - 1) + 1
                kept = data.count(b"\n", 0, cut)
                data = data[:cut]
                malformed_kept = int((rows.kind[:kept] == MALFORMED).sum())
                reasons = reasons[:malformed_kept]
                unknown = unknown[: sum(1 for r in reasons if r == 3)]
                rows = rows.take(slice(0, kept))
                seconds, frac, shifted = seconds[:kept], frac[:kept], shifted[:kept]
                done = True
            elif p.lines is not None and last:
                done = True
            f.write(data)
            written += len(data)
            tally.add(rows, seconds, frac, shifted, reasons, unknown)
            block += 1
    mtime = (tally.latest_ordinary if tally.latest_ordinary is not None else model.t0) + 1
    os.utime(path, ns=(mtime * NS, mtime * NS))
    document = tally.document(path, written, mtime, p)
    if truth is not None:
        _write_json(truth or truth_path(path), document)
    seconds_taken = time.perf_counter() - started
    document["timing"] = {"seconds": seconds_taken, "mb_per_s": written / 1e6 / max(seconds_taken, 1e-9)}
    return document


def generate_giant_line(path: str, size: int, truth: str | None = "") -> dict[str, Any]:
    """A file that is one line of ``size`` bytes (its ``\\n`` included), written in 1 MiB blocks."""
    started = time.perf_counter()
    head = b"2025-07-22T00:00:00Z INFO GiantService user1 "
    unit = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/+= "
    chunk = (unit * ((1 << 20) // len(unit) + 1))[: 1 << 20]
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        body = size - 1
        first = head[:body]
        f.write(first)
        left = body - len(first)
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            f.write(piece)
            left -= len(piece)
        f.write(b"\n")
    too_long = size - 1 > MAX_LINE
    malformed = dict.fromkeys(REASONS, 0)
    malformed["too_long"] = int(too_long)
    document: dict[str, Any] = {
        "generator": GENERATOR_VERSION, "file": os.path.basename(path),
        "params": {"one_giant_line": size}, "bytes": size,
        "totals": {"lines": 1, "valid": int(not too_long), "blank": 0, "malformed": int(too_long)},
        "malformed": malformed, "incidents": {},
    }
    if truth is not None:
        _write_json(truth or truth_path(path), document)
    seconds = time.perf_counter() - started
    document["timing"] = {"seconds": seconds, "mb_per_s": size / 1e6 / max(seconds, 1e-9)}
    return document


def _write_json(path: str, document: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


# -- command line -------------------------------------------------------------------------------


def _pair(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> tuple[float, float]:
        lo, _, hi = text.partition(":")
        return kind(lo), kind(hi or lo)

    return parse


def build_parser() -> argparse.ArgumentParser:
    d = Params()
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.generate",
        description="Write a deterministic log file in the documented log format, with injected "
        "incidents and their ground truth in .NAME.truth.json beside it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("out", help="file to write")
    size = ap.add_mutually_exclusive_group(required=True)
    size.add_argument("--size", type=parse_size, help="bytes to reach, e.g. 100M, 4G (1M = 2**20)")
    size.add_argument("--lines", type=int,
                      help="total lines, incident lines included")
    size.add_argument("--one-giant-line", type=parse_size, metavar="SIZE",
                      help="write one line of SIZE bytes (streamed) and nothing else")
    ap.add_argument("--users", type=int, default=d.users, help="size of the user population")
    ap.add_argument("--services", type=int, default=d.services, help="distinct services")
    ap.add_argument("--skew", type=float, default=d.skew,
                    help="Zipf-like exponent of user (and service) popularity; 0 = uniform")
    ap.add_argument("--service-skew", type=float, default=None, help="services' exponent (default: --skew)")
    ap.add_argument("--new-user-every-line", action="store_true",
                    help="every line has a user never seen before (cardinality test)")
    ap.add_argument("--malformed", type=float, default=d.malformed,
                    help="share of malformed lines, spread over every malformed reason")
    ap.add_argument("--blank", type=float, default=d.blank, help="share of blank lines")
    ap.add_argument("--variants", type=float, default=d.variants,
                    help="share of valid lines in other forms: fractions, offsets, lowercase "
                    "levels, WARNING, tabs, CRLF, leading blanks, empty or non-UTF-8 messages")
    ap.add_argument("--unicode-names", action="store_true", help="some non-ASCII service names")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--start", default=d.start, help="first timestamp")
    span = ap.add_mutually_exclusive_group()
    span.add_argument("--span", type=parse_duration, help="time covered, e.g. 6h, 1d (default 1d)")
    span.add_argument("--lines-per-second", type=float, help="mean rate; the span follows")
    ap.add_argument("--diurnal", type=float, default=d.diurnal,
                    help="daily cycle amplitude, 0 (flat) to 1 (silent at the quietest hour)")
    ap.add_argument("--peak-hour", type=float, default=d.peak_hour, help="busiest hour, UTC")
    ap.add_argument("--busy-hours", type=_pair(float), default=None, metavar="START:END",
                    help="office hours, UTC; outside them traffic is --night times lower")
    ap.add_argument("--night", type=float, default=d.night,
                    help="traffic outside --busy-hours relative to inside")
    ap.add_argument("--error-rate", type=float, default=d.error_rate,
                    help="median share of error lines of a service (each service differs)")
    ap.add_argument("--noise", type=float, default=d.noise,
                    help="sigma of a log-normal factor on each minute's traffic")
    ap.add_argument("--jitter", type=int, default=d.jitter, help="lines up to N seconds late")
    ap.add_argument("--error-bursts", type=int, default=0, help="services' error bursts to inject")
    ap.add_argument("--user-bursts", type=int, default=0, help="user bursts to inject")
    ap.add_argument("--clock-jumps", type=int, default=0, help="clock jumps back to inject")
    ap.add_argument("--future-stamps", type=int, default=0, help="runs of future stamps to inject")
    ap.add_argument("--incidents", type=int, default=None,
                    help="shorthand: this many of each of the four incident kinds")
    ap.add_argument("--error-multiplier", type=_pair(float), default=d.error_multiplier,
                    metavar="LO:HI", help="error burst, times the service's usual errors")
    ap.add_argument("--user-multiplier", type=_pair(float), default=d.user_multiplier,
                    metavar="LO:HI", help="user burst, times the busiest ordinary user")
    ap.add_argument("--burst-windows", type=_pair(int), default=d.burst_windows, metavar="LO:HI",
                    help="windows a burst lasts")
    ap.add_argument("--error-floor", type=int, default=d.error_floor, metavar="N",
                    help="an error burst adds at least N errors to each of its windows")
    ap.add_argument("--user-floor", type=int, default=d.user_floor, metavar="N",
                    help="a user burst writes at least N lines in each of its windows")
    ap.add_argument("--window", type=int, default=d.window, help="anomaly window, seconds")
    ap.add_argument("--clock-skew", type=int, default=d.clock_skew, help="seconds, as the tool's")
    ap.add_argument("--future-jump", type=parse_duration, default=None,
                    help="how far ahead future stamps are (default: the span plus a day)")
    ap.add_argument("--truth", default="", help="ground-truth path (default: .NAME.truth.json "
                    "beside the file); 'none' to skip")
    ap.add_argument("--quiet", action="store_true", help="print nothing")
    return ap


def params_from(args: argparse.Namespace) -> Params:
    each = args.incidents
    return Params(
        lines=args.lines, size=args.size, users=args.users, services=args.services,
        skew=args.skew, service_skew=args.service_skew, malformed=args.malformed,
        blank=args.blank, variants=args.variants, seed=args.seed, start=args.start,
        span=args.span, lines_per_second=args.lines_per_second, diurnal=args.diurnal,
        peak_hour=args.peak_hour, busy_hours=None if args.busy_hours is None
        else tuple(args.busy_hours), night=args.night, error_rate=args.error_rate, noise=args.noise, jitter=args.jitter,
        new_user_every_line=args.new_user_every_line, unicode_names=args.unicode_names,
        error_bursts=args.error_bursts if each is None else each,
        user_bursts=args.user_bursts if each is None else each,
        clock_jumps=args.clock_jumps if each is None else each,
        future_stamps=args.future_stamps if each is None else each,
        error_multiplier=tuple(args.error_multiplier), user_multiplier=tuple(args.user_multiplier),
        burst_windows=tuple(args.burst_windows), error_floor=args.error_floor,
        user_floor=args.user_floor, window=args.window, clock_skew=args.clock_skew,
        future_jump=args.future_jump,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    truth = None if args.truth == "none" else args.truth
    try:
        if args.one_giant_line is not None:
            doc = generate_giant_line(args.out, args.one_giant_line, truth)
        else:
            doc = generate(args.out, params_from(args), truth)
    except ValueError as err:
        print(f"generate: error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        t = doc["timing"]
        found = {k: len(v) for k, v in doc["incidents"].items() if v}
        print(f"wrote {args.out}: {doc['bytes']:,} bytes, {doc['totals']['lines']:,} lines in "
              f"{t['seconds']:.2f} s ({t['mb_per_s']:,.0f} MB/s); incidents: {found or 'none'}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
