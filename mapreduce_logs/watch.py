"""watch DIR: keep the outputs current as files arrive or grow (not built yet)."""

from __future__ import annotations

import argparse

from .settings import Settings


def watch_main(args: argparse.Namespace, settings: Settings) -> int:
    """Run the watcher until SIGINT or SIGTERM; returns the exit status."""
    raise NotImplementedError("watch is not built yet")
