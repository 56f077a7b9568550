"""A longer fuzz run of the compiled kernel against the pure-Python mapper.

    python -m benchmarks.fuzz_kernel [--seconds 300] [--seed 1] [--no-record]

Each case is a file of mutated log lines (bytes flipped, inserted, deleted, lines cut short,
separators, NUL and invalid UTF-8 bytes, stamps at the grammar's edges), cut into random splits,
read in random block sizes, with random --window and --clock-skew; both mappers must give the
same Partial. A mismatch writes the case to a file and exits 1. The figures (cases, lines, bytes,
seconds) go to ``benchmarks/results/fuzz_kernel.{md,json}`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

from mapreduce_logs import Partial, Settings, Split, map_split
from mapreduce_logs.ingest import kernel as native
from mapreduce_logs.ingest import scan
from mapreduce_logs.ingest.split import split_files

RESULTS = Path(__file__).parent / "results"

SEEDS = [
    b"2025-07-22T12:00:00Z INFO auth user1 message",
    b"2025-07-22T12:00:59Z ERROR payment user22",
    b"2025-07-22T12:01:00.123Z WARN db u3 m",
    b"2025-07-22t12:00:00+02:00 warning svc u",
    b"2025-07-22T12:00:00-0330 critical svc u\r",
    b"2024-02-29T23:59:59z FATAL s u",
    b"0000-12-31T23:30:00-01:00 INFO s u",
    b"9999-12-31T23:59:59.999999999Z NOTICE s u",
    b"\t2025-07-22T12:00:00Z\x0bTRACE\x0cs\tu  msg",
    b"2025-07-22T12:00:00Z DEBUG \xc3\xa9 \xf0\x9f\x98\x80",
    b"2025-07-22T12:00:00Z INFO \xff u",
    b"2025-07-22T12:00:00Z VERBOSE s u",
    b"x y z",
    b"",
    b" \t\r",
]
INTERESTING = b"\x00\xff\xc3\xed\xf4 \t\r\x0b\x0c\n:-+.TtZz0123456789"


def mutate(line: bytes, rng: random.Random) -> bytes:
    data = bytearray(line)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 4])):
        op = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data and at < len(data):
            data[at] = rng.randrange(256)
        elif op == 1:
            data[at:at] = bytes([rng.choice(INTERESTING)])
        elif op == 2 and data:
            del data[at : at + rng.randint(1, 3)]
        elif op == 3:
            del data[at:]
        else:
            data[at:at] = rng.choice(SEEDS)[: rng.randrange(40)]
    return bytes(data)


def make_case(rng: random.Random) -> bytes:
    lines: list[bytes] = []
    for _ in range(rng.choice([1, 5, 40, 400, 2000])):
        if rng.random() < 0.002:
            size = rng.choice([65_535, 65_536, 65_537, 70_000])
            lines.append((rng.choice(SEEDS) + b" " + b"m" * size)[:size])
            continue
        lines.append(mutate(rng.choice(SEEDS), rng))
    content = b"\n".join(lines)
    return content + b"\n" if rng.random() < 0.8 else content


def facts(p: Partial) -> dict[str, Any]:
    return {f.name: dict(v) if isinstance(v := getattr(p, f.name), Counter) else v
            for f in dataclasses.fields(p)}


def check(content: bytes, rng: random.Random, folder: str) -> bool:
    path = os.path.join(folder, "case.log")
    with open(path, "wb") as f:
        f.write(content)
    mtime = rng.choice([0, 1_753_185_600, 1_753_189_200]) * 10**9
    os.utime(path, ns=(mtime, mtime))
    knobs = Settings(window=rng.choice([1, 7, 60, 3600]), clock_skew=rng.choice([0, 1, 300]))
    chunk = rng.choice([1, 7, 100, 4096, 1 << 25])
    block = rng.choice([1, 19, 20, 64, 4096, 65_536, 1 << 20])
    future = rng.random() < 0.2
    splits = [s for s in split_files([path], chunk) if isinstance(s, Split)]
    results = []
    for kernel in ("compiled", "python"):
        with mock.patch.dict(os.environ, {native.ENV: kernel}), \
                mock.patch.object(scan, "BLOCK", block):
            results.append([facts(map_split(s, knobs, future_lines=future)) for s in splits])
    return results[0] == results[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-record", action="store_true", help="do not write benchmarks/results")
    args = ap.parse_args()
    if native.compiled is None:
        raise SystemExit("fuzz_kernel: the compiled kernel was not built")
    rng = random.Random(args.seed)
    cases = lines = nbytes = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        while time.perf_counter() - started < args.seconds:
            content = make_case(rng)
            if not check(content, rng, folder):
                failed = os.path.join(tempfile.gettempdir(), f"fuzz_kernel-{args.seed}-{cases}.log")
                Path(failed).write_bytes(content)
                print(f"fuzz_kernel: mismatch on case {cases}, written to {failed}", file=sys.stderr)
                raise SystemExit(1)
            cases += 1
            lines += content.count(b"\n") + (not content.endswith(b"\n") and bool(content))
            nbytes += len(content)
    seconds = time.perf_counter() - started
    print(f"fuzz_kernel: {cases:,} cases, {lines:,} lines, {nbytes:,} bytes in {seconds:.0f} s: "
          "no difference")
    if args.no_record:
        return
    doc = {"seed": args.seed, "seconds": round(seconds, 1), "cases": cases, "lines": lines,
           "bytes": nbytes, "differences": 0, "written": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                        time.gmtime())}
    (RESULTS / "fuzz_kernel.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "fuzz_kernel.md").write_text(
        "# Fuzz run: compiled kernel vs pure-Python mapper\n\n"
        f"Command: `python -m benchmarks.fuzz_kernel --seconds {args.seconds:g} --seed {args.seed}`"
        f"\nWritten {doc['written']}.\n\n"
        f"{cases:,} cases ({lines:,} lines, {nbytes:,} bytes of mutated log lines, random splits, "
        "read blocks, --window and --clock-skew): no difference between the two mappers' "
        "Partials.\n")


if __name__ == "__main__":
    main()
