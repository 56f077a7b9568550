"""DuckDB: one SQL scan of a space-separated log file counting levels, services and users.

    python benchmarks/baselines/duckdb_scan.py FILE THREADS [TOP]

The file is read as CSV with a space delimiter, no quoting, and ``strict_mode=false`` so the
message words past the fourth field are ignored; a materialised GROUPING SETS query counts the
three keys in a single pass, and the top ones are picked in SQL.
"""

from __future__ import annotations

import json
import sys

import duckdb

QUERY = """
WITH g AS MATERIALIZED (
    SELECT level, service, usr, grouping(level) AS gl, grouping(service) AS gs,
           grouping(usr) AS gu, count(*) AS n
    FROM read_csv($path, delim = ' ', header = false, quote = '', escape = '',
                  auto_detect = false, strict_mode = false, null_padding = true,
                  columns = {'ts': 'VARCHAR', 'level': 'VARCHAR', 'service': 'VARCHAR',
                             'usr': 'VARCHAR'})
    GROUP BY GROUPING SETS ((level), (service), (usr))
)
SELECT 'L' AS kind, level AS name, n FROM g WHERE gl = 0
UNION ALL (SELECT 'S', service, n FROM g WHERE gs = 0 ORDER BY n DESC, service LIMIT $k)
UNION ALL (SELECT 'U', usr, n FROM g WHERE gu = 0 ORDER BY n DESC, usr LIMIT $k)
"""


def main(path: str, threads: int, k: int = 10) -> None:
    con = duckdb.connect(config={"threads": threads})
    rows = con.execute(QUERY, {"path": path, "k": k}).fetchall()
    out: dict[str, object] = {
        "levels": {name: n for kind, name, n in rows if kind == "L"},
        "services": sorted(([name, n] for kind, name, n in rows if kind == "S"),
                           key=lambda x: (-x[1], x[0])),
        "users": sorted(([name, n] for kind, name, n in rows if kind == "U"),
                        key=lambda x: (-x[1], x[0])),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 10)
