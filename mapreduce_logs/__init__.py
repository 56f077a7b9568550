"""mapreduce_logs: summarise log files and report anomalies, exactly, in bounded memory."""

from .engine import Executor, MapError, PoolExecutor, SerialExecutor, reduce_partials, run_files
from .parse import Malformed, Record, parse_line, parse_timestamp
from .partial import Partial, Segment, merge
from .report import build_anomalies, build_summary, to_json, write_atomic
from .scan import map_split
from .settings import Settings
from .split import Split, discover, split_file, split_files

__all__ = [
    "Executor",
    "Malformed",
    "MapError",
    "Partial",
    "PoolExecutor",
    "Record",
    "Segment",
    "SerialExecutor",
    "Settings",
    "Split",
    "build_anomalies",
    "build_summary",
    "discover",
    "map_split",
    "merge",
    "parse_line",
    "parse_timestamp",
    "reduce_partials",
    "run_files",
    "split_file",
    "split_files",
    "to_json",
    "write_atomic",
]
