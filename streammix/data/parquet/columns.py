"""Columns of a Parquet chunk as float64, and row filters.

Helpers of :class:`streammix.ParquetSource`: a column is cast safely to
float64 and its null, NaN and infinite rows are counted and located (file
and row) for the error or the drop policy; the arrays a chunk is assembled
in are taken from pyarrow's memory pool (:func:`pool_array`); filters are
kept in pyarrow's disjunctive normal form so that they can be shown and
their columns read.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from streammix.data.parquet.filter_text import parse_filter
from streammix.exceptions import DataError


def to_float(column: pa.ChunkedArray, name: str, row_ids: np.ndarray, path: str,
             out: np.ndarray | None = None):
    """A column as float64, the mask of null/NaN/inf rows and a message about them.

    With ``out`` (a contiguous float64 array of the column's length, e.g. a
    column of an F-ordered feature matrix) the values are written there,
    each Arrow chunk (row group) straight into its rows, and ``out`` is
    returned: one copy, where converting a column of several row groups to
    numpy and then into the matrix took two.
    """
    try:
        values = pc.cast(column, pa.float64(), safe=True)
    except pa.ArrowException as exc:
        raise DataError(f"{path}: column {name!r} of type {column.type} cannot be read as "
                        f"float64: {exc}") from None
    null = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
    if out is not None and null is None:
        start = 0
        for piece in values.chunks:
            stop = start + len(piece)
            out[start:stop] = piece.to_numpy(zero_copy_only=False)
            start = stop
        v = out
    else:
        v = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    if null is not None:
        v = np.where(null, 0.0, v)
    # A NaN or an infinity makes the sum non-finite: one pass without a
    # temporary for the usual clean column (a sum that overflows is checked
    # value by value below).
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.add.reduce(v))
    if null is None and math.isfinite(total):
        return v, None, None
    nonfinite = ~np.isfinite(v)
    if null is None and not nonfinite.any():
        return v, None, None
    bad = nonfinite if null is None else (nonfinite | null)
    parts = []
    n_null = 0 if null is None else int(null.sum())
    n_nan = int(np.isnan(v).sum())
    n_inf = int(nonfinite.sum()) - n_nan
    for count, what in ((n_null, "null"), (n_nan, "NaN"), (n_inf, "infinite")):
        if count:
            parts.append(f"{count} {what} value{'s' if count != 1 else ''}")
    first = int(row_ids[np.flatnonzero(bad)[0]])
    message = f"{path}: column {name!r} has {' and '.join(parts)}, first at row {first}"
    return v, bad, message


def pool_array(n: int, d: int | None = None) -> np.ndarray:
    """An uninitialised float64 array, (n,) or F-ordered (n, d), in pyarrow's memory pool.

    The pool (jemalloc or mimalloc) keeps the pages it has used, as it keeps
    those of the decoded columns, so the feature matrix of the next chunk is
    written to memory already mapped.  With glibc's malloc every chunk's
    matrix would be a fresh ``mmap`` whose pages fault in one by one: Dask's
    nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which keeps
    that so, and copying the 9 features of 4M rows into new numpy arrays then
    took 0.077 s of CPU against 0.018 s in the pool (``columns.pool_array``
    in ``benchmarks/README.md``).  The array holds the buffer, which goes back
    to the pool when the array is released.
    """
    size = n if d is None else n * d
    if size == 0:
        return np.empty(n if d is None else (n, d), order="F")
    buffer = pa.allocate_buffer(size * 8)
    flat = np.frombuffer(buffer, dtype=np.float64)
    return flat if d is None else flat.reshape((n, d), order="F")


def is_numeric(typ: pa.DataType) -> bool:
    return (pa.types.is_integer(typ) or pa.types.is_floating(typ)
            or pa.types.is_boolean(typ) or pa.types.is_decimal(typ))


def normalise_filters(filters):
    if filters is None:
        return None
    if isinstance(filters, str):
        filters = parse_filter(filters)
    if isinstance(filters, ds.Expression):
        raise TypeError("filters must be a list of (column, op, value) tuples (disjunctive "
                        "normal form), not a pyarrow Expression, so that it can be shown "
                        "and its columns read")
    filters = [list(map(tuple, f)) if isinstance(f, list) else tuple(f) for f in filters]
    if not filters:
        return None
    pq.filters_to_expression(filters)  # raises on a malformed filter
    return filters


def filter_columns(filters) -> list[str]:
    if not filters:
        return []
    terms = filters if isinstance(filters[0], tuple) else [t for f in filters for t in f]
    names: list[str] = []
    for term in terms:
        if term[0] not in names:
            names.append(str(term[0]))
    return names
