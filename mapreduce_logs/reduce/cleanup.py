"""Spill folders and their removal: at the end of a run, at exit, on SIGTERM, and after a kill.

The process-wide hooks (``atexit``, ``os.register_at_fork``) are installed by ``install()``, which
the first spill folder or ``removed_on_sigterm`` calls, never at import.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from types import FrameType

PREFIX = ".mapreduce_logs-spill-"
"""Spill folders are named PREFIX + the process id + "-" + random letters (hidden: an output
folder inside a watched or scanned folder is skipped, and so is a spill folder in it)."""

_LIVE: dict[str, int] = {}
"""Spill folders not yet removed -> the process that made them (forked children must not)."""

_PARENTS: set[str] = set()
"""Folders spill folders were made in, noted before each is made: a signal may come between
``mkdtemp`` and the folder's entry in _LIVE."""


def remove_folder(folder: str) -> None:
    """Rename, then delete: a worker still writing cannot create files in the old path."""
    doomed = f"{folder}.removing"
    with contextlib.suppress(OSError):
        os.rename(folder, doomed)
        folder = doomed
    shutil.rmtree(folder, ignore_errors=True)


LOCK = "owner.lock"
"""A file in each spill folder that its run holds an exclusive flock on while it lives: the
kernel lets go of it when the run dies, however (kill -9 included), so a later run can tell a
folder left behind from one in use."""


def hold_lock(folder: str) -> int:
    """Lock ``folder`` for this process; the file appears under its name already locked, so
    that ``remove_stale`` can never take a folder being made for left behind."""
    fd = os.open(os.path.join(folder, LOCK + ".new"), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(os.path.join(folder, LOCK + ".new"), os.path.join(folder, LOCK))
    return fd


def remove_stale(parent: str) -> list[str]:
    """Remove the spill folders in ``parent`` that a run killed before it could clean up left
    behind (their lock is free); those in use, or without a lock, stay. Returns those removed."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith(PREFIX)]
    except OSError:
        return []
    removed = []
    for name in names:
        folder = os.path.join(parent, name)
        try:
            fd = os.open(os.path.join(folder, LOCK), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # in use
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def remove_spills() -> None:
    """Remove every spill folder this process made and has not removed yet."""
    for folder, pid in list(_LIVE.items()):
        if pid == os.getpid():
            remove_folder(folder)
            _LIVE.pop(folder, None)
    for parent in list(_PARENTS):
        for folder in glob.glob(os.path.join(glob.escape(parent), f"{PREFIX}{os.getpid()}-*")):
            remove_folder(folder)


@contextlib.contextmanager
def removed_on_sigterm() -> Iterator[None]:
    """While in the block, SIGTERM removes the spill folders before it kills the process.

    Only when SIGTERM has its default action and this is the main thread; the process still
    dies of the signal (no exception that some ``except`` could swallow). A child forked
    meanwhile gets the default action back.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    install()
    signal.signal(signal.SIGTERM, _remove_then_die)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _remove_then_die(signum: int, frame: FrameType | None) -> None:
    remove_spills()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    # A worker forked inside the block keeps SIGTERM's default action: the spill folders are
    # the parent's to remove, and a Python handler would only run between bytecodes of a
    # worker stuck in C.
    if signal.getsignal(signal.SIGTERM) is _remove_then_die:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for hook in _CHILD_HOOKS:
        hook()


_CHILD_HOOKS: list[Callable[[], None]] = []
_installed = False


def install(after_fork_in_child: Callable[[], None] | None = None) -> None:
    """Install the process-wide hooks once (at exit: remove this process's spill folders; in a
    forked child: SIGTERM's default action back, and ``after_fork_in_child`` if given)."""
    global _installed
    if after_fork_in_child is not None and after_fork_in_child not in _CHILD_HOOKS:
        _CHILD_HOOKS.append(after_fork_in_child)
    if not _installed:
        _installed = True
        atexit.register(remove_spills)
        os.register_at_fork(after_in_child=_after_fork_in_child)


def make_folder(parent: str | None) -> str:
    """A new spill folder in ``parent`` (None: the system's temporary folder), removed at exit
    if nothing removes it before."""
    install()
    parent = parent if parent is not None else tempfile.gettempdir()
    _PARENTS.add(parent)
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)
    _LIVE[folder] = os.getpid()
    return folder


def remove_made(folder: str) -> None:
    """Remove a folder ``make_folder`` made."""
    remove_folder(folder)
    _LIVE.pop(folder, None)
