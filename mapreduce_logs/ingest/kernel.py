"""Which mapper runs: the compiled kernel (``_kernel.c``) or the pure-Python fast path.

Both give the same Partial for the same bytes. The compiled one is built by ``pip install`` when
a C compiler is there; without one the package installs and runs the pure path. The variable
MAPREDUCE_LOGS_KERNEL chooses: ``python`` forces the pure path, ``compiled`` insists on the
kernel (an error when it was not built), anything else (or unset) takes the kernel if built.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Final

from ..settings import Settings

ENV: Final = "MAPREDUCE_LOGS_KERNEL"

MAX_WINDOW: Final = 1 << 40
"""Longest --window the kernel counts in (its windows and seconds are 64-bit integers)."""


class KernelUnavailableError(RuntimeError):
    """MAPREDUCE_LOGS_KERNEL=compiled, but the compiled kernel was not built."""


def _load() -> ModuleType | None:
    try:
        from . import _kernel  # type: ignore[attr-defined]
    except ImportError:
        return None
    module: ModuleType = _kernel
    return module


compiled: Final = _load()
"""The compiled module, or None when it was not built."""


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
    return 1 <= settings.window <= MAX_WINDOW


def name(settings: Settings) -> str:
    """``"compiled"`` or ``"python"``: what metrics.json reports for a run."""
    return "compiled" if applies(settings) else "python"
