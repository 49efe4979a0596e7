"""Dask collections (DataFrames and Arrays) as a source: one chunk per partition.

The descriptors are partition indices.  On a :class:`~streammix.DaskEngine`
the partitions are computed on the workers as part of the pass's graph (the
engine asks :meth:`DaskSource.dask_inputs`), so no data goes through the
client; the in-process engine computes them one at a time here.
"""

from __future__ import annotations

import logging

import numpy as np

from streammix.core.checks import describe_bad_values
from streammix.core.chunk import Chunk
from streammix.exceptions import DataError

__all__ = ["DaskSource", "is_dask_collection", "frame_source"]

logger = logging.getLogger(__name__)


def is_dask_collection(obj) -> bool:
    """True for a Dask DataFrame, Series or Array (anything with a Dask graph).

    Checked without importing dask, so that fitting numpy arrays stays light.
    """
    return callable(getattr(type(obj), "__dask_graph__", None))


def frame_source(X, y=None, weight=None, target: str | None = None) -> DaskSource:
    """A :class:`DaskSource` of a Dask DataFrame ``X`` with its target and weights.

    With ``target`` (a column of ``X``), ``weight`` may name a column too.
    With ``y`` (a Series of the same frame as ``X``, e.g. ``ddf["y"]`` beside
    ``ddf[["x1", "x2"]]``), the target and any weight Series are joined to
    the features as columns of one frame, so every partition holds its own
    rows of all three whatever the partitioning (divisions need not be
    known).  A Dask Array ``X`` needs ``y`` as an Array chunked like it.
    """
    import dask.dataframe as dd

    if not isinstance(X, dd.DataFrame):
        return DaskSource(X, y, weight=weight)
    if target is not None:
        return DaskSource(X, target=target, weight=weight)
    frames = (dd.Series, dd.DataFrame)
    if not isinstance(y, frames) or not (weight is None or isinstance(weight, (str, *frames))):
        return DaskSource(X, y, weight=weight)  # dask Arrays: checked there
    features = [str(c) for c in X.columns if str(c) != weight]
    y_name = _free_name(y, features, "y")
    joined = {y_name: _as_series(y, "y")}
    w_name = weight
    if isinstance(weight, (dd.Series, dd.DataFrame)):
        w_name = _free_name(weight, features + [y_name], "weight")
        joined[w_name] = _as_series(weight, "sample_weight")
    try:
        frame = X.assign(**joined)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise DataError(f"y cannot be joined to the features row by row ({exc}); take both "
                        'from one frame (ddf[["x1", "x2"]], ddf["y"]) or pass the frame with '
                        "target=") from None
    return DaskSource(frame, target=y_name, features=features, weight=w_name)


def _as_series(values, what: str):
    import dask.dataframe as dd

    if isinstance(values, dd.DataFrame):
        if len(values.columns) != 1:
            raise DataError(f"{what} must be one column, got {len(values.columns)}")
        values = values[values.columns[0]]
    return values


def _free_name(values, taken: list[str], default: str) -> str:
    name = getattr(values, "name", None)
    if hasattr(values, "columns") and len(values.columns) == 1:
        name = values.columns[0]
    name = default if name is None else str(name)
    while name in taken:
        name = f"_{name}"
    return name


def _pack(X, y, w):
    return X, y, w


def _split_frame(part, features, target, weight_column, weight):
    w = part[weight_column] if weight_column is not None else weight
    return part[features], part[target], w


class DaskSource:
    """Rows of a Dask DataFrame or Array, one chunk per partition.

    Parameters
    ----------
    data : dask.dataframe.DataFrame or dask.array.Array
        The features, or (with ``target``) a DataFrame holding every column.
    y : dask Series or Array, optional
        The target, partitioned like ``data`` (a dask Array is re-chunked to
        the rows of ``data``).  Give either ``y`` or ``target``.
    target : str, optional
        Column of ``data`` holding the target.
    features : list of str, optional
        Feature columns of a DataFrame (default: every column but the target
        and weight), or names for the columns of an Array.
    weight : str, dask Series or Array, optional
        Non-negative frequency weights: a column of ``data`` or a collection
        partitioned like it.

    Notes
    -----
    Rows of an Array with known chunk sizes are identified like those of an
    in-memory array (origin ``"array"``, global row index), so the starting
    sample equals that of :class:`~streammix.ArraySource` on the same data.
    DataFrame partitions have no known lengths; their rows are identified by
    partition and row within it (origin ``"partition <i>"``), which needs no
    extra pass but ties the sample to the partitioning.
    """

    def __init__(self, data, y=None, *, target=None, features=None, weight=None):
        import dask.array as da
        import dask.dataframe as dd

        if (y is None) == (target is None):
            raise ValueError("give the target either as y (a dask collection) or as target "
                             "(a column of data), not both or neither")
        self._offsets = None
        self._split = None
        if isinstance(data, dd.DataFrame):
            self._init_frame(data, y, target, features, weight)
        elif isinstance(data, da.Array):
            if target is not None or isinstance(weight, str):
                raise ValueError("target and weight column names need a DataFrame; with a "
                                 "dask Array give y= and weight= as arrays")
            self._init_array(data, y, features, weight)
        else:
            raise TypeError(f"DaskSource needs a dask DataFrame or Array, got "
                            f"{type(data).__name__}")
        self.n_partitions = len(self._x_parts)

    # ----------------------------------------------------------- construction
    def _init_frame(self, ddf, y, target, features, weight):
        columns = [str(c) for c in ddf.columns]
        skip = {target} | ({weight} if isinstance(weight, str) else set())
        features = [c for c in columns if c not in skip] if features is None else list(features)
        for name in features + [c for c in (target, weight) if isinstance(c, str)]:
            if name not in columns:
                raise DataError(f"the DataFrame has no column {name!r} (it has "
                                f"{', '.join(columns)})")
        if target is not None and target in features:
            raise ValueError("target must not be among the features")
        for name in features + [c for c in (target, weight) if isinstance(c, str)]:
            dtype = ddf[name].dtype
            if not (np.issubdtype(np.dtype(getattr(dtype, "numpy_dtype", dtype)), np.number)
                    or np.dtype(getattr(dtype, "numpy_dtype", dtype)) == np.bool_):
                raise DataError(f"column {name!r} has dtype {dtype}, which cannot be read "
                                "as float64 (need a numeric type)")
        self.feature_names = list(features)
        self.feature_names_given = True
        if target is not None:
            # One collection for all columns: selecting columns apart lets Dask plan
            # each selection's partitions apart (it fuses small reads), and rows of
            # features and target would no longer match.
            columns = features + [target] + ([weight] if isinstance(weight, str) else [])
            self._x_parts = ddf[columns].to_delayed()
            n = len(self._x_parts)
            self._split = (features, target, weight if isinstance(weight, str) else None)
            self._y_parts = [None] * n
            self._w_parts = [None] * n
            if weight is not None and not isinstance(weight, str):
                self._w_parts = self._aligned(weight, ddf, "weight")
        else:
            self._x_parts = ddf[features].to_delayed()
            n = len(self._x_parts)
            self._y_parts = self._aligned(y, ddf, "y")
            self._w_parts = self._aligned(weight, ddf, "weight") if weight is not None \
                else [None] * n
        self._names = (target if target is not None else "y",
                       weight if isinstance(weight, str) else "weight")

    @staticmethod
    def _aligned(values, ddf, what):
        import dask.array as da
        import dask.dataframe as dd

        if isinstance(values, (dd.Series, dd.DataFrame)):
            if values.npartitions != ddf.npartitions:
                raise DataError(f"{what} has {values.npartitions} partitions but the "
                                f"features have {ddf.npartitions}")
            return values.to_delayed()
        if isinstance(values, da.Array):
            if values.numblocks[0] != ddf.npartitions:
                raise DataError(f"{what} has {values.numblocks[0]} row blocks but the "
                                f"features have {ddf.npartitions} partitions")
            return list(values.to_delayed().ravel())
        raise TypeError(f"{what} must be a dask Series or Array partitioned like the "
                        f"features, got {type(values).__name__}")

    def _init_array(self, X, y, features, weight):
        import dask.array as da

        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise DataError(f"X must be 2-dimensional, got {X.ndim} dimensions")
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
            raise DataError(f"X has dtype {X.dtype}, which cannot be read as float64")
        X = X.rechunk({1: -1})
        rows = X.chunks[0]
        d = X.shape[1]
        self.feature_names = ([f"x{k}" for k in range(d)] if features is None
                              else [str(f) for f in features])
        self.feature_names_given = features is not None
        if len(self.feature_names) != d:
            raise DataError(f"{len(self.feature_names)} feature names for {d} columns")

        def rows_like(values, what):
            values = values.to_dask_array(lengths=True) if hasattr(values, "to_dask_array") \
                else values
            if not isinstance(values, da.Array):
                raise TypeError(f"{what} must be a dask Array, got {type(values).__name__}")
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            if values.ndim != 1 or values.shape[0] != X.shape[0]:
                raise DataError(f"X has {X.shape[0]} rows but {what} has shape {values.shape}")
            return list(values.rechunk((rows,)).to_delayed().ravel())

        self._x_parts = list(X.to_delayed().ravel())
        self._y_parts = rows_like(y, "y")
        self._w_parts = rows_like(weight, "weight") if weight is not None \
            else [None] * len(self._x_parts)
        if not any(np.isnan(r) for r in rows):
            self._offsets = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(int).tolist()
        self._names = ("y", "weight")

    # ------------------------------------------------------------ source API
    #: The graph computes its partitions wherever the cluster runs it (the ambient
    #: client's workers, see :func:`streammix.engines.resolve.resolve_engine`).
    readable_on = "any host"

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def plan(self) -> list[int]:
        """Partition indices."""
        return list(range(self.n_partitions))

    def dask_inputs(self, plan: list[int]) -> list:
        """One Delayed per descriptor: the partition's (X, y, w) before conversion."""
        from dask import delayed
        if self._split is not None:
            return [delayed(_split_frame, pure=True)(self._x_parts[i], *self._split,
                                                     self._w_parts[i]) for i in plan]
        return [delayed(_pack, pure=True)(self._x_parts[i], self._y_parts[i], self._w_parts[i])
                for i in plan]

    def read(self, descriptor: int) -> Chunk:
        """Compute one partition here and convert it."""
        import dask
        (value,) = dask.compute(self.dask_inputs([descriptor])[0])
        return self.read_input(descriptor, value)

    def read_input(self, descriptor: int, value) -> Chunk:
        """Convert a computed partition ``(X, y, w)`` to a validated chunk."""
        Xp, yp, wp = value
        i = int(descriptor)
        if self._offsets is None:
            origin, first, where = f"partition {i}", 0, f"partition {i}: "
        else:
            origin, first, where = "array", self._offsets[i], ""
        X = _as_float(Xp, f"{where}X")
        if X.ndim == 1:
            X = X[:, None]
        y = _as_float(yp, f"{where}{self._names[0]}").reshape(-1)
        w = np.ones(y.shape[0]) if wp is None else _as_float(wp, where + self._names[1]) \
            .reshape(-1)
        if not (X.shape[0] == y.shape[0] == w.shape[0]):
            raise DataError(f"{where}features, target and weight have {X.shape[0]}, "
                            f"{y.shape[0]} and {w.shape[0]} rows; partition them alike")
        for k, name in enumerate(self.feature_names):
            _check(X[:, k], f"column {name!r}", first, where)
        _check(y, f"column {self._names[0]!r}", first, where)
        _check(w, f"column {self._names[1]!r}", first, where)
        neg = np.flatnonzero(w < 0)
        if neg.size:
            raise DataError(f"{where}column {self._names[1]!r} has {neg.size} negative "
                            f"values, first at row {first + int(neg[0])}; weights must be >= 0")
        return Chunk(X, y, w, origin, first)

    def __getstate__(self) -> dict:
        # Tasks only convert partitions: the graphs stay on the client.
        state = dict(self.__dict__)
        for name in ("_x_parts", "_y_parts", "_w_parts"):
            state[name] = None
        return state

    def __repr__(self) -> str:
        return (f"DaskSource({self.n_partitions} partitions, features={self.feature_names!r}, "
                f"target={self._names[0]!r})")


def _as_float(values, name: str) -> np.ndarray:
    to_numpy = getattr(values, "to_numpy", None)
    try:
        if to_numpy is not None:
            return to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} cannot be read as float64: {exc}") from None


def _check(values: np.ndarray, name: str, first: int, where: str) -> None:
    message = describe_bad_values(values, name, first)
    if message is not None:
        raise DataError(where + message.replace(" NaN value", " NaN or null value"))
