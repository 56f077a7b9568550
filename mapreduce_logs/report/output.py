"""Writing outputs: JSON as the contract has it, and files replaced atomically."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from typing import Any

import orjson


def to_json(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON, 2-space indent, key order kept, newline at the end."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def shown(path: str) -> str:
    """A path as JSON shows it: bytes that are not UTF-8 in a file name become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


@functools.cache
def umask() -> int:
    """The process's umask, read once: from /proc where the system shows it (reading it with
    ``os.umask`` means setting it, which another thread could see), else through ``os.umask``."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old file or the new, never half.

    The new file has the old one's permissions, or those any new file gets here (0666 less the
    umask): not the 0600 of a private temporary file, which would lock out other readers.
    """
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except OSError:
                mode = 0o666 & ~umask()
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
