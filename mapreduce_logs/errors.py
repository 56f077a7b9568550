"""Every exception the package raises on purpose, each a MapReduceLogsError."""

from __future__ import annotations


class MapReduceLogsError(Exception):
    """Base of the package's own errors."""


class UsageError(MapReduceLogsError):
    """A mistake in the command line; reported in one line with exit status 2."""


class KernelUnavailableError(UsageError):
    """MAPREDUCE_LOGS_KERNEL=compiled, but the compiled kernel was not built."""


class InputError(MapReduceLogsError):
    """A path given by the user that does not exist or is not a file or a folder."""


class StorageError(MapReduceLogsError):
    """An object-store URL that cannot be used at all (the [s3] extra missing, no bucket named,
    access denied)."""


class ClusterError(MapReduceLogsError):
    """The cluster cannot be used: the [dask] extra missing, the scheduler unreachable, no
    worker, or the spill folder not visible to the workers."""


class MapError(MapReduceLogsError):
    """A worker failed on a split; names the file and byte range."""


class CancelledError(MapReduceLogsError):
    """The caller's ``cancel`` asked to stop: the results not yet yielded are lost."""


class CheckpointError(MapReduceLogsError):
    """The watcher's checkpoint on disk cannot be trusted; the message says why."""


class StoreError(MapReduceLogsError):
    """The watcher's counters on disk contradict themselves (a damaged checkpoint)."""
