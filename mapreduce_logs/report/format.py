"""Text for the page: escaped, cut, numbers and times as people read them."""

from __future__ import annotations

import functools
import html
import re

from ..ingest.parse import days_from_civil, format_utc

_CONTROLS = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}
_CONTROLS[0x7F] = 0x2421
_CONTROLS.update({c: 0xFFFD for c in range(0x80, 0xA0)})


def text(value: object, limit: int | None = None) -> str:
    """``value`` as HTML text: cut to ``limit`` characters, control characters shown as
    symbols (a NUL or an escape sequence is not markup either), then escaped."""
    s = str(value)
    if limit is not None and len(s) > limit:
        s = s[: max(1, limit - 1)] + "\u2026"
    s = s.translate(_CONTROLS)
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (undecodable bytes of a file name)
            s = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    return html.escape(s, quote=True)


def number(n: float) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:,.2f}".rstrip("0").rstrip(".")


def share(part: int, whole: int) -> str:
    return "\u2013" if whole <= 0 else f"{100 * part / whole:.1f}%"


def duration(seconds: int) -> str:
    """A bucket width for a person: ``1 min``, ``2 h``, ``1 day``, ``4 weeks``."""
    for unit, size in (("week", 604800), ("day", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n:,} {unit}{'s' if n != 1 and unit in ('week', 'day') else ''}"
    return f"{seconds:,} s"


_DATE = re.compile(r"\d{4,5}-\d\d-\d\d")


@functools.lru_cache(maxsize=4096)
def _day_seconds(date: str) -> int:
    if _DATE.fullmatch(date) is None:
        raise ValueError(date)
    year, month, day = date.rsplit("-", 2)
    return days_from_civil(int(year), int(month), int(day)) * 86400


def epoch_seconds(stamp: str) -> int | None:
    """Seconds since the epoch of a ``YYYY-MM-DDTHH:MM:SSZ`` stamp of the documents."""
    if len(stamp) < 20 or stamp[-10] != "T" or stamp[-1] != "Z":
        return None
    try:
        day = _day_seconds(stamp[:-10])
        clock = stamp[-9:-1]
        return day + int(clock[:2]) * 3600 + int(clock[3:5]) * 60 + int(clock[6:])
    except ValueError:
        return None


def utc_text(seconds: int) -> str:
    return format_utc(seconds * 1_000_000_000)
