"""The tools the benchmark compares against: a plain Python loop, awk and DuckDB."""
