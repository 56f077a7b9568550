"""Mutation score of the fast tests: hand-written one-line bugs, each in a copy of the package.

Each mutation replaces one exact snippet of one module by a small semantic bug (a boundary moved,
a tie-break dropped, a rule rounded the other way, a schedule line deleted). For each, a copy of
the repository is made with that one change, and the module's fast test files run against it
(``-x``, a per-test timeout, derandomised hypothesis, fewer examples). A failing run *kills* the
mutant; a passing one is a *survivor*: a bug the tests of that module did not see (or an
equivalent mutant: see docs/testing.md, where every survivor is explained).

    python benchmarks/mutation.py                # every mutation (20-40 min on a busy machine)
    python benchmarks/mutation.py --only watch   # one module's
    python benchmarks/mutation.py --check        # only check that every snippet still applies

Writes ``benchmarks/results/mutation.json`` and ``mutation.md`` (``--label`` names the run).
Not in CI: too slow. A list of our own rather than mutmut or cosmic-ray: every mutant here is a
bug someone could write, none is a syntax-level triviality, and a run fits in half an hour.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "mapreduce_logs"
RESULTS = ROOT / "benchmarks" / "results"

MODULES: dict[str, tuple[str, ...]] = {
    "parse": ("ingest/parse.py", "parse.py"),
    "fast": ("ingest/fast.py", "fast.py"),
    "split": ("ingest/split.py", "split.py"),
    "partial": ("model/partial.py", "partial.py"),
    "scan": ("ingest/scan.py", "scan.py"),
    "anomalies": ("detect/rules.py", "detect/arrays.py", "anomalies.py"),
    "heavy": ("detect/arrays.py", "heavy.py"),
    "spill": ("detect/digest.py", "reduce/spill.py", "spill.py"),
    "report": ("report/documents.py", "report.py"),
    "watch": ("watch/loop.py", "watch/files.py", "watch/outputs.py", "watch.py"),
    "cli": ("cli/run.py", "cli/parser.py", "cli/common.py", "cli/__init__.py", "cli.py"),
}
"""Where each module's code lives (before and after the move into sub-packages): a mutation's
snippet is looked for in these files, and must be found in exactly one place."""

TESTS: dict[str, tuple[str, ...]] = {
    "parse": ("ingest/test_parse.py", "ingest/test_scan.py"),
    "fast": ("ingest/test_scan.py", "ingest/test_parse.py"),
    "split": ("ingest/test_split.py",),
    "partial": ("model/test_partial.py", "ingest/test_scan.py"),
    "scan": ("ingest/test_scan.py", "model/test_partial.py"),
    "anomalies": ("detect/test_anomalies.py", "detect/test_heavy.py"),
    "heavy": ("detect/test_heavy.py", "detect/test_anomalies.py"),
    "spill": ("report/test_report.py", "reduce/test_spill.py"),
    "report": ("report/test_report.py", "cli/test_cli.py"),
    "watch": ("watch/test_watch_timing.py",),
    "cli": ("cli/test_cli.py",),
}
"""The fast part of the suite each module's mutants run against (its own tests first)."""

TEST_TIMEOUT = 60
RUN_BUDGET = 900.0
"""Seconds one mutant's run may take; past it the mutant counts as killed (a hang)."""
ENV = {"HYPOTHESIS_PROFILE": "ci", "MAPREDUCE_LOGS_TEST_SCALE": "0.5"}


@dataclass(frozen=True)
class Mutation:
    module: str
    find: str
    replace: str
    what: str


M = Mutation
MUTATIONS: tuple[Mutation, ...] = (
    # --- parse: the exact path
    M("parse", "    if len(line) > MAX_LINE:", "    if len(line) >= MAX_LINE:",
      "a line of exactly 65,536 bytes is too_long"),
    M("parse", 'return None if line.isspace() else Malformed("too_long")',
      'return Malformed("too_long")', "a long whitespace-only line is too_long, not blank"),
    M("parse", 'b"WARNING": b"WARN",', 'b"WARNING": b"WARNING",', "WARNING reported as WARNING"),
    M("parse", "if len(fields) < 4:", "if len(fields) < 3:", "three fields are enough"),
    M("parse", "and not (month == 2 and day == 29 and _is_leap(year))",
      "and not (month == 2 and day == 29)", "29 February valid in every year"),
    M("parse", "return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)",
      "return year % 4 == 0", "1900 is a leap year"),
    M("parse", 'seconds -= offset if sign == b"+" else -offset',
      'seconds += offset if sign == b"+" else -offset', "offsets applied the wrong way"),
    M("parse", "if not MIN_SECONDS <= seconds < END_SECONDS:",
      "if not MIN_SECONDS <= seconds <= END_SECONDS:", "year 10000's first second is valid"),
    M("parse", "if off_hours > 23 or off_minutes > 59:", "if off_hours > 24 or off_minutes > 59:",
      "offset hour 24 valid"),
    M("parse", "or not (user.isascii() or _is_utf8(user))", "",
      "the user's encoding is not checked"),
    # --- fast: the canonical-line path
    M("fast", "while end - pos > MAX_LINE + 1:", "while end - pos > MAX_LINE + 2:",
      "a 65,537-byte canonical line takes the fast path"),
    M("fast", 'found = block.rfind(b"\\n", pos, pos + MAX_LINE + 1)',
      'found = block.rfind(b"\\n", pos, pos + MAX_LINE + 2)',
      "the hop finds a newline one byte too far"),
    M("fast", 'rb"|(?:0[13-9]|1[0-2])-(?:29|30)"', 'rb"|(?:0[1-9]|1[0-2])-(?:29|30)"',
      "29 and 30 February canonical"),
    M("fast", 'rb"(?!0000)[0-9]{4}-(?:"', 'rb"[0-9]{4}-(?:"', "year 0000 canonical"),
    M("fast", 'ERROR_TOKENS: Final = frozenset({b"ERROR", b"CRITICAL", b"FATAL"})',
      'ERROR_TOKENS: Final = frozenset({b"ERROR", b"FATAL"})',
      "CRITICAL is not an error on the fast path"),
    M("fast", "int(stamp[11:13]) * 3600", "int(stamp[11:13]) * 3601",
      "an hour of 3601 seconds"),
    # --- split
    M("split", "cut = _next_line_end(f, pos + want - 1, end)",
      "cut = _next_line_end(f, pos + want, end)", "chunks one byte longer"),
    M("split", "            return pos + found + 1", "            return pos + found",
      "a cut just before the newline"),
    M("split", 'SKIPPED_SUFFIXES = ("~", ".tmp", ".part", ".swp")',
      'SKIPPED_SUFFIXES = ("~", ".tmp", ".part")', ".swp files are read"),
    M("split", 'return name.startswith(".") or name.endswith(SKIPPED_SUFFIXES)',
      "return name.endswith(SKIPPED_SUFFIXES)", "hidden files are read"),
    M("split", "    for path in sorted(found):", "    for path in found:",
      "files in listing order, not sorted"),
    M("split", "        if start == 0:\n            yield Split(path, 0, 0",
      "        if start == -1:\n            yield Split(path, 0, 0", "an empty file has no split"),
    # --- partial: the merge
    M("partial", "and right.first_ts < self.last_ts - clock_skew_ns",
      "and right.first_ts <= self.last_ts - clock_skew_ns",
      "a line exactly --clock-skew earlier across a seam goes backwards"),
    M("partial", "room = MAX_EXAMPLES - len(examples)", "room = MAX_EXAMPLES + 1 - len(examples)",
      "six examples kept across a seam"),
    M("partial", "last_ts=right.last_ts if right.last_ts is not None else self.last_ts",
      "last_ts=right.last_ts", "a segment without valid lines forgets the last timestamp"),
    M("partial", "first_valid=self.first_valid if has_left else _shifted(right.first_valid, shift)",
      "first_valid=self.first_valid if has_left else right.first_valid",
      "the first valid line's number not shifted"),
    M("partial", "self.failures[path] = min(self.failures[path], reason)",
      "self.failures[path] = max(self.failures[path], reason)", "a failure reason by merge order"),
    M("partial", "(self.min_ts is None or other.min_ts < self.min_ts)",
      "(self.min_ts is None or other.min_ts > self.min_ts)", "min_ts takes the larger"),
    M("partial", "sums = {key: total[key] + more[key] for key in common}",
      "sums = {key: more[key] for key in common}", "shared keys not summed"),
    # --- scan: the mapper
    M("scan", "if len(self.carry) > MAX_LINE:", "if len(self.carry) >= MAX_LINE:",
      "a carried 65,536-byte line streamed as too long"),
    M("scan", "self.long_blank = self.long_blank and data.isspace()",
      "self.long_blank = data.isspace()", "a long line's blankness from its last block only"),
    M("scan", "sec = base + int(stamp[14:16]) * 60", "sec = base + int(stamp[14:16]) * 61",
      "a minute of 61 seconds on the fast path"),
    M("scan", "hours[sec // 3600 % 24 if local is None else local(sec)] += n",
      "hours[sec // 3600 % 24 if local is None else local(sec)] += 1",
      "an hour counts one line per distinct stamp"),
    M("scan", "elif ts < seg.last_ts - self.settings.clock_skew_ns:",
      "elif ts <= seg.last_ts - self.settings.clock_skew_ns:",
      "a line exactly --clock-skew earlier goes backwards"),
    M("scan", "        if ts > self.future_after:", "        if ts >= self.future_after:",
      "a line stamped exactly mtime + skew is in the future"),
    M("scan", "if p.min_ts is None or low < p.min_ts:", "if p.min_ts is None:",
      "the earliest time of later blocks ignored"),
    M("scan", "            stamps == sorted(stamps)", "            stamps[0] <= stamps[-1]",
      "a block in order at its ends skips the order checks"),
    M("scan", "if self.split.start == 0 and self.split.path not in p.failures:",
      "if self.split.start == 0:", "an unreadable file counted as read"),
    # --- anomalies: the window rules
    M("anomalies", "return min((windows + 9) // 10, max(windows - 1, 0))",
      "return min(windows // 10, max(windows - 1, 0))", "the trimmed tenth rounded down"),
    # (error_spike's trimmed tenth, median floor and weighted median ratio are the array
    # rule's now, for dicts too: the heavy mutants of arrays.spikes and its helpers)
    M("anomalies", "suspect = e >= limits(robust)", "suspect = np.zeros(len(e), dtype=bool)",
      "no window is suspect"),
    M("anomalies", "out[g0 : g0 + len(sums)] = (sums[:, mid - 1] / width + sums[:, mid] / width) / 2",
      "out[g0 : g0 + len(sums)] = sums[:, mid] / width",
      "the even median takes the upper middle"),
    M("anomalies", 'return "warning" if excess < 5 else "critical"',
      'return "warning" if excess < 4 else "critical"', "critical from 4 times the threshold"),
    M("anomalies", "    if share < 0.001:", "    if share < 0.01:", "info below 1%"),
    M("anomalies", "if run and item.window != run[-1].window + 1:",
      "if run and item.window > run[-1].window + 2:", "runs bridge a one-window gap"),
    M("anomalies", "if total < least:", "if total <= least:", "a run of exactly the floor dropped"),
    M("anomalies", "MAX_SHARE = 0.99", "MAX_SHARE = 0.9", "the busiest share capped at 0.9"),
    M("anomalies", "width, mid = 2 * NEIGHBOURS + 1, windows // 2",
      "width, mid = 2 * NEIGHBOURS, windows // 2", "the local mean over 4 windows"),
    M("anomalies", "return _in_long_runs(high[c[high] >= limit], w, c, least, seg)",
      "return _in_long_runs(high[c[high] >= limit], w, c, least + 1, seg)",
      "a suspect run of exactly the floor kept"),
    # --- heavy: the same rules on arrays
    M("heavy", "drop = min((len(windows) + 9) // 10, max(len(rest) - 1, 0))",
      "drop = min(len(windows) // 10, max(len(rest) - 1, 0))",
      "error_spike's trimmed tenth rounded down"),
    M("heavy", "drops = np.minimum((windows + 9) // 10, np.maximum(windows - suspects - 1, 0))",
      "drops = np.minimum(windows // 10, np.maximum(windows - suspects - 1, 0))",
      "user_burst's robust trim rounded down"),
    M("heavy", "first = int(np.argmax(2 * below >= below[-1]))",
      "first = int(np.argmax(2 * below > below[-1]))", "the weighted median ratio past the half"),
    M("heavy", "        np.maximum(out, usual, out=out)\n", "",
      "error_spike forgets the median floor"),
    M("heavy", "    trimmed = place < drop\n",
      "    trimmed = np.repeat(lengths, lengths) - place <= drop\n",
      "the plain trim drops the quietest"),
    M("heavy", "kept_total = table.all_lines - left_all",
      "kept_total = table.all_lines", "the trimmed windows' lines stay in the total"),
    M("heavy", "return (float(at(mid - 1)) + float(at(mid))) / 2", "return float(at(mid))",
      "the even median takes the upper middle"),
    # --- spill: exact top-k and digests
    M("spill", "return heapq.nsmallest(k, counts, key=lambda kv: (-kv[1], kv[0]))",
      "return heapq.nsmallest(k, counts, key=lambda kv: -kv[1])", "top-k ties by arrival"),
    M("spill", "map(least.__le__, totals.values())", "map(least.__lt__, totals.values())",
      "entries tied with the k-th dropped"),
    M("spill", "totals = np.add.reduceat(users.counts, starts) if len(starts) else starts",
      "totals = np.add.reduceat(users.counts + (users.counts > 1), starts) if len(starts) else starts",
      "counts above one added once too often"),
    M("spill", "share=max(out.share, part.share),", "share=part.share,",
      "the busiest share of the last partition only"),
    M("spill", "distinct_users=out.distinct_users + part.distinct_users,",
      "distinct_users=max(out.distinct_users, part.distinct_users),",
      "distinct users of the largest partition"),
    # --- report: the documents
    M("report", 'HOURS = [f"{h:02d}:00-{(h + 1) % 24:02d}:00" for h in range(24)]',
      'HOURS = [f"{h:02d}:00-{h + 1:02d}:00" for h in range(24)]', "hour 23 is 23:00-24:00"),
    M("report", "key=lambda hc: (-hc[1], hc[0])", "key=lambda hc: (-hc[1], -hc[0])",
      "peak hour ties: the later first"),
    M("report", "((h, c) for h, c in enumerate(p.hours) if c)", "enumerate(p.hours)",
      "hours without lines can be peaks"),
    M("report", "levels = sorted(p.levels.items(), key=lambda kv: (-kv[1], kv[0]))",
      "levels = sorted(p.levels.items(), key=lambda kv: -kv[1])", "level ties by arrival"),
    M("report", "found.sort(key=lambda f: f[:3])", "found.sort(key=lambda f: f[:2])",
      "anomaly ties not sorted by subject"),
    M("report", '"line": before + line + 1', '"line": before + line', "0-based line numbers"),
    M("report", "                if len(out) == MAX_EXAMPLES:",
      "                if len(out) > MAX_EXAMPLES:", "six examples"),
    # --- watch: the loop's schedule
    M("watch", "            else:\n                self.unsettled[rec.rid] = self.changed_at[rec.rid] + self.settle\n",
      "            else:\n                pass\n",
      "an unterminated last line waits for the rescan, not --settle"),
    M("watch", "settled = now - self.changed_at[rec.rid] >= self.settle",
      "settled = now - self.changed_at[rec.rid] > self.settle", "settled only after --settle"),
    M("watch", "self.next_rescan = now + self.rescan_seconds",
      "self.next_rescan = now + 2 * self.rescan_seconds", "a rescan every 60 s"),
    M("watch", "return self.clock() >= self.anomalies_due", "return self.clock() > self.anomalies_due",
      "anomalies.json a step after it is due"),
    M("watch", "        if not backlog:\n            return True",
      "        if True:\n            return True", "anomalies.json written after every batch"),
    M("watch", "if self.seen.get(rec.rid) != sig:", "if rec.rid not in self.seen:",
      "an append does not put the settle time back"),
    M("watch", "            if when <= now:", "            if when < now:",
      "a due file looked at a wake-up late"),
    M("watch", "return min(1.0, max(0.01, due - self.clock()))", "return 1.0",
      "the idle wait ignores what is due"),
    # --- cli
    M("cli", "return EXIT_UNREADABLE if partial.failures else EXIT_OK", "return EXIT_OK",
      "an unreadable input exits 0"),
    M("cli", "EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3",
      "EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 1, 3", "usage errors exit 1"),
    M("cli", "        if value < minimum:", "        if value < minimum - 1:",
      "--workers 0 accepted"),
    M("cli", "files = [path for path in files if is_url(path) or os.path.realpath(path) not in own]",
      "files = list(files)", "own outputs read back as input"),
    M("cli", "if not value.is_finite() or not 0 <= value <= MAX_SECONDS:",
      "if not value.is_finite() or not 0 <= value:", "absurd --clock-skew accepted"),
    M("cli", "    if nbytes < 1000:", "    if nbytes <= 1000:", "1000 bytes shown as bytes"),
)


@dataclass
class Outcome:
    id: str
    module: str
    file: str
    what: str
    outcome: str
    """killed, survived, timeout (killed by the budget), error (the run could not test)."""
    seconds: float
    failed: str


def locate(package: Path, mutation: Mutation) -> Path:
    """The one file of the mutation's module holding its snippet exactly once."""
    hits = []
    for name in MODULES[mutation.module]:
        path = package / name
        if path.is_file():
            n = path.read_text().count(mutation.find)
            if n:
                hits.append((path, n))
    if len(hits) != 1 or hits[0][1] != 1:
        raise LookupError(f"{mutation.module}: {mutation.what}: snippet found {hits or 'nowhere'}")
    return hits[0][0]


def prepare(copy: Path, root: Path = ROOT) -> None:
    """A copy of ``root``'s package and tests, where pytest runs."""
    shutil.copytree(root / PACKAGE, copy / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "benchmarks"):
        source = root / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns(
                "__pycache__", "results", "baselines"))
        else:
            shutil.copy(source, copy / name)


def run_tests(copy: Path, module: str) -> tuple[str, float, str]:
    """(outcome, seconds, first failed test) of the module's fast tests on ``copy``."""
    files = [f"tests/{name}" for name in TESTS[module] if (copy / "tests" / name).exists()]
    env = {**os.environ, **ENV, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *files, "-x", "-q", "-p", "no:cacheprovider",
             f"--timeout={TEST_TIMEOUT}", "-o", "addopts=--strict-markers"],
            cwd=copy, env=env, capture_output=True, text=True, timeout=RUN_BUDGET, check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - began, ""
    seconds = time.monotonic() - began
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.MULTILINE)
    name = failed.group(1) if failed else ""
    if done.returncode == 0:
        return "survived", seconds, ""
    if done.returncode == 1:
        return "killed", seconds, name or _stuck_in(done.stderr)
    return "error", seconds, f"exit {done.returncode}: {name or _stuck_in(done.stderr)}"


def _stuck_in(stderr: str) -> str:
    """The test a session ended by the hang backstop was in (faulthandler's dump names it)."""
    frames = re.findall(r'File "[^"]*/(tests/test_\w+\.py)", line \d+ in (test_\w+)', stderr)
    return f"{frames[-1][0]}::{frames[-1][1]} (hang)" if frames else stderr[-200:]


def imported_from(copy: Path) -> str:
    """Where the copy's tests import the package from (must be the copy)."""
    env = {**os.environ, "PYTHONPATH": str(copy)}
    return subprocess.run(
        [sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        cwd=copy, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(MODULES), help="module(s)")
    parser.add_argument("--check", action="store_true", help="only check the snippets apply")
    parser.add_argument("--label", default="", help="what this run measured (e.g. the layout)")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the results")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTATIONS if not args.only or m.module in args.only]
    stale = []
    for m in chosen:
        try:
            locate(ROOT / PACKAGE, m)
        except LookupError as err:
            stale.append(str(err))
    if stale:
        print("snippets that no longer apply:\n  " + "\n  ".join(stale), file=sys.stderr)
        return 2
    if args.check:
        print(f"{len(chosen)} mutations apply")
        return 0

    outcomes: list[Outcome] = []
    baseline: dict[str, str] = {}
    began = time.monotonic()
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True, check=False).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        clean = Path(scratch) / "clean"
        prepare(clean)
        where = imported_from(clean)
        if not where.startswith(str(clean)):
            print(f"the copy's tests would import {where}, not the copy", file=sys.stderr)
            return 2
        for module in sorted({m.module for m in chosen}):
            state, seconds, failed = run_tests(clean, module)
            baseline[module] = state
            print(f"baseline {module:<10} {state} in {seconds:.0f} s {failed}", flush=True)
            if state != "survived":
                print(f"the tests of {module} fail without any mutation", file=sys.stderr)
                return 1
        for number, m in enumerate(chosen, 1):
            copy = Path(scratch) / f"m{number}"
            prepare(copy, clean)  # the sources as they were at the start, whatever changes since
            target = locate(copy / PACKAGE, m)
            target.write_text(target.read_text().replace(m.find, m.replace, 1))
            state, seconds, failed = run_tests(copy, m.module)
            shutil.rmtree(copy, ignore_errors=True)
            outcomes.append(Outcome(f"{m.module}-{number}", m.module,
                                    str(target.relative_to(copy)), m.what, state, round(seconds, 1),
                                    failed))
            print(f"[{number}/{len(chosen)}] {m.module:<10} {state:<8} {seconds:5.0f} s  "
                  f"{m.what}  {failed}", flush=True)
    report(outcomes, args, time.monotonic() - began, commit)
    return 0


def report(outcomes: list[Outcome], args: argparse.Namespace, seconds: float,
           commit: str) -> None:
    modules = sorted({o.module for o in outcomes}, key=list(MODULES).index)
    rows = []
    for module in modules:
        mine = [o for o in outcomes if o.module == module]
        killed = sum(o.outcome in ("killed", "timeout") for o in mine)
        rows.append((module, len(mine), killed, ", ".join(TESTS[module])))
    total = len(outcomes)
    killed = sum(r[2] for r in rows)
    survivors = [o for o in outcomes if o.outcome not in ("killed", "timeout")]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["module      mutants  killed  rate   tests"]
    for module, n, k, tests in rows:
        lines.append(f"{module:<11} {n:>7}  {k:>6}  {k / n:>5.0%}  {tests}")
    lines.append(f"{'all':<11} {total:>7}  {killed:>6}  {killed / total:>5.0%}")
    print("\n".join(lines))
    for o in survivors:
        print(f"survivor {o.id} ({o.file}): {o.what} [{o.outcome}]")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "label": args.label, "commit": commit, "date": stamp, "seconds": round(seconds),
        "environment": ENV, "test_timeout": TEST_TIMEOUT,
        "modules": {module: {"mutants": n, "killed": k, "tests": tests.split(", ")}
                    for module, n, k, tests in rows},
        "total": {"mutants": total, "killed": killed},
        "mutants": [asdict(o) for o in outcomes],
    }
    name = "mutation" if not args.only else "mutation-" + "-".join(sorted(args.only))
    (out / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    md = [f"# Mutation score: {args.label or 'run'} ({commit}, {stamp}, {seconds / 60:.0f} min)", "",
          "| module | mutants | killed | kill rate | tests run |", "|---|---:|---:|---:|---|"]
    md += [f"| {module} | {n} | {k} | {k / n:.0%} | {tests} |" for module, n, k, tests in rows]
    md += [f"| **all** | {total} | {killed} | {killed / total:.0%} | |", ""]
    if survivors:
        md += ["Survivors (explained in docs/testing.md):", ""]
        md += [f"- `{o.id}` {o.file}: {o.what} ({o.outcome})" for o in survivors]
    else:
        md += ["No survivor."]
    (out / f"{name}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    sys.exit(main())
