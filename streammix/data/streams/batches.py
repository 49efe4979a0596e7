"""Validated stream batches: the arrays of one batch, its identity, and batch iterators.

Every stream source yields :class:`StreamBatch` objects: validated arrays
plus an identity ``(key, first_row)`` (the stream a batch comes from and the
offset of its first row there), which the online state's ledger uses so that
a batch replayed after a restart is not counted twice.  Bad batches get the
errors of batch fitting (:class:`DataError` naming the batch or file, the
column and the rows), through :mod:`streammix.core.checks`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from streammix.core.checks import check_finite, check_weights
from streammix.data.arrays import as_2d_float
from streammix.exceptions import DataError

__all__ = ["StreamBatch", "batch_arrays", "unchecked_batch_arrays", "check_batch_values",
           "iter_batches", "rebatch", "ON_ERROR", "STREAM_KEY_PREFIX", "FILE_KEY_PREFIX"]

logger = logging.getLogger(__name__)

#: What a source does with a bad batch or a corrupt file.
ON_ERROR = ("stop", "skip", "quarantine")

#: Prefix of the ledger key of an Arrow stream (a hash of its schema and first batch).
STREAM_KEY_PREFIX = "arrow:"

#: Prefix of the ledger key of a landed file (its content identity).
FILE_KEY_PREFIX = "file:"


@dataclass(frozen=True)
class StreamBatch:
    """One validated batch: raw features, target, weights and its identity.

    ``last`` is True for the final batch of a file (the ledger then marks
    the file done).  ``digest`` (Arrow streams) hashes every row of the
    stream up to the end of this batch; the consumer stores it in the
    ledger, so that a replay can be checked against what was consumed.
    ``name`` (folders) is the file's name, recorded in its ledger entry.
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    key: str
    first_row: int
    feature_names: tuple
    last: bool = False
    digest: str | None = None
    name: str | None = None

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


def rebatch(batches: Iterable, batch_rows: int | None) -> Iterator:
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
