"""What ``fit`` was given, made a source: the dispatcher above every kind of source."""

from __future__ import annotations

from streammix.data.arrays import DEFAULT_CHUNK_ROWS, ArraySource
from streammix.data.dask_collections import frame_source, is_dask_collection
from streammix.data.frames import frame_matrix, frame_names, is_frame, split_frame
from streammix.exceptions import DataError

__all__ = ["as_source", "is_source"]


def is_source(obj) -> bool:
    """True for a source (anything with ``plan`` and ``read``)."""
    return hasattr(obj, "plan") and hasattr(obj, "read")


def as_source(X, y=None, sample_weight=None, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
              target: str | None = None):
    """Turn what ``fit`` was given into a source.

    A source (anything with ``plan`` and ``read``) is returned unchanged.  A
    Dask DataFrame becomes a :class:`~streammix.DaskSource` (one chunk per
    partition): with ``target``, a frame holding the target column (and a
    ``sample_weight`` column named by a string); with ``y``, a Series taken
    from the same frame as ``X`` (e.g. ``ddf[["x1", "x2"]]`` and
    ``ddf["y"]``), which is joined to ``X`` partition by partition, so any
    partitioning works (``dd.read_parquet``, ``dd.read_csv``).  A Dask Array
    needs ``y`` chunked like it.  A pandas or polars DataFrame or a pyarrow
    Table keeps its column names (with ``target``, it holds the target
    too); arrays become an :class:`ArraySource` with columns by position.
    """
    if is_source(X):
        if y is not None or sample_weight is not None or target is not None:
            raise ValueError(
                "y, sample_weight and target come from the source itself; pass only the source"
            )
        return X
    if target is not None and y is not None:
        raise ValueError("give the target either as y or as target= (a column name), not both")
    if is_dask_collection(X):
        if y is None and target is None:
            raise DataError("a Dask collection X needs y (a Series of the same frame) or "
                            "target= (the name of its target column)")
        return frame_source(X, y, sample_weight, target)
    if target is not None:
        if not is_frame(X):
            raise ValueError("target= names a column of a table (a pandas or polars DataFrame "
                             f"or a pyarrow Table), not of {type(X).__name__}")
        Xa, ya, wa, names = split_frame(X, target, sample_weight)
        return ArraySource(Xa, ya, wa, chunk_rows=chunk_rows, feature_names=names)
    names = frame_names(X)
    if names is not None:
        X = frame_matrix(X, names)
    return ArraySource(X, y, sample_weight, chunk_rows=chunk_rows, feature_names=names)
