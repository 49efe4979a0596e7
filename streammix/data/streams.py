"""Stream sources for online EM: iterators, Arrow IPC streams, watched folders.

Every source yields :class:`StreamBatch` objects: validated arrays plus an
identity ``(key, first_row)`` (the stream a batch comes from and the offset
of its first row there), which the online state's ledger uses so that a
batch replayed after a restart is not counted twice.

* :func:`iter_batches` -- a Python iterable of ``(X, y)``, ``(X, y, w)``,
  pandas DataFrames or pyarrow RecordBatches/Tables; key ``"iterator"``
  (or one you give), offsets counted in rows.
* :class:`ArrowStreamSource` -- an Arrow IPC *stream* from a file or from
  standard input (``"-"``); key ``"stdin"`` or the file's absolute path.
* :class:`FolderStream` -- a folder where Parquet files land.  See its
  docstring for the landing protocol.

Bad batches get the errors of batch fitting (:class:`DataError` naming the
batch or file, the column and the rows), through :mod:`streammix.validation`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from streammix.core.checks import DataError, check_finite, check_weights
from streammix.data.arrays import as_2d_float

__all__ = ["StreamBatch", "batch_arrays", "unchecked_batch_arrays", "check_batch_values",
           "iter_batches", "ArrowStreamSource", "FolderStream",
           "ON_ERROR"]

logger = logging.getLogger(__name__)

#: What a source does with a bad batch or a corrupt file.
ON_ERROR = ("stop", "skip", "quarantine")


@dataclass(frozen=True)
class StreamBatch:
    """One validated batch: raw features, target, weights and its identity.

    ``last`` is True for the final batch of a file (the ledger then marks
    the file done).
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    key: str
    first_row: int
    feature_names: tuple
    last: bool = False

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])


def _column(table, name: str, where: str) -> np.ndarray:
    if name not in table.column_names:
        raise DataError(f"{where}: missing column {name!r} (it has {table.column_names})")
    col = table.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
            or pa.types.is_boolean(col.type) or pa.types.is_decimal(col.type)):
        raise DataError(f"{where}: column {name!r} has type {col.type}, expected a number")
    if col.null_count:
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        first = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise DataError(f"{where}: column {name!r} has {col.null_count} null value"
                        f"{'s' if col.null_count != 1 else ''}, first at row {first}")
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _pandas_to_arrow(df):
    return pa.Table.from_pandas(df, preserve_index=False)


def batch_arrays(batch, y=None, sample_weight=None, *, target: str | None = None,
                 features=None, weight: str | None = None, where: str = "batch"):
    """Validated ``(X, y, w, feature_names)`` from one batch.

    Parameters
    ----------
    batch : ndarray, pandas DataFrame, pyarrow RecordBatch or Table
        With ``y`` given, the features (all columns of a table).  Without
        ``y``, a table holding the ``target`` column too.
    y, sample_weight : array-like, optional
    target : str, optional
        Name of the target column (tables, when ``y`` is None).
    features : list of str, optional
        Feature columns; default every column but ``target`` and ``weight``.
    weight : str, optional
        Name of a frequency-weight column.
    where : str
        How error messages name the batch.

    Raises
    ------
    DataError
        Missing or non-numeric columns, nulls, NaN or inf, negative weights,
        mismatched lengths.
    """
    X, y, w, features = unchecked_batch_arrays(batch, y, sample_weight, target=target,
                                               features=features, weight=weight, where=where)
    if w is None:
        w = np.ones(X.shape[0])
    check_batch_values(X, y, w, features, target=target, where=where)
    return X, y, w, features


def unchecked_batch_arrays(batch, y=None, sample_weight=None, *, target: str | None = None,
                           features=None, weight: str | None = None, where: str = "batch"):
    """:func:`batch_arrays` without the value checks of :func:`check_batch_values`.

    Columns, types, nulls and shapes are checked; NaN, inf and negative
    weights are not.  ``w`` is None when the batch has no weights.  Tables
    give an F-ordered ``X`` (each feature contiguous, as the E-step reads it).
    """
    if hasattr(batch, "columns") and hasattr(batch, "dtypes") and not isinstance(
            batch, (pa.Table, pa.RecordBatch)):
        batch = _pandas_to_arrow(batch)
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        if y is None and target is None:
            raise ValueError("a table batch needs y or target= (the name of the target column)")
        names = list(batch.column_names)
        if features is None:
            features = [c for c in names if c != target and c != weight]
        features = [str(f) for f in features]
        X = np.empty((batch.num_rows, len(features)), order="F")
        for k, name in enumerate(features):
            X[:, k] = _column(batch, name, where)
        if y is None:
            y = _column(batch, target, where)
        if weight is not None:
            sample_weight = _column(batch, weight, where)
    else:
        X = as_2d_float(batch, "X", where=f"{where}: ")
        if y is None:
            raise DataError(f"{where}: y is required when X is an array")
        features = ([f"x{k}" for k in range(X.shape[1])] if features is None
                    else [str(f) for f in features])
        if len(features) != X.shape[1]:
            raise DataError(f"{where}: {len(features)} feature names for {X.shape[1]} columns")
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise DataError(f"{where}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    if w is not None and w.shape != (X.shape[0],):
        raise DataError(f"{where}: sample_weight must have shape ({X.shape[0]},), got {w.shape}")
    return X, y, w, tuple(features)


def check_batch_values(X: np.ndarray, y: np.ndarray, w: np.ndarray | None, features, *,
                       target: str | None = None, where: str = "batch") -> None:
    """Raise :class:`DataError` for NaN or inf in ``X``, ``y`` or ``w``, or a negative weight.

    The first problem in the order features (by column), target, weights is
    reported, with its count and first row; ``w=None`` means unit weights.
    """
    prefix = f"{where}: "
    if not np.isfinite(X).all():  # one vectorised test; name the column only when bad
        for k, name in enumerate(features):
            check_finite(X[:, k], f"X column {name!r}", where=prefix)
    check_finite(y, "y" if target is None else f"y column {target!r}", where=prefix)
    if w is not None:
        check_weights(w, where=prefix)


def iter_batches(iterable: Iterable, *, target: str | None = None, features=None,
                 weight: str | None = None, key: str = "iterator") -> Iterator[StreamBatch]:
    """Validated :class:`StreamBatch` objects from an iterable of batches.

    Items are ``(X, y)`` or ``(X, y, w)`` tuples, pandas DataFrames or
    pyarrow RecordBatches/Tables (with ``target=``).  Batch ids are row
    offsets in ``key``, so restarting the iterable from the beginning after
    a crash replays batches that the state then skips.
    """
    offset = 0
    for index, item in enumerate(iterable):
        where = f"{key} batch {index} (rows from {offset})"
        if isinstance(item, tuple):
            X, y, w, names = batch_arrays(item[0], item[1], item[2] if len(item) > 2 else None,
                                          features=features, where=where)
        else:
            X, y, w, names = batch_arrays(item, target=target, features=features,
                                          weight=weight, where=where)
        yield StreamBatch(X, y, w, key, offset, names)
        offset += X.shape[0]


def _failure(path, exc: Exception) -> str:
    """Why a landed file cannot be used: a data error says so itself."""
    if isinstance(exc, DataError):
        return str(exc)
    return f"{path}: unreadable Parquet file ({exc})"


def _rebatch(batches: Iterable, batch_rows: int | None) -> Iterator:
    """Record batches regrouped into tables of ``batch_rows`` rows (the last may be short)."""
    if batch_rows is None:
        yield from batches
        return
    pending, n = [], 0
    for rb in batches:
        while rb.num_rows:
            take = min(batch_rows - n, rb.num_rows)
            pending.append(rb.slice(0, take))
            rb = rb.slice(take)
            n += take
            if n == batch_rows:
                yield pa.Table.from_batches(pending)
                pending, n = [], 0
    if n:
        yield pa.Table.from_batches(pending)


def _checked(tables: Iterator, name: str) -> Iterator:
    """Arrow decoding errors (a truncated or corrupt stream) as :class:`DataError`."""
    rows = 0
    while True:
        try:
            table = next(tables)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{name}: corrupt or truncated Arrow stream after row {rows} "
                            f"({exc})") from None
        rows += table.num_rows
        yield table


class ArrowStreamSource:
    """Batches of an Arrow IPC stream (a file, or ``"-"`` for standard input).

    Parameters
    ----------
    path : str or path
        File in the Arrow IPC *streaming* format, or ``"-"``.
    target, features, weight : see :func:`batch_arrays`
    batch_rows : int, optional
        Regroup the stream's record batches into batches of this many rows.
    on_error : {"stop", "skip"}
        A bad batch raises :class:`DataError` ("stop") or is logged and
        skipped ("skip").
    """

    def __init__(self, path, *, target: str, features=None, weight: str | None = None,
                 batch_rows: int | None = None, on_error: str = "stop"):
        if on_error not in ("stop", "skip"):
            raise ValueError(f"on_error must be 'stop' or 'skip' for a stream, got {on_error!r}")
        self.path = str(path)
        self.key = "stdin" if self.path == "-" else os.path.abspath(self.path)
        self.target, self.features, self.weight = target, features, weight
        self.batch_rows = batch_rows
        self.on_error = on_error
        self.n_skipped = 0

    def __iter__(self) -> Iterator[StreamBatch]:
        if self.path == "-":
            yield from self._batches(sys.stdin.buffer)
        else:
            with open(self.path, "rb") as fh:
                yield from self._batches(fh)

    def _batches(self, fh) -> Iterator[StreamBatch]:
        name = "standard input" if self.path == "-" else self.path
        try:
            reader = pa.ipc.open_stream(fh)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{name}: not an Arrow IPC stream ({exc})") from None
        offset = 0
        for index, table in enumerate(_checked(_rebatch(reader, self.batch_rows), name)):
            where = f"{name} batch {index} (rows {offset}-{offset + table.num_rows - 1})"
            try:
                X, y, w, names = batch_arrays(table, target=self.target,
                                              features=self.features, weight=self.weight,
                                              where=where)
            except DataError as exc:
                if self.on_error == "stop":
                    raise
                logger.error("skipped bad batch: %s", exc)
                self.n_skipped += 1
            else:
                yield StreamBatch(X, y, w, self.key, offset, names)
            offset += table.num_rows


class FolderStream:
    """Parquet files landing in a folder, each read once, in arrival order.

    Landing protocol: a writer must create the file under a temporary name
    -- starting with ``.`` or ending with ``.tmp`` -- and *rename* it to its
    final ``*.parquet`` name once complete (rename is atomic on POSIX file
    systems).  Such temporary names are never read, so a half-written file is
    never seen.  Files are taken in order of (modification time, name).

    Which files were read is kept in the online state's ledger (saved with
    the checkpoint): one entry per file name with the offset of the next
    unread row and a status (``"reading"``, ``"done"``, ``"quarantined"``).
    A file in the ledger as done or quarantined is never read again; a file
    interrupted by a crash is re-read and its consumed rows skipped.

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

    @staticmethod
    def is_candidate(name: str) -> bool:
        """A finished Parquet file: not hidden, not temporary."""
        return (not name.startswith(".") and not name.endswith(".tmp")
                and name.endswith(".parquet"))

    def pending(self) -> list[str]:
        """Unread files, in (mtime, name) order."""
        found = []
        with os.scandir(self.folder) as it:
            for entry in it:
                if not entry.is_file() or not self.is_candidate(entry.name):
                    continue
                status = self.ledger.get(entry.name, {}).get("status")
                if status in ("done", "quarantined"):
                    continue
                try:
                    found.append((entry.stat().st_mtime_ns, entry.name))
                except FileNotFoundError:  # renamed away meanwhile
                    continue
        return [name for _, name in sorted(found)]

    def __iter__(self) -> Iterator[StreamBatch]:
        while True:
            names = self.pending()
            for name in names:
                yield from self._file(name)
            if not self.watch:
                return
            if not names:
                time.sleep(self.poll)

    def _file(self, name: str) -> Iterator[StreamBatch]:
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
                batches = _rebatch(pf.iter_batches(columns=columns), self.batch_rows)
            table = next(batches, None)
        except (DataError, pa.ArrowException, OSError) as exc:
            yield from self._bad(name, _failure(path, exc))
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
                yield from self._bad(name, _failure(path, exc))
                return
            yield StreamBatch(X, y, w, name, offset, names, last=table is None)
            offset += n
        # The consumer asked for more after the last batch: the file is done.
        self.ledger.setdefault(name, {"next": offset})["status"] = "done"

    def _bad(self, name: str, reason: str) -> Iterator[StreamBatch]:
        if self.on_error == "stop":
            raise DataError(reason)
        qdir = self.folder / self.QUARANTINE
        qdir.mkdir(exist_ok=True)
        try:
            os.replace(self.folder / name, qdir / name)
        except OSError as exc:
            logger.error("could not move %s to %s: %s", name, qdir, exc)
        logger.error("quarantined %s: %s", name, reason)
        entry = self.ledger.setdefault(name, {"next": 0})
        entry["status"] = "quarantined"
        entry["reason"] = reason
        if self.quarantine_hook is not None:
            self.quarantine_hook(name, reason)
        return
        yield  # a generator that yields nothing
