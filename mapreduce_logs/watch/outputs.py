"""The watcher's outputs: summary.json after every commit, anomalies.json throttled while a
backlog waits (it takes a pass over every counter), and report.html with each anomalies.json."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..model.partial import Partial
from ..report.documents import build_anomalies, build_summary
from ..report.html import build_page, page_data
from ..report.output import to_json, write_atomic
from ..settings import Settings
from .checkpoint import Checkpoint
from .state import State

ANOMALIES_EVERY = 10.0
"""While a backlog is counted, anomalies.json (a pass over every counter: seconds with years
of windows) is written again at most this often; summary.json after every batch, and both
once the backlog is done."""


class Outputs:
    """Writes the outputs of the committed state into ``out``."""

    def __init__(self, out: str, settings: Settings, checkpoint: Checkpoint,
                 clock: Callable[[], float] = time.monotonic,
                 figures: Callable[[], dict[str, Any]] | None = None) -> None:
        self.out = out
        self.figures = figures
        """The run figures report.html shows (what the watcher has read so far), if any."""
        self.settings = settings
        self.checkpoint = checkpoint
        self.clock = clock
        self.anomaly_counts: dict[str, int] = {}
        self.anomalies_due = 0.0
        """When anomalies.json may be written again while a backlog waits."""
        self.anomalies_stale = False
        """Whether anomalies.json is behind the last commit."""

    def write(self, state: State, anomalies: bool = True) -> None:
        """summary.json first: it takes no pass over the counters; then anomalies.json, which
        does (or only mark it behind)."""
        view = state.view()
        summary = build_summary(
            # the summary needs no lines per window (a merge over every window: not done)
            replace(view, digest=self.checkpoint.digest({}, anomalies=False)),
            self.settings,
        )
        write_atomic(os.path.join(self.out, "summary.json"), to_json(summary))
        if anomalies:
            self.write_anomalies(state, view)
        else:
            self.anomalies_stale = True

    def anomalies_now(self, backlog: bool) -> bool:
        """Whether this commit writes anomalies.json: always without a backlog; with one, at
        most every ANOMALIES_EVERY seconds from when it began."""
        if not backlog:
            return True
        if not self.anomalies_stale:
            self.anomalies_due = self.clock() + ANOMALIES_EVERY  # a backlog begins
            return False
        return self.clock() >= self.anomalies_due

    def write_anomalies(self, state: State, view: Partial | None = None) -> None:
        if view is None:
            view = state.view()
        window_lines = state.window_lines(view)
        self.anomalies_stale = False
        self.anomalies_due = self.clock() + ANOMALIES_EVERY
        view = replace(view, digest=self.checkpoint.digest(window_lines))
        view = self.checkpoint.with_lines(view, state.future_after())
        anomalies = build_anomalies(view, self.settings)
        self.anomaly_counts = anomalies["counts"]
        write_atomic(os.path.join(self.out, "anomalies.json"), to_json(anomalies))
        summary = build_summary(view, self.settings)
        figures = self.figures() if self.figures is not None else None
        page = build_page(page_data(view, summary, anomalies, self.settings.window, figures))
        write_atomic(os.path.join(self.out, "report.html"), page)
