"""In-memory arrays with group labels, served in chunks that never split a group.

The rows are ordered by group (a stable sort, so rows keep their order
within a group) and chunks are cut at group boundaries, about ``chunk_rows``
rows each; a group larger than ``chunk_rows`` is one chunk of its own.
Sample weights and concomitant variables belong to a group, as in flexmix:
each must be the same on every row of a group (:func:`check_constant_in_groups`
names the first group where one is not).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from streammix.core.chunk import Chunk
from streammix.data.arrays import DEFAULT_CHUNK_ROWS, ArraySource
from streammix.exceptions import DataError

__all__ = ["GroupedArraySource", "check_groups", "check_constant_in_groups"]


def check_groups(groups, n: int) -> np.ndarray:
    """Group labels (n,) as integer codes; a null label is a :class:`DataError` naming its row."""
    return _factorized(groups, n)[0]


def _factorized(groups, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = pd.Series(np.asarray(groups).ravel() if not isinstance(groups, pd.Series)
                       else groups.to_numpy())
    if labels.shape[0] != n:
        raise DataError(f"X has {n} rows but groups has {labels.shape[0]}")
    null = labels.isna().to_numpy()
    if null.any():
        raise DataError(f"groups holds a null group id at row {int(np.argmax(null))} "
                        f"({int(null.sum())} null in all): every row needs a group")
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


def check_constant_in_groups(codes: np.ndarray, values: np.ndarray, names, labels,
                             where="") -> None:
    """Refuse ``values`` (n,) or (n, k) that differ between rows of one group.

    ``codes`` (n,) number the rows' groups, ``labels[code]`` is the group's id
    as given, ``names`` the column name(s) of ``values``; ``where`` prefixes the
    message (a string, or a function of the offending row giving one).  The
    :class:`DataError` names the first group (in row order) and its column.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values, names = values[:, None], [names]
    if not values.size:
        return
    n_groups = int(codes.max()) + 1
    first = np.full(n_groups, codes.size, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(codes.size))
    differs = values != values[first[codes]]
    if not differs.any():
        return
    row = int(np.argmax(differs.any(axis=1)))
    col = int(np.argmax(differs[row]))
    group = labels[codes[row]]
    group = group.item() if isinstance(group, np.generic) else group
    prefix = where(row) if callable(where) else where
    raise DataError(f"{prefix}{names[col]!r} varies within group {group!r} "
                    f"({float(values[first[codes[row]], col])!r} and "
                    f"{float(values[row, col])!r}): it must be the same on every row of a "
                    "group (it belongs to the group, as in flexmix)")


class GroupedArraySource(ArraySource):
    """An :class:`ArraySource` whose chunks hold whole groups (``Chunk.groups``)."""

    def __init__(self, X, y, groups, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 feature_names=None, sample_weight=None, concomitant=None,
                 concomitant_names=None):
        super().__init__(X, y, sample_weight, chunk_rows=chunk_rows,
                         feature_names=feature_names, concomitant=concomitant,
                         concomitant_names=concomitant_names)
        codes, labels = _factorized(groups, self.X.shape[0])
        if sample_weight is not None:
            check_constant_in_groups(codes, self.w, "sample_weight", labels)
        if self.Z is not None:
            check_constant_in_groups(codes, self.Z, self.concomitant_names, labels,
                                     "concomitant variable ")
        order = np.argsort(codes, kind="stable")
        self.X = np.asfortranarray(self.X[order])
        self.y, self.w = self.y[order], self.w[order]
        if self.Z is not None:
            self.Z = self.Z[order]
        self.groups = codes[order]
        #: Row positions in the caller's order of the rows as served.
        self.order = order
        self.n_groups = int(codes.max()) + 1 if codes.size else 0

    def plan(self) -> list[tuple[int, int]]:
        starts = np.flatnonzero(np.r_[True, np.diff(self.groups) != 0])
        bounds, begin = [], 0
        for s in starts[1:]:
            if s - begin >= self.chunk_rows:
                bounds.append((begin, int(s)))
                begin = int(s)
        n = self.X.shape[0]
        if n > begin:
            bounds.append((begin, n))
        return bounds

    def read(self, descriptor: tuple[int, int]) -> Chunk:
        start, stop = descriptor
        Z = None if self.Z is None else self.Z[start:stop]
        return Chunk(self.X[start:stop], self.y[start:stop], self.w[start:stop], "array", start,
                     Z=Z, groups=self.groups[start:stop])
