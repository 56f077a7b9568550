"""Benchmarks and quality evaluation for mapreduce_logs: generator, timing, detector quality."""
