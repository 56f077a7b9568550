"""One raw line (bytes, without its newline) -> a Record, a Malformed reason, or blank.

Pure and I/O free. This is the exact (slow) path that defines the grammar of docs/input.md;
the block scanner in ``scan.py`` takes a faster route for canonical lines and must agree with it.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

MAX_LINE: Final = 65_536
"""Longest line, in bytes before its newline, that is not ``too_long``."""

REASONS: Final = ("too_long", "too_few_fields", "bad_timestamp", "unknown_level", "bad_encoding")
"""Malformed reasons, in the order they are checked."""

LEVELS: Final[dict[bytes, bytes]] = {
    b"TRACE": b"TRACE",
    b"DEBUG": b"DEBUG",
    b"INFO": b"INFO",
    b"NOTICE": b"NOTICE",
    b"WARN": b"WARN",
    b"WARNING": b"WARN",
    b"ERROR": b"ERROR",
    b"CRITICAL": b"CRITICAL",
    b"FATAL": b"FATAL",
}
"""Upper-cased level token -> the name it is reported under."""

ERROR_LEVELS: Final = frozenset({b"ERROR", b"CRITICAL", b"FATAL"})

NS: Final = 1_000_000_000
DAY: Final = 86_400

_TIMESTAMP = re.compile(
    rb"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    rb"(?:\.([0-9]{1,9}))?"
    rb"(?:[Zz]|([+-])([0-9]{2}):?([0-9]{2}))?"
)


class Record(NamedTuple):
    """A valid line. ``ts_ns`` is the UTC instant in nanoseconds since the Unix epoch."""

    ts_ns: int
    level: bytes
    service: bytes
    user: bytes


class Malformed(NamedTuple):
    """A malformed line; ``level`` is the upper-cased level token for ``unknown_level``."""

    reason: str
    level: bytes = b""


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (any year, 0 included)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


MIN_SECONDS: Final = days_from_civil(1, 1, 1) * DAY
"""First second of year 0001, UTC."""
END_SECONDS: Final = days_from_civil(10_000, 1, 1) * DAY
"""First second after year 9999, UTC."""

_MONTH_DAYS: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def parse_timestamp(token: bytes) -> int | None:
    """The UTC instant of a timestamp token in nanoseconds, or None when it is not valid."""
    m = _TIMESTAMP.fullmatch(token)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if not 1 <= month <= 12 or day < 1 or hour > 23 or minute > 59 or second > 59:
        return None
    if day > _MONTH_DAYS[month] and not (month == 2 and day == 29 and _is_leap(year)):
        return None
    seconds = days_from_civil(year, month, day) * DAY + hour * 3600 + minute * 60 + second
    sign = m.group(8)
    if sign is not None:
        off_hours, off_minutes = int(m.group(9)), int(m.group(10))
        if off_hours > 23 or off_minutes > 59:
            return None
        offset = off_hours * 3600 + off_minutes * 60
        seconds -= offset if sign == b"+" else -offset
    if not MIN_SECONDS <= seconds < END_SECONDS:
        return None
    fraction = m.group(7)
    return seconds * NS + (int(fraction.ljust(9, b"0")) if fraction else 0)


def _is_utf8(token: bytes) -> bool:
    try:
        token.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_line(line: bytes) -> Record | Malformed | None:
    """Classify one line (without its ``\\n``): None for blank, else a Record or Malformed."""
    if len(line) > MAX_LINE:
        return None if line.isspace() else Malformed("too_long")
    fields = line.split(None, 4)
    if len(fields) < 4:
        return Malformed("too_few_fields") if fields else None
    ts_ns = parse_timestamp(fields[0])
    if ts_ns is None:
        return Malformed("bad_timestamp")
    token = fields[1].upper()
    level = LEVELS.get(token)
    if level is None:
        return Malformed("unknown_level", token)
    service, user = fields[2], fields[3]
    if not (service.isascii() or _is_utf8(service)) or not (user.isascii() or _is_utf8(user)):
        return Malformed("bad_encoding")
    return Record(ts_ns, level, service, user)


def format_utc(ts_ns: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for an instant, fraction cut off."""
    seconds = ts_ns // NS
    days, rem = divmod(seconds, DAY)
    year, month, day = civil_from_days(days)
    return f"{year:04d}-{month:02d}-{day:02d}T{rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}Z"


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Inverse of ``days_from_civil``."""
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def example_text(line: bytes) -> str:
    """What an anomaly example shows of a line: its first 200 characters, invalid UTF-8 replaced.

    Any 800 bytes decode to at least 200 characters, so a prefix of the line is enough.
    """
    return line[:EXAMPLE_BYTES].decode("utf-8", "replace")[:200]


EXAMPLE_BYTES: Final = 1024
"""How much of a line is kept for its example text."""
