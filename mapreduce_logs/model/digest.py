"""What the digest of the high-cardinality counters yields, and the tables it is made from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..settings import Settings

Key = tuple[bytes, int]
"""(user or service, window index)."""


class Found(NamedTuple):
    """A detected anomaly with what it sorts by: window start (seconds) and subject."""

    time: int
    subject: bytes
    body: dict[str, Any]


class Tables(NamedTuple):
    """The high-cardinality counters, each keyed by (subject, window index)."""

    user_lines: dict[Key, int]
    service_errors: dict[Key, int]
    service_others: dict[Key, int]
    user_errors: dict[Key, int]
    """ERROR, CRITICAL and FATAL lines of each user (for the error share of the top users)."""

    @classmethod
    def empty(cls) -> Tables:
        return cls({}, {}, {}, {})

    def entries(self) -> int:
        return sum(map(len, self))


def rules_of(settings: Settings) -> tuple[int, float, int, float, int]:
    return (
        settings.window,
        settings.spike_factor,
        settings.spike_min_errors,
        settings.burst_factor,
        settings.burst_min_lines,
    )


@dataclass(slots=True)
class Digest:
    """What the report needs from the high-cardinality counters, exact at any cardinality."""

    top: int
    """How many top services and users were kept (``Settings.top`` of the run)."""
    rules: tuple[int, float, int, float, int]
    """The detector settings the anomalies were found with."""
    top_services: list[tuple[bytes, int]]
    top_users: list[tuple[bytes, int]]
    distinct_services: int
    distinct_users: int
    spikes: list[Found]
    bursts: list[Found]
    service_errors: dict[bytes, int] | None = None
    """ERROR, CRITICAL and FATAL lines of each of ``top_services`` (None: not counted)."""
    user_errors: dict[bytes, int] | None = None
    """ERROR, CRITICAL and FATAL lines of each of ``top_users`` (None: not counted)."""

    def check(self, settings: Settings) -> None:
        """Refuse to report with settings this digest was not computed for."""
        if settings.top > self.top or rules_of(settings) != self.rules:
            raise ValueError("this Partial was digested with other --top or anomaly settings")


class PartDigest(NamedTuple):
    """What some disjoint partitions contribute to the Digest, burst candidates aside."""

    top_services: list[tuple[bytes, int]]
    top_users: list[tuple[bytes, int]]
    distinct_services: int
    distinct_users: int
    spikes: list[Found]
    share: float
    """The busiest share among their users: the run's is the largest of these."""
    service_errors: Mapping[bytes, int] = {}
    """Error lines of each of ``top_services``."""
    user_errors: Mapping[bytes, int] = {}
    """Error lines of each of ``top_users``."""
