"""File notifications for the watcher: watchdog's observer feeding a bounded set of paths.

The observer thread only names paths; the watcher's own loop looks at them. The set is bounded:
when it is full, further events are dropped and a full rescan is asked for instead, so memory stays
flat however many files arrive, and nothing is lost (the rescan lists the folder).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from ..ingest.split import is_skipped

IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})


class PendingPaths:
    """Paths waiting to be looked at, at most ``limit`` of them; thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.wake = threading.Event()
        """Set when something arrived (or the watcher should stop waiting)."""
        self.most = 0
        """The largest number of paths ever held at once (for tests and figures)."""
        self._lock = threading.Lock()
        self._paths: dict[str, None] = {}
        self._overflowed = False

    def add(self, path: str) -> None:
        with self._lock:
            if path not in self._paths:
                if len(self._paths) < self.limit:
                    self._paths[path] = None
                    self.most = max(self.most, len(self._paths))
                else:
                    self._overflowed = True
        self.wake.set()

    def overflow(self) -> None:
        """Ask for a full rescan (the set overflowed, or an event names no single file)."""
        with self._lock:
            self._overflowed = True
        self.wake.set()

    def take(self) -> tuple[list[str], bool]:
        """The waiting paths, and whether a full rescan is needed; leaves the set empty."""
        with self._lock:
            paths, overflowed = list(self._paths), self._overflowed
            self._paths, self._overflowed = {}, False
            self.wake.clear()
        return paths, overflowed

    def __len__(self) -> int:
        with self._lock:
            return len(self._paths)


class FolderEvents(FileSystemEventHandler):
    """Turns watchdog events under ``folder`` into paths spelled as a listing of ``folder`` spells them."""

    def __init__(self, folder: str, recursive: bool, pending: PendingPaths) -> None:
        self.folder = folder
        self.root = os.path.abspath(folder)
        self.recursive = recursive
        self.pending = pending

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        if event.is_directory:
            if self.recursive and event.event_type in ("created", "moved", "deleted"):
                self.pending.overflow()
            return
        for raw in (event.src_path, event.dest_path):
            if raw:
                path = self.spelled(os.fsdecode(raw))
                if path is not None:
                    self.pending.add(path)

    def spelled(self, path: str) -> str | None:
        """``path`` as the folder listing names it, or None when a listing would leave it out."""
        rel = os.path.relpath(os.path.abspath(path), self.root)
        parts = rel.split(os.sep)
        if rel.startswith(os.pardir) or (len(parts) > 1 and not self.recursive):
            return None
        if any(is_skipped(part) for part in parts):
            return None
        return os.path.join(self.folder, rel)


def start_observer(
    folder: str, recursive: bool, pending: PendingPaths, say: Callable[[str], None]
) -> BaseObserver | None:
    """watchdog's native observer (inotify on Linux) on ``folder``, or None if it cannot start."""
    from watchdog.observers import Observer

    observer = Observer()
    try:
        observer.schedule(FolderEvents(folder, recursive, pending), folder, recursive=recursive)
        observer.start()
    except OSError as err:
        say(f"file notifications unavailable ({err.strerror or err}); polling instead")
        return None
    return observer
