"""``--tz``, ``--since`` and ``--until``: a zone's local hour of an instant, and TIME -> instant.

A zone is an IANA name, read through ``zoneinfo`` (the system's database, else the ``tzdata``
package), or a fixed offset (``+05:30``, ``-0800``). The mapper asks for the local hour of every
distinct UTC second it counts; for an IANA zone the answer comes from a table built once per UTC
hour (at most one zone transition falls in an hour), so ``zoneinfo`` is asked twice per hour of
input, never per line.

``datetime`` stops at years 1 and 9999, and a zone's offset can push an instant of either year
past them. Such an instant is looked up 400 years nearer (a Gregorian cycle: the same calendar,
so the same weekdays and the same daylight-saving rule); the hour of day does not change.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Callable
from typing import Final

from .parse import DAY, END_SECONDS, MIN_SECONDS, NS, parse_timestamp

UTC_NAME: Final = "UTC"
HOUR: Final = 3600
CYCLE_SECONDS: Final = 146_097 * DAY
"""400 Gregorian years."""
EDGE_SECONDS: Final = 2 * DAY
"""Instants this near year 1 or year 9999 are looked up a cycle away (offsets are under a day)."""
TABLE_LIMIT: Final = 200_000
"""UTC hours a zone's table holds before it starts again (input spread over centuries)."""

_FIXED = re.compile(r"([+-])([0-9]{2}):?([0-9]{2})")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DATE = re.compile(rb"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_OFFSET_TAIL = re.compile(rb"(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})")

HourPiece = tuple[tuple[int, ...], tuple[int, ...]]
"""Within one UTC hour: the seconds at which the local hour changes, and the local hours
(one more than the seconds)."""


class ZoneError(ValueError):
    """A --tz value that is neither a known IANA zone nor a fixed offset."""


class Zone:
    """One --tz value: its local hour of a UTC second, and the instant of a local wall time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fixed: int | None = None
        """The offset in seconds of a fixed-offset zone (UTC is one: 0)."""
        self.info: zoneinfo.ZoneInfo | None = None
        self._table: dict[int, int | HourPiece] = {}
        fixed = _FIXED.fullmatch(name)
        if name == UTC_NAME:
            self.fixed = 0
        elif fixed is not None:
            sign, hours, minutes = fixed.groups()
            if int(hours) > 23 or int(minutes) > 59:
                raise ZoneError(f"offset out of range (at most 23:59): {name!r}")
            self.fixed = (int(hours) * HOUR + int(minutes) * 60) * (-1 if sign == "-" else 1)
        else:
            self.info = _zoneinfo(name)

    def hour_of(self, second: int) -> int:
        """The local hour of day (0-23) of the UTC second ``second`` (Unix time)."""
        if self.fixed is not None:
            return (second + self.fixed) // HOUR % 24
        utc_hour = second // HOUR
        entry = self._table.get(utc_hour)
        if entry is None:
            if len(self._table) >= TABLE_LIMIT:
                self._table.clear()
            entry = self._table[utc_hour] = self._hour_piece(utc_hour * HOUR)
        if isinstance(entry, int):
            return entry
        cuts, hours = entry
        return hours[bisect.bisect_right(cuts, second - utc_hour * HOUR)]

    def offset_at(self, second: int) -> int:
        """The zone's offset from UTC, in seconds, at the UTC second ``second``."""
        if self.fixed is not None:
            return self.fixed
        assert self.info is not None
        shifted = _in_datetime_range(second)
        offset = (_EPOCH + dt.timedelta(seconds=shifted)).astimezone(self.info).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    def _hour_piece(self, start: int) -> int | HourPiece:
        """The local hours of the UTC hour starting at ``start``: one int when it is one hour."""
        first, last = self.offset_at(start), self.offset_at(start + HOUR - 1)
        spans = [(0, HOUR, first)]
        if first != last:
            low, high = 0, HOUR - 1  # offset(start + low) == first, offset(start + high) == last
            while high - low > 1:
                mid = (low + high) // 2
                if self.offset_at(start + mid) == first:
                    low = mid
                else:
                    high = mid
            spans = [(0, high, first), (high, HOUR, last)]
        cuts: list[int] = []
        hours: list[int] = []
        for begin, end, offset in spans:
            # The local hour turns where start + s + offset is a multiple of an hour.
            turn = begin + (-(start + begin + offset)) % HOUR
            for s in (begin, turn) if begin < turn < end else (begin,):
                hour = (start + s + offset) // HOUR % 24
                if not hours:
                    hours.append(hour)
                elif hour != hours[-1]:
                    cuts.append(s)
                    hours.append(hour)
        if not cuts:
            return hours[0]
        return tuple(cuts), tuple(hours)

    def wall_to_instant(self, wall_ns: int) -> int:
        """The instant (ns) of a local wall time given as if it were UTC (ns).

        A wall time that occurs twice (clocks set back) is its first occurrence; one that does
        not occur (clocks set forward) is read with the offset in force before the change, so
        02:30 on a night that skips from 02:00 to 03:00 is 03:30 after it (``fold=0``)."""
        if self.fixed is not None:
            return wall_ns - self.fixed * NS
        assert self.info is not None
        second = wall_ns // NS
        shifted = _in_datetime_range(second)
        wall = (_EPOCH + dt.timedelta(seconds=shifted)).replace(tzinfo=self.info, fold=0)
        offset = wall.utcoffset()
        assert offset is not None
        return wall_ns - int(offset.total_seconds()) * NS


def _in_datetime_range(second: int) -> int:
    """``second`` moved by a 400-year cycle when it is too near year 1 or year 9999 for
    ``datetime`` to add an offset to it."""
    if second < MIN_SECONDS + EDGE_SECONDS:
        return second + CYCLE_SECONDS
    if second >= END_SECONDS - EDGE_SECONDS:
        return second - CYCLE_SECONDS
    return second


def _zoneinfo(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ZoneError(
            f"unknown time zone {name!r} (an IANA name such as Europe/Paris, or an offset "
            "such as +05:30)"
        ) from None


@functools.lru_cache(maxsize=8)
def zone(name: str) -> Zone:
    """The Zone of a --tz value, one per process; ZoneError when there is none."""
    return Zone(name)


def local_hour(name: str) -> Callable[[int], int] | None:
    """The local-hour function of zone ``name`` for the mapper; None for UTC (hour of the
    second itself, the fast path's own arithmetic)."""
    if name == UTC_NAME:
        return None
    return zone(name).hour_of


class TimeError(ValueError):
    """A --since or --until value that is not a TIME."""


def parse_time(text: str, tz: str) -> int:
    """The instant (ns) of a TIME: a timestamp of the input grammar or a date ``YYYY-MM-DD``
    (its midnight); without an offset it is local time in ``tz``."""
    raw = text.encode("utf-8", "surrogateescape")
    date = _DATE.fullmatch(raw)
    if date is not None:
        raw += b"T00:00:00"
    instant = parse_timestamp(raw)
    if instant is None:
        raise TimeError(
            f"not a time: {text!r} (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[.fraction]"
            "[Z|+HH:MM])"
        )
    if _OFFSET_TAIL.fullmatch(raw[19:].lstrip(b".0123456789")):
        return instant
    return zone(tz).wall_to_instant(instant)
