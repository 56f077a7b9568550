"""The suite's own net: a test that hangs ends as a failure that names it, within the suite's
budget, and the session goes on (see ``conftest.pytest_timeout_set_timer``).

Each case runs pytest in a subprocess on a small test file beside a copy of this suite's
conftest.py, with a 2 s timeout: a hypothesis test stuck in a Python loop (which
pytest-timeout's own signal method leaves hypothesis to replay with no timer left: a hang with
no verdict), a splitter whose cut does not advance, a test that swallows the first alarm, and
a test stuck in C code that holds the GIL (only faulthandler's thread can end that one: the
session ends, the test's frame shown).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUDGET = 120.0
"""What a subprocess may take before this test fails instead (a hang would exceed it)."""

STUCK = '''
import os
import tempfile

from hypothesis import given, strategies as st

from mapreduce_logs.ingest import split


@given(st.integers())
def test_stuck_in_python(n):
    while True:
        n += 1


@given(st.integers(1, 50))
def test_split_that_does_not_advance(chunk):
    real = split._next_line_end
    split._next_line_end = lambda f, offset, end: offset - chunk + 1  # the cut stays put
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "a.log")
            with open(path, "wb") as f:
                f.write(b"line\\n" * 100)
            for _ in split.split_file(path, chunk):
                pass
    finally:
        split._next_line_end = real


def test_swallows_the_first_alarm():
    try:
        while True:
            pass
    except BaseException:
        pass
    while True:
        pass


def test_after():
    assert True
'''

STUCK_IN_C = '''
import collections
import itertools


def test_stuck_in_c():
    collections.deque(itertools.count(), maxlen=0)  # never returns, never lets the GIL go
'''


def run_pytest(folder: Path, source: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_stuck.py").write_text(source)
    shutil.copy(os.path.join(HERE, "conftest.py"), folder / "conftest.py")
    (folder / "pytest.ini").write_text("[pytest]\ntimeout = 2\n")
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(filter(None, [
        ROOT, os.environ.get("PYTHONPATH")]))}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", "test_stuck.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=BUDGET, check=False,
    )


def test_a_hang_in_a_property_test_fails_by_name_and_the_session_goes_on(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, STUCK)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "FAILED test_stuck.py::test_stuck_in_python - conftest.HangError" in out, out
    assert "FAILED test_stuck.py::test_split_that_does_not_advance - AssertionError" in out, out
    assert "FAILED test_stuck.py::test_swallows_the_first_alarm - conftest.HangError" in out, out
    assert "3 failed, 1 passed" in out, out


def test_a_hang_out_of_reach_of_signals_ends_the_session_naming_the_test(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, STUCK_IN_C)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Timeout" in done.stderr, done.stderr
    assert 'test_stuck.py", line 7 in test_stuck_in_c' in done.stderr, done.stderr
