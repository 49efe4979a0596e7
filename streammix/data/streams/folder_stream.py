"""A watched folder where Parquet files land, each read once, as stream batches.

Each landed file is known by its content identity
(``"file:<size>-<mtime>-<footer hash>"``), not its name; see
:class:`FolderStream` for the landing protocol.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from streammix.data.streams.batches import (
    FILE_KEY_PREFIX,
    STREAM_KEY_PREFIX,
    StreamBatch,
    batch_arrays,
    rebatch,
)
from streammix.exceptions import DataError

__all__ = ["FolderStream"]

logger = logging.getLogger(__name__)


def _failure(path, exc: Exception) -> str:
    """Why a landed file cannot be used: a data error says so itself."""
    if isinstance(exc, DataError):
        return str(exc)
    return f"{path}: unreadable Parquet file ({exc})"


def _footer_hash(path: Path, size: int) -> str:
    """A hash of a Parquet file's footer (its metadata and trailer).

    A file that does not end like Parquet (truncated, not Parquet) is hashed
    by its last 64 KiB instead, so that it too has an identity to be
    quarantined under.
    """
    with open(path, "rb") as fh:
        take = min(size, 1 << 16)
        if size >= 12:
            fh.seek(size - 8)
            trailer = fh.read(8)
            length = int.from_bytes(trailer[:4], "little")
            if trailer[4:] == b"PAR1" and length + 12 <= size:
                take = length + 8
        fh.seek(size - take)
        return hashlib.blake2b(fh.read(take), digest_size=8).hexdigest()


class FolderStream:
    """Parquet files landing in a folder, each read once, in arrival order.

    Landing protocol: a writer must create the file under a temporary name
    -- starting with ``.`` or ending with ``.tmp`` -- and *rename* it to its
    final ``*.parquet`` name once complete (rename is atomic on POSIX file
    systems).  Such temporary names are never read, so a half-written file is
    never seen.  Files are taken in order of (modification time, name).

    Which files were read is kept in the online state's ledger (saved with
    the checkpoint), keyed by each file's *content identity*: its size, its
    modification time (ns) and a hash of its Parquet footer
    (``"file:<size>-<mtime_ns>-<hash>"``); an entry holds the offset of the
    next unread row, a status (``"reading"``, ``"done"``,
    ``"quarantined"``) and the file's name when it was read.  A file whose
    identity is in the ledger as done or quarantined is never read again --
    also when it was renamed or moved within the folder since (a rename
    keeps size, time and footer).  A file interrupted by a crash is re-read
    and its consumed rows skipped.

    A *re-landed* file -- one under the name of a file read before, with
    another size, time or footer -- is new data: it is read, and a warning
    says that it replaced a file read before.  (A copy of a read file that
    gets a new modification time is new data too; ``cp -p`` keeps the time.)
    Entries of a ledger written by an earlier streammix are keyed by file
    name; such an entry is matched by name, then re-keyed by identity (saved
    so when the checkpoint is next written).

    A corrupt file (unreadable Parquet, missing or non-numeric columns, NaN,
    nulls, negative weights) is, with ``on_error="quarantine"`` (default),
    moved to the ``quarantine/`` subfolder, logged and recorded in the
    ledger, and the stream goes on; rows of the file consumed before the bad
    batch stay consumed.  ``on_error="stop"`` raises :class:`DataError`.

    Parameters
    ----------
    folder : str or path
    target, features, weight : see :func:`batch_arrays`
    ledger : dict
        The ledger to consult and update (``OnlineEM.ledger``).
    watch : bool
        Keep polling for new files (until the consumer stops iterating);
        otherwise stop when no unread file is left.
    poll : float
        Seconds between two scans of the folder when watching.
    batch_rows : int, optional
        Split files into batches of this many rows, read incrementally
        (default: each file is one batch).
    on_error : {"quarantine", "stop"}
    """

    QUARANTINE = "quarantine"

    def __init__(self, folder, *, target: str, features=None, weight: str | None = None,
                 ledger: dict | None = None, watch: bool = False, poll: float = 1.0,
                 batch_rows: int | None = None, on_error: str = "quarantine",
                 quarantine_hook=None):
        if on_error not in ("quarantine", "stop"):
            raise ValueError(f"on_error must be 'quarantine' or 'stop', got {on_error!r}")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder")
        self.target, self.features, self.weight = target, features, weight
        self.ledger = ledger if ledger is not None else {}
        self.watch, self.poll = watch, float(poll)
        self.batch_rows = batch_rows
        self.on_error = on_error
        self.quarantine_hook = quarantine_hook
        self._identities: dict[tuple, str] = {}  # (name, inode, size, mtime) -> key

    @staticmethod
    def is_candidate(name: str) -> bool:
        """A finished Parquet file: not hidden, not temporary."""
        return (not name.startswith(".") and not name.endswith(".tmp")
                and name.endswith(".parquet"))

    def identity(self, name: str, stat: os.stat_result | None = None) -> str:
        """The ledger key of file ``name`` of the folder (see the class docstring)."""
        if stat is None:
            stat = os.stat(self.folder / name)
        stamp = (name, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        key = self._identities.get(stamp)
        if key is None:  # the footer is read once per file version
            footer = _footer_hash(self.folder / name, stat.st_size)
            key = f"{FILE_KEY_PREFIX}{stat.st_size}-{stat.st_mtime_ns}-{footer}"
            self._identities[stamp] = key
        return key

    def pending(self) -> list[tuple[str, str]]:
        """Unread files as ``(name, key)``, in (mtime, name) order."""
        found = []
        with os.scandir(self.folder) as it:
            for entry in it:
                if not entry.is_file() or not self.is_candidate(entry.name):
                    continue
                try:
                    stat = entry.stat()
                    key = self.identity(entry.name, stat)
                except FileNotFoundError:  # renamed away meanwhile
                    continue
                status = self._adopt(entry.name, key).get("status")
                if status in ("done", "quarantined"):
                    continue
                found.append((stat.st_mtime_ns, entry.name, key))
        return [(name, key) for _, name, key in sorted(found)]

    def _adopt(self, name: str, key: str) -> dict:
        """The ledger entry of a file: by identity, or an earlier version's by name."""
        entry = self.ledger.get(key)
        if entry is not None:
            return entry
        legacy = self.ledger.get(name)
        if legacy is not None and not name.startswith((FILE_KEY_PREFIX, STREAM_KEY_PREFIX)):
            entry = self.ledger[key] = self.ledger.pop(name)
            entry["name"] = name
            logger.info("%s: ledger entry of an earlier streammix (by name) now keyed by the "
                        "file's identity %s", name, key)
            return entry
        earlier = [e for e in self.ledger.values() if e.get("name") == name
                   and e.get("status") == "done"]
        if earlier:
            logger.warning("%s: a new file under the name of a file read before (another "
                           "size, time or footer): reading it as new data", self.folder / name)
        return {}

    def __iter__(self) -> Iterator[StreamBatch]:
        while True:
            files = self.pending()
            for name, key in files:
                yield from self._file(name, key)
            if not self.watch:
                return
            if not files:
                time.sleep(self.poll)

    def _file(self, name: str, key: str) -> Iterator[StreamBatch]:
        import pyarrow.parquet as pq

        path = self.folder / name
        if not path.exists():  # moved away since the scan: nothing to read
            return
        try:
            pf = pq.ParquetFile(path)
            schema = pf.schema_arrow
            wanted = ([self.target] + list(self.features or [])
                      + ([self.weight] if self.weight else []))
            missing = [c for c in wanted if c not in schema.names]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing} (it has {schema.names})")
            columns = None if self.features is None else wanted
            if self.batch_rows is None:
                batches = iter([pf.read(columns=columns)])
            else:
                batches = rebatch(pf.iter_batches(columns=columns), self.batch_rows)
            table = next(batches, None)
        except (DataError, pa.ArrowException, OSError) as exc:
            yield from self._bad(name, key, _failure(path, exc))
            return
        offset = 0
        while table is not None:
            n = table.num_rows
            where = f"{path} rows {offset}-{offset + n - 1}"
            try:
                X, y, w, names = batch_arrays(table, target=self.target, features=self.features,
                                              weight=self.weight, where=where)
                table = next(batches, None)
            except (DataError, pa.ArrowException, OSError) as exc:
                yield from self._bad(name, key, _failure(path, exc))
                return
            yield StreamBatch(X, y, w, key, offset, names, last=table is None, name=name)
            offset += n
        # The consumer asked for more after the last batch: the file is done.
        entry = self.ledger.setdefault(key, {"next": offset})
        entry["status"] = "done"
        entry["name"] = name

    def _bad(self, name: str, key: str, reason: str) -> Iterator[StreamBatch]:
        if self.on_error == "stop":
            raise DataError(reason)
        qdir = self.folder / self.QUARANTINE
        qdir.mkdir(exist_ok=True)
        try:
            os.replace(self.folder / name, qdir / name)
        except OSError as exc:
            logger.error("could not move %s to %s: %s", name, qdir, exc)
        logger.error("quarantined %s: %s", name, reason)
        entry = self.ledger.setdefault(key, {"next": 0})
        entry["status"] = "quarantined"
        entry["reason"] = reason
        entry["name"] = name
        if self.quarantine_hook is not None:
            self.quarantine_hook(name, reason)
        return
        yield  # a generator that yields nothing
