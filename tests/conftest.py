"""Shared test setup: hypothesis profiles and the import path of the test helpers.

``HYPOTHESIS_PROFILE=ci`` derandomises the property tests (same examples every run);
the default profile explores new examples each run; ``noshrink`` reports the first failure
found without shrinking it (for checking that the tests catch a planted bug quickly). None has a deadline: the pool
tests fork processes and their timing says nothing about correctness (the pure property tests
set their own, ``strategies.DEADLINE``).

A test that hangs fails by name (``pytest_timeout_set_timer`` below): pytest-timeout's signal
method raises ``pytest.fail``'s exception, which hypothesis takes for a failing example and
replays, with no timer left, so a hang inside ``@given`` used to hang the whole run.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, settings

from mapreduce_logs.ingest import kernel as native

sys.path.insert(0, os.path.dirname(__file__))

# On a failure hypothesis imports libcst to suggest a patch, and libcst trips a deprecation
# warning in mypy_extensions, which filterwarnings = error turns into a pytest INTERNALERROR
# that hides the real failure. Import it once here, quietly.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import libcst  # noqa: F401

settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True,
    derandomize=True,
)
settings.register_profile(
    "noshrink", deadline=None, suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


class HangError(BaseException):
    """A test ran past its timeout. Not an ``Exception`` (nor pytest's ``Failed``), so that
    hypothesis does not take it for a failing example to shrink and replay: it ends the test,
    which pytest reports as failed, and the session goes on."""


HANG_GRACE = 10.0
"""Seconds past the timeout after which a test stuck where no signal reaches it (C code that
holds the GIL: no Python thread runs either) ends the whole session, every thread's stack,
the test's frame included, on stderr (faulthandler's own thread needs no GIL)."""


def pytest_configure(config: pytest.Config) -> None:
    # stderr as it is before the tests' output is captured, for the backstop's dump.
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        assert sys.__stderr__ is not None
        fd = sys.__stderr__.fileno()
    config.stash[_HANG_FD] = os.dup(fd)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _HANG_FD in config.stash:
        os.close(config.stash[_HANG_FD])
        del config.stash[_HANG_FD]


_HANG_FD = pytest.StashKey[int]()
_CALLING = pytest.StashKey[bool]()
_ALARMED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    item.stash[_CALLING] = True
    try:
        return (yield)
    finally:
        item.stash[_CALLING] = False


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """The ``signal`` method of pytest-timeout, raising HangError in the stuck frame, with a
    backstop (the ``thread`` method's exit, from faulthandler) for a hang that the signal
    cannot interrupt. Other methods, other threads: pytest-timeout's own."""
    timeout = float(settings.timeout)
    if (
        settings.method != "signal"
        or threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
    ):
        return None

    def on_alarm(signum: int, frame: Any) -> None:
        # Again every second while the test function runs, should something swallow it
        # (hypothesis reporting a failure it found replays the example and keeps any exception
        # of the replay for its report); not into pytest's own reporting after it.
        again = item.stash.get(_ALARMED, False)
        item.stash[_ALARMED] = True
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        if not again or item.stash.get(_CALLING, False):
            raise HangError(f"{item.nodeid} still running after its {timeout:g} s timeout")

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        faulthandler.cancel_dump_traceback_later()

    cancel_timeout: Callable[[], None] = cancel
    item.cancel_timeout = cancel_timeout  # type: ignore[attr-defined]
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    faulthandler.dump_traceback_later(timeout + min(HANG_GRACE, timeout),
                                      file=item.config.stash[_HANG_FD], exit=True)
    return True


KERNELS = ["compiled", "python"] if native.compiled is not None else ["python"]
"""The mappers to test: the compiled kernel when it was built, and always the pure path."""


@pytest.fixture(scope="module", params=KERNELS)
def each_kernel(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a module's tests once per mapper (MAPREDUCE_LOGS_KERNEL). A module-scoped fixture
    that forks workers must depend on it, so that they are forked with the right setting."""
    with mock.patch.dict(os.environ, {native.ENV: request.param}):
        yield request.param
