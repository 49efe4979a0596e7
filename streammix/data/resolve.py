"""What ``fit`` was given, made a source: the dispatcher above every kind of source."""

from __future__ import annotations

from streammix.data.arrays import DEFAULT_CHUNK_ROWS, ArraySource
from streammix.data.dask_collections import DaskSource, is_dask_collection
from streammix.exceptions import DataError

__all__ = ["as_source"]


def as_source(X, y=None, sample_weight=None, *, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """Turn what ``fit`` was given into a source.

    A source (anything with ``plan`` and ``read``) is returned unchanged;
    a Dask DataFrame or Array becomes a :class:`~streammix.DaskSource` (one
    chunk per partition; ``y`` and ``sample_weight`` then are dask
    collections partitioned like ``X``); a pandas DataFrame keeps its column
    names; arrays become an :class:`ArraySource`.
    """
    if hasattr(X, "plan") and hasattr(X, "read"):
        if y is not None or sample_weight is not None:
            raise ValueError(
                "y and sample_weight come from the source itself; pass only the source"
            )
        return X
    if is_dask_collection(X):
        if y is None:
            raise DataError("y is required with a Dask collection X (or pass "
                            "streammix.DaskSource(ddf, target=...))")
        return DaskSource(X, y, weight=sample_weight)
    names = None
    columns = getattr(X, "columns", None)
    if columns is not None:
        names = [str(c) for c in columns]
    return ArraySource(X, y, sample_weight, chunk_rows=chunk_rows, feature_names=names)
