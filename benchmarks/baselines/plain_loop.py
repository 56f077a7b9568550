"""The naive baseline: ``for line in f``, split, Counter. Prints levels, top services and users.

    python benchmarks/baselines/plain_loop.py FILE [TOP]
"""

from __future__ import annotations

import heapq
import json
import sys
from collections import Counter


def top(counts: Counter[bytes], k: int) -> list[list[object]]:
    best = heapq.nsmallest(k, counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [[name.decode("utf-8", "replace"), n] for name, n in best]


def main(path: str, k: int = 10) -> None:
    levels: Counter[bytes] = Counter()
    services: Counter[bytes] = Counter()
    users: Counter[bytes] = Counter()
    lines = 0
    with open(path, "rb") as f:
        for line in f:
            lines += 1
            fields = line.split(None, 4)
            if len(fields) < 4:
                continue
            levels[fields[1]] += 1
            services[fields[2]] += 1
            users[fields[3]] += 1
    print(json.dumps({
        "lines": lines,
        "levels": {name.decode(): n for name, n in levels.items()},
        "services": top(services, k),
        "users": top(users, k),
    }))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10)
