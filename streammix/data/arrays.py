"""Data sources: a plan of small chunk descriptors and a reader for each.

A source is planned on the client (``plan()`` returns a sorted list of small,
picklable descriptors) and read where the work runs (``read(descriptor)``
returns a :class:`Chunk`).  Sources validate what they read, so a chunk that
reaches the E-step holds finite values and non-negative weights.
"""

from __future__ import annotations

import numpy as np

from streammix.core import kernel
from streammix.core.checks import check_finite, check_weights
from streammix.core.chunk import Chunk
from streammix.exceptions import DataError

__all__ = ["ArraySource", "as_2d_float", "DEFAULT_CHUNK_ROWS"]

#: Rows per chunk for in-memory arrays.
DEFAULT_CHUNK_ROWS = 65_536


class ArraySource:
    """In-memory arrays served in row chunks.

    Parameters
    ----------
    X : array-like of shape (n, d)
    y : array-like of shape (n,)
    sample_weight : array-like of shape (n,), optional
        Non-negative frequency weights (default 1).
    chunk_rows : int
        Rows per chunk.
    feature_names : list of str, optional
    concomitant : array-like of shape (n, q), optional
        Concomitant variables z of each row (the weights π(z) depend on
        them); each chunk carries its rows' block as ``Chunk.Z``.
    concomitant_names : list of str, optional
    """

    #: The arrays live in this process: a Dask engine reads chunks here and sends them.
    read_on_client = True
    #: Where it can be read: here only (see :func:`streammix.engines.resolve.resolve_engine`).
    readable_on = "client"

    def __init__(self, X, y, sample_weight=None, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 feature_names=None, concomitant=None, concomitant_names=None):
        X = as_2d_float(X, "X")
        if y is None:
            raise DataError("y is required when X is an array")
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"y must be 1-dimensional, got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise DataError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        if sample_weight is None:
            w = np.ones(X.shape[0])
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.ndim != 1 or w.shape[0] != X.shape[0]:
                raise DataError(
                    f"sample_weight must have shape ({X.shape[0]},), got {w.shape}"
                )
        X = _stored_features(X)
        _check_columns(X, feature_names)
        check_finite(y, "y")
        if sample_weight is not None:  # unit weights made here need no check
            check_weights(w)
        self.Z, self.concomitant_names = _concomitant_block(concomitant, concomitant_names,
                                                            X.shape[0])
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.X = X
        self.y, self.w = y, w
        self.chunk_rows = int(chunk_rows)
        #: Whether the columns have names (a table's); else they are x0, x1, ... by position.
        self.feature_names_given = feature_names is not None
        self.feature_names = (
            [f"x{k}" for k in range(X.shape[1])] if feature_names is None
            else [str(f) for f in feature_names]
        )
        if len(self.feature_names) != X.shape[1]:
            raise DataError(
                f"{len(self.feature_names)} feature names for {X.shape[1]} columns"
            )

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def plan(self) -> list[tuple[int, int]]:
        n = self.X.shape[0]
        return [(s, min(s + self.chunk_rows, n)) for s in range(0, n, self.chunk_rows)]

    def read(self, descriptor: tuple[int, int]) -> Chunk:
        start, stop = descriptor
        Z = None if self.Z is None else self.Z[start:stop]
        return Chunk(self.X[start:stop], self.y[start:stop], self.w[start:stop], "array", start,
                     Z=Z)

    @property
    def concomitant(self) -> list[str]:
        """Names of the concomitant variables (empty without them)."""
        return list(self.concomitant_names)


def _stored_features(X: np.ndarray) -> np.ndarray:
    """The features as the chunks serve them, copied only if the E-step needs it.

    The compiled kernels (E-step, information, see ``features_layout`` in
    ``core/_kernel.c``) read a C-ordered float64 X as it is, a block of rows
    at a time, to the same sums bit for bit as its F-ordered copy, so such an
    X is kept (a copy of 2M x 4 costs more than a pass).  Otherwise X is
    stored transposed once: the chunks are F-ordered (n, d) views whose .T is
    the contiguous (d, n) block the numpy E-step works on.  Every other
    consumer of a chunk copies its rows (the design matrix, the profile's
    moments and sample) or reads it by element, the same for either layout.
    """
    if X.flags.c_contiguous and X.flags.aligned and kernel.enabled():
        return X
    return np.asfortranarray(X)


def _check_columns(X: np.ndarray, feature_names) -> None:
    """Every value of X finite, else a :class:`DataError` naming the first bad column.

    One sum over the whole array finds a clean X (a NaN or an inf makes it
    non-finite); only then are the columns looked at one by one.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if X.size == 0 or np.isfinite(np.add.reduce(X, axis=None)):
            return
    for k in range(X.shape[1]):
        name = f"X column {k}" if feature_names is None else f"X column {feature_names[k]!r}"
        check_finite(X[:, k], name)


def _concomitant_block(Z, names, n: int):
    """Checked concomitant variables (n, q) and their names, or (None, [])."""
    if Z is None:
        return None, []
    Z = np.asfortranarray(as_2d_float(Z, "concomitant"))
    if Z.shape[0] != n:
        raise DataError(f"X has {n} rows but concomitant has {Z.shape[0]}")
    names = [f"z{k}" for k in range(Z.shape[1])] if names is None else [str(c) for c in names]
    if len(names) != Z.shape[1]:
        raise DataError(f"{len(names)} concomitant names for {Z.shape[1]} columns")
    for k, name in enumerate(names):
        check_finite(Z[:, k], f"concomitant column {name!r}")
    return Z, names


def as_2d_float(X, name: str, where: str = "") -> np.ndarray:
    """``X`` as a float64 (n, d) array (a 1-d array is one column).

    Errors are :class:`DataError` reading ``"{where}{name} must be ..."``.
    """
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}{name} must be numeric: {exc}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{where}{name} must be 2-dimensional, got shape {arr.shape}")
    return arr
