"""mapreduce_logs: summarise log files and report anomalies, exactly, in bounded memory."""

from .errors import MapError
from .execute.base import Executor, SerialExecutor
from .execute.pool import PoolExecutor
from .ingest.parse import Malformed, Record, parse_line, parse_timestamp
from .ingest.scan import map_split
from .ingest.split import Split, discover, split_file, split_files
from .model.partial import Partial, Segment, merge
from .pipeline import run_files
from .reduce.reducer import reduce_partials
from .report.documents import build_anomalies, build_summary
from .report.output import to_json, write_atomic
from .settings import Settings

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
