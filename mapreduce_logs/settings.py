"""The knobs of a run, shared by the mapper, the reducer and the report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything that changes what a run computes or how it runs. Defaults as docs/cli.md states them."""

    top: int = 10
    peak_hours: int = 3
    window: int = 60
    clock_skew: int | float = 300
    """Seconds; a fraction counts to the nanosecond."""
    chunk_size: int = 32 * 1024 * 1024
    workers: int = 1
    memory_mb: int = 500
    spike_factor: float = 5.0
    spike_min_errors: int = 20
    burst_factor: float = 5.0
    burst_min_lines: int = 20
    tz: str = "UTC"
    """--tz as given: the zone of hourly_counts and peak_hours (see ``zones``)."""
    since_ns: int | None = None
    """--since as an instant (ns): valid lines before it are left out."""
    until_ns: int | None = None
    """--until as an instant (ns): valid lines at or after it are left out."""

    @property
    def clock_skew_ns(self) -> int:
        return round(self.clock_skew * 1_000_000_000)


@dataclass(frozen=True, slots=True)
class Limits:
    """Internal bounds that keep memory flat whatever the input; not options. Read through
    ``limits()`` at the moment of use, so a test overrides them in one place (``LIMITS``)."""

    unknown_levels: int = 1000
    """unknown_level anomalies reported: the first this many distinct tokens in input order.
    Tokens are unbounded in number (a file in another format can have a new one on every line)
    and each anomaly carries examples; every unknown_level line is still counted."""
    window_buffer: int = 200_000
    """Lines per window held in a dict up to this many windows; past it they go to sorted
    arrays on disk (16 bytes a window)."""


LIMITS = Limits()


def limits() -> Limits:
    """The limits in force (``LIMITS``, looked up now)."""
    return LIMITS
