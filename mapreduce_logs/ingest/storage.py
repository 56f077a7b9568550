"""Where input bytes come from: local paths, or object-store URLs (``s3://bucket/prefix/``)
read through fsspec with ranged reads.

A URL is named by its string everywhere (splits, outputs); only this module knows how to list,
size, date and open one. The fsspec and s3fs packages are an optional extra (``[s3]``), imported
when a URL is first met. Credentials and the endpoint come from the standard AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ...), read by botocore.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import io
import os
from typing import Any, NamedTuple

from ..errors import StorageError

READ_AHEAD = 4 << 20
"""Bytes fetched per ranged read of an object while mapping: one request per 4 MiB."""
PROBE_READ = 64 << 10
"""Bytes fetched per request while looking for a line end to cut at."""
SCHEMES = ("s3://",)


class Stat(NamedTuple):
    size: int
    mtime_ns: int


def is_url(path: str) -> bool:
    return path.startswith(SCHEMES)


def _fs(url: str) -> tuple[Any, str]:
    """The fsspec file system for ``url`` and the path in it (bucket/key)."""
    try:
        import fsspec
        import s3fs  # noqa: F401 - fsspec finds it by the scheme; here only to say it is missing
    except ImportError:
        raise StorageError(
            f"reading {url} needs the [s3] extra: pip install 'mapreduce_logs[s3]'") from None
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def _url(fs: Any, path: str) -> str:
    return f"s3://{path}"


def _mtime_ns(info: dict[str, Any]) -> int:
    stamp = info.get("LastModified")
    if isinstance(stamp, datetime.datetime):
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=datetime.UTC)
        delta = stamp - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return 0


def stat(path: str) -> Stat:
    """Size and modification time (an object's LastModified); OSError when it cannot be had."""
    if not is_url(path):
        st = os.stat(path)
        return Stat(st.st_size, st.st_mtime_ns)
    fs, key = _fs(path)
    info = fs.info(key)
    if info.get("type") != "file":
        raise IsADirectoryError(f"not an object: {path}")
    return Stat(int(info["size"]), _mtime_ns(info))


def size(path: str) -> int:
    """Bytes in ``path``; OSError when it cannot be had."""
    return stat(path).size


def open_at(path: str, start: int, read_ahead: int = READ_AHEAD) -> io.BufferedIOBase:
    """``path`` opened for reading from byte ``start`` (an object: ranged reads of
    ``read_ahead`` bytes)."""
    if not is_url(path):
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller's with
        f.seek(start)
        return f
    fs, key = _fs(path)
    obj = fs.open(key, "rb", block_size=read_ahead, cache_type="readahead")
    obj.seek(start)
    return obj  # type: ignore[no-any-return]


def open_gzip(path: str) -> io.BufferedIOBase:
    """A compressed file read through gzip (an object streamed in ranged reads)."""
    if not is_url(path):
        return gzip.open(path, "rb")
    obj = open_at(path, 0)
    return _Closing(gzip.GzipFile(fileobj=obj, mode="rb"), obj)


class _Closing(io.BufferedIOBase):
    """A GzipFile over an object that closes the object too (GzipFile leaves a fileobj open)."""

    def __init__(self, inner: gzip.GzipFile, obj: io.BufferedIOBase) -> None:
        self.inner = inner
        self.obj = obj

    def read(self, n: int | None = -1) -> bytes:
        return self.inner.read(n)

    def read1(self, n: int = -1) -> bytes:
        return self.inner.read1(n)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.inner.close()
        self.obj.close()
        super().close()


def gzip_trailer(path: str) -> int:
    """The last 4 bytes of ``path`` as gzip's size modulo 4 GiB; OSError when unreadable."""
    total = size(path)
    with open_at(path, max(0, total - 4), read_ahead=PROBE_READ) as f:
        return int.from_bytes(f.read(4), "little")


class Listing(NamedTuple):
    files: list[tuple[str, int]]
    """(URL, modification time) of each object found."""
    unlisted: dict[str, str]
    """Prefixes that could not be listed -> why."""


def kind(url: str) -> str:
    """"file", "folder", "missing" (no object and no prefix) or "no bucket"; OSError when
    the store will not say (access denied, unreachable)."""
    fs, key = _fs(url)
    bucket = key.split("/", 1)[0]
    if not bucket:
        raise StorageError(f"no bucket in {url}")
    if key.rstrip("/") == bucket:
        return "folder" if fs.exists(bucket) else "no bucket"
    if not url.endswith("/"):
        with contextlib.suppress(FileNotFoundError):
            if fs.info(key).get("type") == "file":
                return "file"
    if fs.isdir(key):
        return "folder"
    return "missing" if fs.exists(bucket) else "no bucket"


def list_folder(url: str, recursive: bool, is_skipped: Any) -> Listing:
    """The objects directly under the prefix ``url`` (every level with ``recursive``) whose
    names ``is_skipped`` does not reject; a prefix that cannot be listed goes to ``unlisted``."""
    fs, key = _fs(url)
    found: list[tuple[str, int]] = []
    unlisted: dict[str, str] = {}
    pending = [key.rstrip("/")]
    while pending:
        prefix = pending.pop()
        try:
            entries = fs.ls(prefix, detail=True, refresh=True)
        except OSError as err:
            unlisted[_url(fs, prefix + "/")] = f"cannot list the folder: {err.strerror or err}"
            continue
        for entry in entries:
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if is_skipped(name) or entry["name"].rstrip("/") == prefix:
                continue
            if entry.get("type") == "file":
                if not entry["name"].endswith("/"):  # a "folder marker" object
                    found.append((_url(fs, entry["name"]), _mtime_ns(entry)))
            elif recursive:
                pending.append(entry["name"].rstrip("/"))
    return Listing(found, unlisted)
