"""Shared test setup: hypothesis profiles and the import path of the test helpers.

``HYPOTHESIS_PROFILE=ci`` derandomises the property tests (same examples every run);
the default profile explores new examples each run; ``noshrink`` reports the first failure
found without shrinking it (for checking that the tests catch a planted bug quickly). Neither has a deadline: the pool
tests fork processes and their timing says nothing about correctness.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
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


KERNELS = ["compiled", "python"] if native.compiled is not None else ["python"]
"""The mappers to test: the compiled kernel when it was built, and always the pure path."""


@pytest.fixture(scope="module", params=KERNELS)
def each_kernel(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a module's tests once per mapper (MAPREDUCE_LOGS_KERNEL). A module-scoped fixture
    that forks workers must depend on it, so that they are forked with the right setting."""
    with mock.patch.dict(os.environ, {native.ENV: request.param}):
        yield request.param
