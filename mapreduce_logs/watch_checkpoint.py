"""The watcher's checkpoint: a snapshot plus an op log, committed by atomically replacing a manifest.

Layout of ``OUT/.watch/``::

    MANIFEST.json        names the snapshot and the op log files, with their sizes and SHA-256
    snapshot-<seq>.pickle    the whole State at some commit
    ops-<seq>.pickle         the ops of one later commit, replayed in order on top of it

A commit writes the new file under a fresh name and fsyncs it, then replaces the manifest
(temporary file, fsync, rename) and fsyncs the folder: the rename is the commit point, so a
``kill -9`` at any instant leaves either the old state or the new one. Files the manifest does not
name are leftovers of an interrupted commit and are removed. A commit writes only its own ops, so
it costs what changed, not the size of the state; when the log outgrows the snapshot, the next
commit writes a fresh snapshot instead (amortised, every byte is rewritten at most a few times).

Loading checks the format, what the state depends on (folder, window, clock skew), every size and
digest, and replays the log; any failure means the checkpoint is not trusted: the caller is told
why and starts again from the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable
from typing import Any, BinaryIO

from .report import write_atomic
from .watch_state import Op, State

FORMAT = 1
MANIFEST = "MANIFEST.json"
_NUMBERED = re.compile(r"(?:snapshot|ops)-([0-9]+)\.pickle")
MAX_LOG_FILES = 256
MIN_SNAPSHOT_BYTES = 1 << 20
"""The log may reach this size before a snapshot is rewritten, however small the snapshot."""


class CheckpointError(Exception):
    """The checkpoint on disk cannot be trusted; the message says why."""


BLOCK = 1 << 20


class _HashingWriter:
    """A file's ``write`` that also hashes and counts what goes through it."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.f.write(data)


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpoint:
    """The committed state of one watcher, in ``folder``. ``meta`` is what the state depends on."""

    def __init__(self, folder: str, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.meta = meta
        self.seq = 0
        self.snapshot: dict[str, Any] | None = None
        self.log: list[dict[str, Any]] = []
        self.fault: Callable[[str], None] | None = None
        """Test hook, called at each step of a commit ("written", "committed") to simulate a crash."""

    # --- loading ---------------------------------------------------------------------------------

    def exists(self) -> bool:
        return os.path.isdir(self.folder) and bool(os.listdir(self.folder))

    def load(self) -> State:
        """The committed state. Raises CheckpointError when it is missing, damaged or foreign."""
        manifest = self._read_manifest()
        snapshot = manifest["snapshot"]
        saved = self._read(snapshot)
        if not (isinstance(saved, tuple) and len(saved) == 3 and saved[0] == FORMAT):
            raise CheckpointError(f"{snapshot['name']} is not a snapshot of format {FORMAT}")
        _, meta, state = saved
        if meta != self.meta or not isinstance(state, State):
            raise CheckpointError(f"{snapshot['name']} was made for {meta}, not {self.meta}")
        for entry in manifest["log"]:
            ops = self._read(entry)
            if not isinstance(ops, list):
                raise CheckpointError(f"{entry['name']} is not an op log")
            for op in ops:
                state.apply(op)
        self.seq = int(manifest["seq"])
        self.snapshot, self.log = snapshot, list(manifest["log"])
        self._remove_unnamed()
        return state

    def _read_manifest(self) -> dict[str, Any]:
        path = os.path.join(self.folder, MANIFEST)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise CheckpointError(f"{path} is missing") from None
        except OSError as err:
            raise CheckpointError(f"cannot read {path}: {err.strerror}") from None
        if not raw.strip():
            raise CheckpointError(f"{path} is empty")
        try:
            manifest = json.loads(raw)
            ok = (
                manifest["format"] == FORMAT
                and manifest["meta"] == self.meta
                and isinstance(manifest["seq"], int)
                and all(self._entry_ok(e) for e in [manifest["snapshot"], *manifest["log"]])
            )
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(f"{path} is not a valid manifest") from None
        if not ok:
            raise CheckpointError(f"{path} does not describe this watch ({self.meta})")
        return manifest  # type: ignore[no-any-return]

    @staticmethod
    def _entry_ok(entry: Any) -> bool:
        return (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and os.path.basename(entry["name"]) == entry["name"]
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str)
        )

    def _read(self, entry: dict[str, Any]) -> Any:
        """The object stored in ``entry``'s file, once its size and digest are checked."""
        path = os.path.join(self.folder, entry["name"])
        try:
            with open(path, "rb") as f:
                digest, size = hashlib.sha256(), 0
                while block := f.read(BLOCK):
                    digest.update(block)
                    size += len(block)
                if size != entry["bytes"] or digest.hexdigest() != entry["sha256"]:
                    raise CheckpointError(
                        f"{path} is damaged (size or digest differs from the manifest)")
                f.seek(0)
                try:
                    return pickle.load(f)
                except Exception as err:  # noqa: BLE001 - any unpickling failure means "damaged"
                    raise CheckpointError(f"{path} cannot be read back: {err!r}") from None
        except OSError as err:
            raise CheckpointError(f"cannot read {path}: {err.strerror}") from None

    # --- committing ------------------------------------------------------------------------------

    def reset(self, state: State) -> None:
        """Throw away whatever is on disk and commit ``state`` as a fresh snapshot."""
        os.makedirs(self.folder, exist_ok=True)
        numbers = [int(m.group(1)) for m in map(_NUMBERED.fullmatch, os.listdir(self.folder)) if m]
        self.seq, self.snapshot, self.log = max(numbers, default=0), None, []
        self._commit_snapshot(state)

    def commit(self, state: State, ops: list[Op]) -> None:
        """Make ``state`` (which already includes ``ops``) the committed one."""
        if self.snapshot is None:
            self._commit_snapshot(state)
            return
        logged = sum(e["bytes"] for e in self.log)
        if len(self.log) >= MAX_LOG_FILES or logged > max(self.snapshot["bytes"], MIN_SNAPSHOT_BYTES):
            self._commit_snapshot(state)
            return
        entry = self._write("ops", ops)
        self._publish(self.snapshot, [*self.log, entry])

    def _commit_snapshot(self, state: State) -> None:
        entry = self._write("snapshot", (FORMAT, self.meta, state))
        self._publish(entry, [])

    def _write(self, kind: str, payload: object) -> dict[str, Any]:
        """Stream ``payload`` into a new file, fsynced; its manifest entry."""
        self.seq += 1
        name = f"{kind}-{self.seq:012d}.pickle"
        with open(os.path.join(self.folder, name), "wb") as f:
            out = _HashingWriter(f)
            pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
            # No memo: it would hold an entry per object of the state (millions); the state has
            # no cycles, and a shared object is merely written twice.
            pickler.fast = True
            pickler.dump(payload)
            f.flush()
            os.fsync(f.fileno())
        return {"name": name, "bytes": out.size, "sha256": out.digest.hexdigest()}

    def _publish(self, snapshot: dict[str, Any], log: list[dict[str, Any]]) -> None:
        if self.fault is not None:
            self.fault("written")
        manifest = {"format": FORMAT, "meta": self.meta, "seq": self.seq, "snapshot": snapshot,
                    "log": log}
        write_atomic(os.path.join(self.folder, MANIFEST),
                     json.dumps(manifest, indent=1).encode() + b"\n")
        _fsync_folder(self.folder)
        self.snapshot, self.log = snapshot, log
        if self.fault is not None:
            self.fault("committed")
        self._remove_unnamed()

    def _remove_unnamed(self) -> None:
        """Remove files of interrupted or superseded commits."""
        keep = {MANIFEST}
        if self.snapshot is not None:
            keep.add(self.snapshot["name"])
        keep.update(e["name"] for e in self.log)
        for name in os.listdir(self.folder):
            if name not in keep and (name.endswith(".pickle") or name.endswith(".tmp")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.folder, name))
