"""Which mapper runs: the compiled kernel (``_kernel.c``) or the pure-Python fast path.

Both give the same Partial for the same bytes. The compiled one is built by ``pip install`` when
a C compiler is there; without one the package installs and runs the pure path. The variable
MAPREDUCE_LOGS_KERNEL chooses: ``python`` forces the pure path, ``compiled`` insists on the
kernel (an error when it was not built), anything else (or unset) takes the kernel if built.
"""

from __future__ import annotations

import os
from collections import Counter
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from ..errors import KernelUnavailableError
from ..model.partial import MAX_EXAMPLES, Partial, Segment, add_counts
from ..settings import Settings

if TYPE_CHECKING:  # numpy is imported only when the kernel hands columns over
    from ..model.columns import Columns

ENV: Final = "MAPREDUCE_LOGS_KERNEL"

MAX_WINDOW: Final = 1 << 40
"""Longest --window the kernel counts in (its windows and seconds are 64-bit integers)."""


def _load() -> ModuleType | None:
    try:
        from . import _kernel  # type: ignore[attr-defined]
    except ImportError:
        return None
    module: ModuleType = _kernel
    return module


compiled: Final = _load()
"""The compiled module, or None when it was not built."""


__all__ = ["ENV", "MAX_WINDOW", "KernelUnavailableError", "applies", "compiled", "drain_into",
           "name", "wanted"]


def applies(settings: Settings) -> bool:
    """True when the compiled kernel maps a run with these settings.

    The one place that decides: an option the kernel does not implement turns it off here.
    """
    choice = os.environ.get(ENV, "").strip().lower()
    if choice == "python":
        return False
    if compiled is None:
        if choice == "compiled":
            raise KernelUnavailableError(
                f"{ENV}=compiled, but the compiled kernel was not built (no C compiler at install?)")
        return False
    # --tz, --since and --until are counted by the Python path only, for now.
    plain = settings.tz == "UTC" and settings.since_ns is None and settings.until_ns is None
    return plain and 1 <= settings.window <= MAX_WINDOW


def name(settings: Settings) -> str:
    """``"compiled"`` or ``"python"``: what metrics.json reports for a run."""
    return "compiled" if applies(settings) else "python"


def wanted(segment: Segment) -> int:
    """The kernel's WANT_* bits: the examples ``segment`` still takes (and, with its
    ``future_lines``, every future-stamped line)."""
    k = compiled
    assert k is not None
    want = 0
    if len(segment.backwards_examples) < MAX_EXAMPLES:
        want |= k.WANT_BACKWARDS
    if len(segment.future_examples) < MAX_EXAMPLES or segment.future_lines is not None:
        want |= k.WANT_FUTURE
    examples = segment.malformed_examples
    if len(examples.get("too_few_fields", ())) < MAX_EXAMPLES:
        want |= k.WANT_TOO_FEW
    if len(examples.get("bad_timestamp", ())) < MAX_EXAMPLES:
        want |= k.WANT_BAD_TS
    if len(examples.get("bad_encoding", ())) < MAX_EXAMPLES:
        want |= k.WANT_BAD_ENC
    return want


def drain_into(kernel: Any, p: Partial, segment: Segment, window_errors: Counter[int],
               columns: bool = False) -> None:
    """Move what ``kernel`` counted since its last drain into ``p``, ``segment`` and
    ``window_errors`` (window -> ERROR, CRITICAL and FATAL lines); the kernel starts again empty.
    With ``columns`` its (subject, window) tables go to ``p.runs`` as one ``Columns`` (and
    ``p.users`` and ``p.services``, their sums, get nothing of them)."""
    counts = kernel.drain(columns)
    p.lines += counts["lines"]
    p.valid += counts["valid"]
    p.blank += counts["blank"]
    segment.backwards += counts["backwards"]
    segment.future += counts["future"]
    p.hours = [a + b for a, b in zip(p.hours, counts["hours"], strict=True)]
    low, high = counts["min_ts"], counts["max_ts"]
    if low is not None and (p.min_ts is None or low < p.min_ts):
        p.min_ts = low
    if high is not None and (p.max_ts is None or high > p.max_ts):
        p.max_ts = high
    if not columns:
        for name in ("users", "services", "user_lines", "service_errors", "service_others",
                     "user_errors"):
            add_counts(getattr(p, name), counts[name])
        for (_service, window), n in counts["service_errors"].items():
            window_errors[window] += n
    else:
        add_counts(window_errors, counts["window_errors"])
        run = _column_run(counts)
        if run.entries():
            p.runs.append(run)
    for name in ("malformed", "levels", "window_lines"):
        add_counts(getattr(p, name), counts[name])


def _column_run(counts: dict[str, Any]) -> Columns:
    """The kernel's columns as ``Columns`` (not summed): users, then services, in one list of
    names (a name may be both)."""
    import numpy as np

    from ..model.columns import Columns
    from ..model.names import Names

    users, services = (Names(blob, np.frombuffer(ends, np.int64))
                       for blob, ends in (counts["user_names"], counts["service_names"]))
    offset = len(users)

    def table(name: str, shift: int = 0) -> tuple[Any, Any, Any]:
        ids, windows, n = (np.frombuffer(c, np.int64) for c in counts[name])
        return (ids + shift if shift else ids), windows, n

    return Columns(Names.join([users, services]),
                   [table("user_lines"), table("service_errors", offset),
                    table("service_others", offset), table("user_errors")])
