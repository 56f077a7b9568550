"""The knobs of a run, shared by the mapper, the reducer and the report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything that changes what a run computes or how it runs. Defaults follow SPEC.md."""

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
