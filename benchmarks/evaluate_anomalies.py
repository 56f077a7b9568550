"""Precision and recall of anomalies.json against injected incidents, over many seeds and traffic.

For each seed, every scenario family below is generated twice with ``benchmarks.generate``:
once as steady traffic (no incident: every error_spike, user_burst, clock or future anomaly is a
false positive) and once with incidents (two error bursts of 5x-50x a service's usual error rate,
two user bursts of 5x-20x the busiest ordinary user, each 1-10 windows; a clock jumping back; a
run of future stamps; plus malformed lines and non-canonical valid lines). The tool runs on each
file (in process, ``mapreduce_logs.cli.main``, one worker) and its anomalies are matched:

- error_spike / user_burst: a detection matches an incident when the subject (service or user) is
  the same and the windows overlap. A detection matching none is a false positive; an incident
  matched by none is missed. "contract-required" incidents are those docs/anomalies.md says must be
  caught: an error burst of at least 10x the usual rate with at least 20 errors in each window, a
  user at 10x or more the busiest ordinary user.
- time_went_backwards / future_timestamp: per file, the count must equal the exact count of the
  rule (which the generator computes); malformed_lines per reason and unknown_level per token too.

Writes ``benchmarks/results/anomaly_quality.md`` (the tables plus every false positive and every
missed contract-required incident, with its parameters) and the raw matches in ``.json`` beside it.

    python -m benchmarks.evaluate_anomalies             # 6 seeds, about a minute or two
    python -m benchmarks.evaluate_anomalies --quick     # 2 seeds
    python -m benchmarks.evaluate_anomalies --tool-args="--spike-factor 10 --burst-factor 10"
    python -m benchmarks.evaluate_anomalies --first-seed 7 --append   # seeds 7-12, after 1-6
    python -m benchmarks.evaluate_anomalies --share-sweep 50 --append # how long a burst may last
    python -m benchmarks.evaluate_anomalies --burst-sweep 50 --append # ... a user burst
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import Params, generate

HERE = Path(__file__).resolve().parent
WINDOW_KINDS = ("error_spike", "user_burst")
FILE_KINDS = ("time_went_backwards", "future_timestamp")
PARSE_KINDS = ("malformed_lines", "unknown_level")
KINDS = PARSE_KINDS + FILE_KINDS + WINDOW_KINDS


@dataclass(frozen=True)
class Family:
    """A kind of traffic; the seed picks the skews from the given choices."""

    name: str
    lines_per_second: float
    span: float
    users: tuple[int, ...]
    skews: tuple[float, ...]
    services: tuple[int, ...]
    service_skews: tuple[float, ...]
    diurnal: float = 0.0
    noise: float = 0.0
    busy_hours: tuple[float, float] | None = None
    night: float = 0.05
    error_rate: float = 0.02


FAMILIES = (
    Family("uniform", 10, 2 * 3600, (500, 2000), (0.0,), (6, 10), (0.0,)),
    Family("skewed", 10, 2 * 3600, (2000, 20_000), (0.9, 1.1, 1.3), (10, 20), (0.8, 1.2)),
    Family("very-skewed", 10, 2 * 3600, (20, 50, 200), (1.6, 2.0, 2.5), (5, 8), (1.8, 2.5)),
    Family("quiet", 0.5, 12 * 3600, (100, 500), (0.8, 1.2), (5, 10), (1.0,)),
    Family("busy", 30, 3600, (5000, 50_000), (1.0, 1.2), (15, 30), (1.0, 1.4)),
    Family("diurnal", 1, 24 * 3600, (500, 3000), (1.0, 1.3), (8, 12), (1.0,), diurnal=0.9),
    Family("noisy", 10, 2 * 3600, (1000, 5000), (1.1,), (10,), (1.1,), noise=0.4),
    # Busy 08:00-18:00 UTC, almost silent at night: a day's windows are mostly night windows.
    Family("office-hours", 600_000 / 86_400, 24 * 3600, (2000, 5000), (0.8, 1.0), (5,), (2.0,),
           busy_hours=(8, 18), night=0.003, error_rate=0.03),
)


@dataclass
class Scenario:
    name: str
    family: str
    seed: int
    steady: bool
    params: Params


def scenarios(seeds: Sequence[int], families: Sequence[Family]) -> list[Scenario]:
    out = []
    for seed in seeds:
        for fam in families:
            i = FAMILIES.index(fam)
            def pick(options: tuple[Any, ...], salt: int, seed: int = seed, i: int = i) -> Any:
                return options[(seed * 7 + i * 3 + salt) % len(options)]

            base = dict(
                users=pick(fam.users, 0), skew=pick(fam.skews, 1), services=pick(fam.services, 2),
                service_skew=pick(fam.service_skews, 3), lines_per_second=fam.lines_per_second,
                span=fam.span, diurnal=fam.diurnal, noise=fam.noise,
                busy_hours=fam.busy_hours, night=fam.night, error_rate=fam.error_rate,
                start="2025-07-22T00:00:00Z", lines=int(fam.lines_per_second * fam.span),
            )
            out.append(Scenario(f"{fam.name}-s{seed}-steady", fam.name, seed, True,
                                _params(base, 1000 * seed + i, steady=True)))
            out.append(Scenario(f"{fam.name}-s{seed}-incidents", fam.name, seed, False,
                                _params(base, 1000 * seed + 500 + i, steady=False)))
    return out


def _params(base: dict[str, Any], seed: int, steady: bool) -> Params:
    values = {**base, "seed": seed}
    values.pop("lines_per_second")  # the span is given; lines fix the mean rate
    if not steady:
        values.update(error_bursts=2, user_bursts=2, clock_jumps=1, future_stamps=1,
                      malformed=0.005, variants=0.01, blank=0.002)
    return Params(**values)


# -- one scenario -------------------------------------------------------------------------------


def run_scenario(job: tuple[Scenario, str, list[str]]) -> dict[str, Any]:
    """Generate, run the tool, and match; returns plain data (picklable)."""
    scenario, folder, tool_args = job
    from mapreduce_logs.cli import main as tool_main

    path = os.path.join(folder, scenario.name, "input.log")
    truth = generate(path, scenario.params)
    truth.pop("timing")
    out = os.path.join(folder, scenario.name, "out")
    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        status = tool_main(["run", path, "--out", out, "--workers", "1", "--quiet", *tool_args])
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"{scenario.name}: mapreduce_logs exited {status}")
    found = json.loads(Path(out, "anomalies.json").read_text())["anomalies"]
    summary = json.loads(Path(out, "summary.json").read_text())
    return {
        "scenario": scenario.name, "family": scenario.family, "seed": scenario.seed,
        "steady": scenario.steady, "params": asdict(scenario.params), "seconds": seconds,
        "lines": truth["totals"]["lines"], "bytes": truth["bytes"],
        "busiest_user": truth["busiest_user"], "top_users": summary["user_counts"],
        "matches": match(truth, found, path),
    }


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["window_start"] < b["window_end"] and b["window_start"] < a["window_end"])


def match(truth: dict[str, Any], found: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """Per kind: true positives, false positives and misses, with their details."""
    out: dict[str, Any] = {}
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for anomaly in found:
        anomaly.pop("examples", None)
        by_kind[anomaly["type"]].append(anomaly)
    for kind, subject in (("error_spike", "service"), ("user_burst", "user")):
        incidents = truth["incidents"][kind]
        detections = by_kind[kind]
        hits = [[d for d in detections if d[subject] == inc[subject] and _overlaps(d, inc)]
                for inc in incidents]
        false = [d for d in detections
                 if not any(d[subject] == inc[subject] and _overlaps(d, inc) for inc in incidents)]
        out[kind] = {
            "incidents": [{**inc, "detections": len(h)} for inc, h in zip(incidents, hits, strict=True)],
            "false_positives": false, "detections": len(detections),
        }
    for kind in FILE_KINDS:
        expected = truth["expected"][kind]
        got = [d["count"] for d in by_kind[kind] if d["file"] == path]
        others = [d for d in by_kind[kind] if d["file"] != path]
        out[kind] = _exact(kind, {path: expected}, {path: got[0]} if got else {}, others)
    reasons = {k: v for k, v in truth["malformed"].items() if v}
    out["malformed_lines"] = _exact(
        "malformed_lines", reasons, {d["reason"]: d["count"] for d in by_kind["malformed_lines"]}, [])
    out["unknown_level"] = _exact(
        "unknown_level", truth["unknown_levels"],
        {d["level"]: d["count"] for d in by_kind["unknown_level"]}, [])
    return out


def _exact(kind: str, expected: dict[str, int], got: dict[str, int],
           stray: list[dict[str, Any]]) -> dict[str, Any]:
    """Counted kinds: one expected anomaly per key with a count > 0, which must match exactly."""
    tp = fp = fn = 0
    details = []
    for key in sorted(set(expected) | set(got)):
        want, have = expected.get(key, 0), got.get(key)
        if not want and have is None:
            continue
        if want and have == want:
            tp += 1
            continue
        if want:
            fn += 1
        if have is not None:
            fp += 1
        details.append({"key": key, "expected": want, "reported": have})
    fp += len(stray)
    return {"tp": tp, "fp": fp, "fn": fn, "details": details}


# -- the report ---------------------------------------------------------------------------------


@dataclass
class Tally:
    incidents: int = 0
    detections: int = 0
    tp_detections: int = 0
    fp: int = 0
    caught: int = 0
    required: int = 0
    required_caught: int = 0
    fragmented: int = 0
    steady_fp: int = 0
    misses: list[dict[str, Any]] = field(default_factory=list)
    false: list[dict[str, Any]] = field(default_factory=list)

    def precision(self) -> float | None:
        return None if not self.detections else self.tp_detections / self.detections

    def recall(self) -> float | None:
        return None if not self.incidents else self.caught / self.incidents

    def required_recall(self) -> float | None:
        return None if not self.required else self.required_caught / self.required


def tally(results: list[dict[str, Any]]) -> dict[str, Tally]:
    out = {kind: Tally() for kind in KINDS}
    for res in results:
        for kind in WINDOW_KINDS:
            m, t = res["matches"][kind], out[kind]
            t.detections += m["detections"]
            t.fp += len(m["false_positives"])
            t.tp_detections += m["detections"] - len(m["false_positives"])
            if res["steady"]:
                t.steady_fp += len(m["false_positives"])
            for d in m["false_positives"]:
                t.false.append({"scenario": res["scenario"], **d})
            for inc in m["incidents"]:
                t.incidents += 1
                hit = inc["detections"] > 0
                t.caught += hit
                t.fragmented += inc["detections"] > 1
                if inc["spec_requires_catch"]:
                    t.required += 1
                    t.required_caught += hit
                if not hit:
                    t.misses.append({"scenario": res["scenario"], **inc})
        for kind in FILE_KINDS + PARSE_KINDS:
            m, t = res["matches"][kind], out[kind]
            t.incidents += m["tp"] + m["fn"]
            t.caught += m["tp"]
            t.required += m["tp"] + m["fn"]
            t.required_caught += m["tp"]
            t.detections += m["tp"] + m["fp"]
            t.tp_detections += m["tp"]
            t.fp += m["fp"]
            if res["steady"]:
                t.steady_fp += m["fp"]
            for d in m["details"]:
                entry = {"scenario": res["scenario"], **d}
                if d["expected"]:
                    t.misses.append(entry)
                else:
                    t.false.append(entry)
    return out


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render(results: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    t = tally(results)
    steady = sum(r["steady"] for r in results)
    lines = sum(r["lines"] for r in results)
    out = [
        f"# Anomaly detection quality, {_seeds(args.seeds_list)}",
        "",
        f"Command: `python -m benchmarks.evaluate_anomalies {' '.join(args.argv)}`",
        f"{len(results)} files ({steady} of steady traffic without incidents), "
        f"{lines:,} lines, {_seeds(args.seeds_list)}, families "
        f"{', '.join(sorted({r['family'] for r in results}))}; "
        f"tool options: `{' '.join(args.tool_args) or '(defaults)'}`; {seconds:.0f} s.",
        "",
        "| kind | incidents | caught | recall | contract-required | caught | recall (required) | "
        "detections | false positives | on steady traffic | precision | split in 2+ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        k = t[kind]
        out.append(
            f"| {kind} | {k.incidents} | {k.caught} | {_f(k.recall())} | {k.required} | "
            f"{k.required_caught} | {_f(k.required_recall())} | {k.detections} | {k.fp} | "
            f"{k.steady_fp} | {_f(k.precision())} | {k.fragmented if kind in WINDOW_KINDS else '-'} |")
    out += ["", "Counted kinds (clock, future, malformed, unknown level) match only when the count "
            "is exact; for them every incident is contract-required.", ""]
    out += _by_run_lines(results, _run_floor(args.tool_args))
    out += _by_multiplier(results)
    out += _by_family(results)
    out += _details(t)
    return "\n".join(out) + "\n"


def _seeds(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"


def _run_floor(tool_args: list[str]) -> int:
    """The --burst-min-lines the tool ran with."""
    from mapreduce_logs import Settings

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--burst-min-lines", type=int, default=Settings().burst_min_lines)
    return int(ap.parse_known_args(tool_args)[0].burst_min_lines)


def _by_run_lines(results: list[dict[str, Any]], floor: int) -> list[str]:
    """contract-required user bursts, split by their lines in all against the run floor."""
    incs = [i for r in results for i in r["matches"]["user_burst"]["incidents"]
            if i["spec_requires_catch"]]
    out = ["## contract-required user bursts by lines in all", "",
           f"A run of flagged windows is reported when its lines add up to `--burst-min-lines` "
           f"({floor}).", "",
           "| injected lines in all | windows | contract-required | caught | recall |",
           "|---|---|---:|---:|---:|"]
    groups: tuple[tuple[str, str, Callable[[dict[str, Any]], bool]], ...] = (
        (f"< {floor}", "any", lambda i: i["injected_lines"] < floor),
        (f">= {floor}", "1", lambda i: i["injected_lines"] >= floor and i["windows"] == 1),
        (f">= {floor}", "2 or more", lambda i: i["injected_lines"] >= floor and i["windows"] > 1),
    )
    for label, windows, test in groups:
        group = [i for i in incs if test(i)]
        caught = sum(i["detections"] > 0 for i in group)
        out.append(f"| {label} | {windows} | {len(group)} | {caught} | "
                   f"{_f(caught / len(group) if group else None)} |")
    return [*out, ""]


def _by_multiplier(results: list[dict[str, Any]]) -> list[str]:
    bands = ((0, 7.5), (7.5, 10), (10, 15), (15, 25), (25, float("inf")))
    out = ["## Recall of bursts by effective multiplier", "",
           "Multiplier: (usual + injected) / usual for error bursts, lines per window / the "
           "busiest ordinary user's expected lines for user bursts.", "",
           "| kind | band | incidents | caught | recall | caught with >= 20 errors or >= 50 "
           "lines a window |", "|---|---|---:|---:|---:|---|"]
    for kind in WINDOW_KINDS:
        for lo, hi in bands:
            incs = [i for r in results for i in r["matches"][kind]["incidents"]
                    if lo <= i["multiplier"] < hi]
            if not incs:
                continue
            caught = sum(i["detections"] > 0 for i in incs)
            key, floor = (("min_errors_per_window", 20) if kind == "error_spike"
                          else ("min_lines_per_window", 50))
            big = [i for i in incs if i[key] >= floor]
            band = f"{lo:g}x-{hi:g}x" if hi != float("inf") else f">= {lo:g}x"
            out.append(f"| {kind} | {band} | {len(incs)} | {caught} | {caught / len(incs):.2f} | "
                       f"{sum(i['detections'] > 0 for i in big)}/{len(big)} |")
    return [*out, ""]


def _by_family(results: list[dict[str, Any]]) -> list[str]:
    out = ["## By traffic family", "",
           "| family | files | lines | error_spike recall | user_burst recall | false positives "
           "on steady files | false positives on incident files |", "|---|---:|---:|---:|---:|---:|---:|"]
    fams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        fams[r["family"]].append(r)
    for fam, rs in fams.items():
        cells = []
        for kind in WINDOW_KINDS:
            incs = [i for r in rs for i in r["matches"][kind]["incidents"]]
            cells.append(_f(sum(i["detections"] > 0 for i in incs) / len(incs) if incs else None))
        fp: Counter[bool] = Counter()
        for r in rs:
            for kind in KINDS:
                m = r["matches"][kind]
                fp[r["steady"]] += len(m["false_positives"]) if kind in WINDOW_KINDS else m["fp"]
        out.append(f"| {fam} | {len(rs)} | {sum(r['lines'] for r in rs):,} | {cells[0]} | "
                   f"{cells[1]} | {fp[True]} | {fp[False]} |")
    return [*out, ""]


def _details(t: dict[str, Tally]) -> list[str]:
    out = ["## False positives", "",
           "Window anomalies grouped by file and subject: how many were reported, first window "
           "start to last window end, total observed, and the largest baseline given.", ""]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    counted = []
    for kind in KINDS:
        for d in t[kind].false:
            if kind in WINDOW_KINDS:
                subject = d.get("service", d.get("user", ""))
                groups[(d["scenario"], kind, subject)].append(d)
            else:
                counted.append((kind, d))
    for (scenario, kind, subject), ds in groups.items():
        observed = sum(d.get("errors", d.get("lines", 0)) for d in ds)
        noun = "errors" if kind == "error_spike" else "lines"
        out.append(f"- {kind} `{subject}` in `{scenario}`: {len(ds)} anomalies, "
                   f"{min(d['window_start'] for d in ds)} to {max(d['window_end'] for d in ds)}, "
                   f"{observed:,} {noun}, baseline at most {max(d['baseline'] for d in ds)}")
    for kind, d in counted:
        out.append(f"- {kind} in `{d['scenario']}`: {d['key']}: expected {d['expected']}, "
                   f"reported {d['reported']}")
    if not groups and not counted:
        out.append("None.")
    out += ["", "## Missed incidents that the docs require to be caught", ""]
    required = [(kind, d) for kind in KINDS for d in t[kind].misses
                if d.get("spec_requires_catch", True)]
    out += [f"- {kind} in `{d['scenario']}`: "
            + json.dumps({k: v for k, v in d.items() if k != "scenario"}, ensure_ascii=False)
            for kind, d in required] or ["None."]
    out += ["", "## Other misses (below what the docs require)", ""]
    others = [(kind, d) for kind in WINDOW_KINDS for d in t[kind].misses
              if not d.get("spec_requires_catch", True)]
    out += [f"- {kind} in `{d['scenario']}`: x{d['multiplier']}, "
            + (f"{d['min_errors_per_window']} errors/window (usual {d['usual_errors_per_window']})"
               if kind == "error_spike" else
               f"{d['min_lines_per_window']} lines/window (busiest user "
               f"{d['busiest_user_lines_per_window']})")
            + f", {d['windows']} window(s) from {d['window_start']}"
            for kind, d in others] or ["None."]
    return out


# -- how long a burst may last ------------------------------------------------------------------

SWEEP_RATES = (1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
SWEEP_SHARES = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def share_sweep(trials: int, seed: int = 1, windows: int = 120) -> str:
    """error_spike on one service alone, straight on ``digest.spikes`` with the default
    settings: Poisson errors at a usual rate of ``lam`` a window among 50 times as many other
    lines, and a burst of max(20, 10 * lam) errors a window (10x, at least 20) in two runs
    covering a share of the windows. Recall: the share of trials where every burst window is
    flagged."""
    import numpy as np

    from mapreduce_logs import Settings
    from mapreduce_logs.detect.digest import spikes

    settings = Settings()
    rng = np.random.default_rng(seed)
    out = [f"# How long an error burst may last: {trials} trials a cell", "",
           f"One service, {windows} windows, Poisson errors at the usual rate among 50 times as "
           "many other lines; a burst of 10x the usual rate (at least 20 errors a window) in two "
           "runs that cover a share of the windows. Recall: the share of trials in which every "
           "burst window is flagged (default settings).", "",
           "| usual errors a window | " + " | ".join(f"{s:.0%}" for s in SWEEP_SHARES) + " |",
           "|---:|" + "---:|" * len(SWEEP_SHARES)]
    for lam in SWEEP_RATES:
        cells = []
        for share in SWEEP_SHARES:
            count = round(share * windows)
            second = windows // 2 + 10
            burst = [*range(5, 5 + count // 2), *range(second, second + count - count // 2)]
            caught = 0
            for _ in range(trials):
                errors = rng.poisson(lam, windows)
                others = rng.poisson(50 * lam, windows)
                errors[burst] = max(20, round(10 * lam))
                found = spikes({(b"s", w): int(n) for w, n in enumerate(errors) if n},
                               {(b"s", w): int(n) for w, n in enumerate(others) if n}, settings)
                flagged: set[int] = set()
                for f in found:
                    first = f.time // settings.window
                    flagged.update(range(first, first + _windows(f.body, settings.window)))
                caught += flagged.issuperset(burst)
            cells.append(f"{caught / trials:.2f}")
        out.append(f"| {lam:g} | " + " | ".join(cells) + " |")
    return "\n".join([*out, ""]) + "\n"


BURST_RATES = (0.3, 1.0, 3.0, 10.0, 30.0)
BURST_SHARES = (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
BURST_USERS = 50


def burst_sweep(trials: int, seed: int = 1, windows: int = 120) -> str:
    """user_burst straight on ``digest.detect_bursts`` with the default settings: 50 users
    with Zipf (exponent 1) weights, Poisson lines a window, the busiest writing ``busiest`` a
    window; a spammer at 10x the busiest user's rate (at least 1 line a window) in two runs
    covering a share of the windows. The spammer is either a user seen only in its burst, or an
    ordinary user (the 10th busiest) who also writes its usual lines everywhere. Recall: the
    share of trials where every burst window is flagged; false: bursts reported elsewhere."""
    import numpy as np

    from mapreduce_logs import Settings
    from mapreduce_logs.detect.digest import detect_bursts
    from mapreduce_logs.model.partial import Partial

    settings = Settings()
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, BURST_USERS + 1)
    weights /= weights.sum()
    names = [f"user{i}".encode() for i in range(BURST_USERS)]
    out = [f"# How long a user burst may last: {trials} trials a cell", "",
           f"{BURST_USERS} users with Zipf weights (exponent 1, the busiest holds "
           f"{weights[0]:.0%} of the lines), {windows} windows, Poisson lines; a spammer at 10x "
           "the busiest user's rate (at least 1 line a window) in two runs covering a share of "
           "the windows, either a user seen only in its burst (*new*) or the 10th busiest user, "
           "who also writes its usual lines everywhere (*ordinary*). Recall: the share of trials "
           "in which every burst window is flagged (default settings); *false*: bursts reported "
           "on any other user or window, over all the row's trials.", "",
           "| spammer | busiest user's lines a window | "
           + " | ".join(f"{s:.0%}" for s in BURST_SHARES) + " | false |",
           "|---|---:|" + "---:|" * len(BURST_SHARES) + "---:|"]
    for kind in ("new", "ordinary"):
        for busiest in BURST_RATES:
            cells, false = [], 0
            for share in BURST_SHARES:
                count = round(share * windows)
                second = windows // 2 + 10
                burst = [*range(5, 5 + count // 2), *range(second, second + count - count // 2)]
                spam = max(1, round(10 * busiest))
                caught = 0
                for _ in range(trials):
                    lines = rng.poisson(busiest / weights[0] * weights[:, None],
                                        (BURST_USERS, windows))
                    spammer = b"spammer"
                    if kind == "ordinary":
                        spammer = names[9]
                        lines[9, burst] = spam
                    counts = {(names[u], w): int(n) for (u, w), n in np.ndenumerate(lines) if n}
                    if kind == "new":
                        counts.update({(spammer, w): spam for w in burst})
                    p = Partial()
                    p.user_lines.update(counts)
                    for (_, w), n in counts.items():
                        p.window_lines[w] += n
                    flagged: set[int] = set()
                    for f in detect_bursts(p, settings):
                        first = f.time // settings.window
                        span = range(first, first + _windows(f.body, settings.window))
                        if f.subject == spammer and not set(span).isdisjoint(burst):
                            flagged.update(span)
                        else:
                            false += 1
                    caught += flagged.issuperset(burst)
                cells.append(f"{caught / trials:.2f}")
            out.append(f"| {kind} | {busiest:g} | " + " | ".join(cells) + f" | {false} |")
    return "\n".join([*out, ""]) + "\n"


def _windows(anomaly: dict[str, Any], width: int) -> int:
    """How many windows of ``width`` seconds a window anomaly spans."""
    import datetime as dt

    start, end = (dt.datetime.fromisoformat(anomaly[k].replace("Z", "+00:00"))
                  for k in ("window_start", "window_end"))
    return round((end - start).total_seconds()) // width


# -- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.evaluate_anomalies", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--seeds", type=int, default=6, help="seeds per scenario family")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 seeds")
    ap.add_argument("--families", default=",".join(f.name for f in FAMILIES),
                    help="comma-separated scenario families")
    ap.add_argument("--tool-args", default="", help="extra options for mapreduce_logs run")
    ap.add_argument("--jobs", type=int, default=1, help="scenarios run at once (2 cores: keep 1)")
    ap.add_argument("--out", default=str(HERE / "results" / "anomaly_quality.md"))
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep the generated files here")
    ap.add_argument("--share-sweep", type=int, default=0, metavar="TRIALS",
                    help="instead: how long an error burst may last and still be caught, "
                    "TRIALS trials a cell (written to --out, nothing to the .json)")
    ap.add_argument("--burst-sweep", type=int, default=0, metavar="TRIALS",
                    help="instead: how long a user burst may last and still be caught, "
                    "TRIALS trials a cell (written to --out, nothing to the .json)")
    ap.add_argument("--append", action="store_true",
                    help="add this report after the one in --out, and the results to its .json")
    args = ap.parse_args(raw)
    args.argv = raw
    seeds = 2 if args.quick else args.seeds
    args.seeds_list = list(range(args.first_seed, args.first_seed + seeds))
    args.tool_args = shlex.split(args.tool_args)
    wanted = set(args.families.split(","))
    if args.share_sweep or args.burst_sweep:
        text = (share_sweep(args.share_sweep, args.first_seed) if args.share_sweep
                else burst_sweep(args.burst_sweep, args.first_seed))
        text = text.replace("\n\n", f"\n\nCommand: `python -m benchmarks.evaluate_anomalies "
                            f"{' '.join(raw)}`\n\n", 1)
        out = Path(args.out)
        before = out.read_text() + "\n" if args.append and out.exists() else ""
        out.write_text(before + text)
        print(text)
        return 0
    families = [f for f in FAMILIES if f.name in wanted]
    if not families:
        ap.error(f"no such families: {args.families}")
    plan = scenarios(args.seeds_list, families)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        folder = args.keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="anomaly-eval-"))
        jobs = [(s, folder, args.tool_args) for s in plan]
        results = []
        if args.jobs > 1:
            with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
                for i, res in enumerate(pool.imap(run_scenario, jobs), 1):
                    results.append(res)
                    print(f"[{i}/{len(jobs)}] {res['scenario']}", file=sys.stderr, flush=True)
        else:
            for i, job in enumerate(jobs, 1):
                results.append(run_scenario(job))
                print(f"[{i}/{len(jobs)}] {job[0].name} ({results[-1]['lines']:,} lines, "
                      f"{results[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
    text = render(results, args, time.perf_counter() - started)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    before, earlier = "", []
    if args.append and out.exists():
        before = out.read_text() + "\n"
        earlier = json.loads(out.with_suffix(".json").read_text())
    out.write_text(before + text)
    out.with_suffix(".json").write_text(
        json.dumps(earlier + results, indent=1, ensure_ascii=False) + "\n")
    print(text)
    print(f"evaluate_anomalies: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
