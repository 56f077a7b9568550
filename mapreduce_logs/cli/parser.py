"""The command line: its options, their checks, and the Settings they make."""

from __future__ import annotations

import argparse
import decimal
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..errors import UsageError
from ..ingest.zones import TimeError, ZoneError, parse_time, zone
from ..settings import Settings
from .common import PROG


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive(kind: type[int] | type[float], minimum: float = 1) -> Callable[[str], Any]:
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}: {text}")
        return value

    return parse


MAX_SECONDS = 10**12
"""Longest clock skew taken (31,700 years): no two timestamps are further apart."""


def _seconds(text: str) -> int | float:
    """A number of seconds >= 0, whole or to the nanosecond (at most 9 decimals)."""
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value.is_finite() or not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to {MAX_SECONDS:g}, got {text!r}")
    if value != value.quantize(decimal.Decimal("1e-9"), rounding=decimal.ROUND_DOWN):
        raise argparse.ArgumentTypeError(f"at most 9 decimals (nanoseconds): {text!r}")
    return int(value) if value == value.to_integral_value() else float(value)


def _zone(text: str) -> str:
    try:
        zone(text)
    except ZoneError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _common(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument("--out", default="output", metavar="DIR", help="output folder (default: output/)")
    p.add_argument("--workers", type=_positive(int), default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: CPU count)")
    p.add_argument("--chunk-size", type=_positive(int), default=d.chunk_size, metavar="BYTES",
                   help=f"target bytes per chunk, any value >= 1 (default: {d.chunk_size})")
    p.add_argument("--memory-mb", type=_positive(int, 50), default=d.memory_mb, metavar="MB",
                   help=f"memory budget of the whole process tree, at least 50 (default: {d.memory_mb})")
    p.add_argument("--top", type=_positive(int, 0), default=d.top, metavar="N",
                   help=f"services and users listed (default: {d.top})")
    p.add_argument("--peak-hours", type=_positive(int, 0), default=d.peak_hours, metavar="N",
                   help=f"busiest hours listed (default: {d.peak_hours})")
    p.add_argument("--window", type=_positive(int), default=d.window, metavar="SECONDS",
                   help=f"anomaly window, aligned to the UTC epoch (default: {d.window})")
    p.add_argument("--clock-skew", type=_seconds, default=d.clock_skew, metavar="SECONDS",
                   help=f"tolerance of the clock checks, fractions allowed (default: {d.clock_skew})")
    p.add_argument("--spike-factor", type=_positive(float, 1), default=d.spike_factor, metavar="X",
                   help=f"error_spike: times the expected errors (default: {d.spike_factor:g})")
    p.add_argument("--spike-min-errors", type=_positive(int), default=d.spike_min_errors,
                   metavar="N", help=f"error_spike: fewest errors in a window (default: {d.spike_min_errors})")
    p.add_argument("--burst-factor", type=_positive(float, 1), default=d.burst_factor, metavar="X",
                   help=f"user_burst: times the busiest ordinary user (default: {d.burst_factor:g})")
    p.add_argument("--burst-min-lines", type=_positive(int), default=d.burst_min_lines,
                   metavar="N",
                   help=f"user_burst: fewest lines in a run of flagged windows (default: {d.burst_min_lines})")
    p.add_argument("--tz", type=_zone, default=d.tz, metavar="ZONE",
                   help="zone of hourly_counts and peak_hours: an IANA name (Europe/Paris, "
                   "America/New_York; daylight saving included) or a fixed offset (+05:30, "
                   "-0800); everything else stays UTC (default: UTC)")
    p.add_argument("--since", metavar="TIME", default=None,
                   help="count only valid lines at or after TIME: a timestamp "
                   "(2025-07-22T09:00:00, fractions and Z or +HH:MM allowed) or a date "
                   "(2025-07-22, its midnight); without an offset, local time in --tz. Lines "
                   "left out count in totals.lines and totals.outside only")
    p.add_argument("--until", metavar="TIME", default=None,
                   help="count only valid lines before TIME (same forms as --since)")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no report line")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Summarise log files and report anomalies.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    run = commands.add_parser("run", help="summarise files once",
                              description="Summarise PATHs into summary.json and anomalies.json.")
    run.add_argument("paths", nargs="+", metavar="PATH",
                     help="log files or folders, or s3://bucket/prefix/ URLs; - is standard "
                     "input, read once after the files (not decompressed: pipe a .gz through "
                     "zcat)")
    _common(run)
    run.add_argument("--spill-dir", metavar="DIR", default=None,
                     help="where counts past the memory budget are spilled, in a hidden folder "
                     "removed at the end (default: the --out folder); with --scheduler, a "
                     "folder every worker shares with this machine")
    run.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="run the work on the Dask distributed cluster of this scheduler "
                     "(tcp://host:8786; default: $DASK_SCHEDULER_ADDRESS, else local processes)")
    watch = commands.add_parser("watch", help="keep the outputs current as files arrive",
                                description="Process DIR, then keep the outputs current.")
    watch.add_argument("dir", metavar="DIR", help="folder to watch")
    _common(watch)
    watch.add_argument("--settle", type=_positive(float, 0), default=2.0, metavar="SECONDS",
                       help="quiet time before an unterminated last line is taken (default: 2)")
    watch.add_argument("--poll", type=_positive(float, 0.01), default=None, metavar="SECONDS",
                       help="rescan every SECONDS instead of using file notifications (default: "
                       "notifications, with a rescan every 30 s; every 1 s where notifications "
                       "are unavailable)")
    show = commands.add_parser("show", help="the outputs of a run at a glance in the terminal",
                               description="Show levels, top lists, peak hours and anomalies "
                               "from the JSON outputs in OUT.")
    show.add_argument("out", nargs="?", default="output", metavar="OUT",
                      help="output folder of a run (default: output/)")
    show.add_argument("--rows", type=_positive(int), default=10, metavar="N",
                      help="rows per list and per severity (default: 10)")
    show.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="colour: auto (when stdout is a terminal and NO_COLOR is unset), "
                      "always or never (default: auto)")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mapreduce_logs")
    except PackageNotFoundError:
        return "unknown"


_NEGATIVE_OFFSET = re.compile(r"-[0-9]{2}:?[0-9]{2}")


def _joined_offsets(argv: Sequence[str]) -> list[str]:
    """``--tz -08:00`` as ``--tz=-08:00``: argparse would take a value that starts with ``-``
    (and is not a plain negative number) for an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--tz" and _NEGATIVE_OFFSET.fullmatch(arg):
            out[-1] = f"--tz={arg}"
        else:
            out.append(arg)
    return out


def parse_command_line(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed arguments; PATHs may come after options too (``run a.log --quiet b.log``)."""
    argv = _joined_offsets(sys.argv[1:] if argv is None else argv)
    args, extra = build_parser().parse_known_args(argv)
    if extra and args.command == "run" and not any(x.startswith("-") and x != "-" for x in extra):
        args.paths += extra
    elif extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _time_option(args: argparse.Namespace, name: str) -> int | None:
    text = getattr(args, name)
    if text is None:
        return None
    try:
        return parse_time(text, args.tz)
    except TimeError as err:
        raise UsageError(f"argument --{name}: {err}") from None


def settings_from(args: argparse.Namespace) -> Settings:
    """The Settings of the parsed arguments; a --since / --until that is not a TIME, or a
    --since not before --until, is a UsageError."""
    since, until = _time_option(args, "since"), _time_option(args, "until")
    if since is not None and until is not None and since >= until:
        raise UsageError(f"--since {args.since} is not before --until {args.until}")
    return Settings(
        top=args.top, peak_hours=args.peak_hours, window=args.window, clock_skew=args.clock_skew,
        chunk_size=args.chunk_size, workers=args.workers, memory_mb=args.memory_mb,
        spike_factor=args.spike_factor, spike_min_errors=args.spike_min_errors,
        burst_factor=args.burst_factor, burst_min_lines=args.burst_min_lines,
        tz=args.tz, since_ns=since, until_ns=until,
    )
