"""In-memory arrays with group labels, served in chunks that never split a group.

The rows are ordered by group (a stable sort, so rows keep their order
within a group) and chunks are cut at group boundaries, about ``chunk_rows``
rows each; a group larger than ``chunk_rows`` is one chunk of its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from streammix.core.chunk import Chunk
from streammix.data.arrays import DEFAULT_CHUNK_ROWS, ArraySource
from streammix.exceptions import DataError

__all__ = ["GroupedArraySource", "check_groups"]


def check_groups(groups, n: int) -> np.ndarray:
    """Group labels (n,) as integer codes; a null label is a :class:`DataError` naming its row."""
    labels = pd.Series(np.asarray(groups).ravel() if not isinstance(groups, pd.Series)
                       else groups.to_numpy())
    if labels.shape[0] != n:
        raise DataError(f"X has {n} rows but groups has {labels.shape[0]}")
    null = labels.isna().to_numpy()
    if null.any():
        raise DataError(f"groups holds a null group id at row {int(np.argmax(null))} "
                        f"({int(null.sum())} null in all): every row needs a group")
    return pd.factorize(labels, sort=True)[0].astype(np.int64)


class GroupedArraySource(ArraySource):
    """An :class:`ArraySource` whose chunks hold whole groups (``Chunk.groups``)."""

    def __init__(self, X, y, groups, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 feature_names=None):
        super().__init__(X, y, None, chunk_rows=chunk_rows, feature_names=feature_names)
        codes = check_groups(groups, self.X.shape[0])
        order = np.argsort(codes, kind="stable")
        self.X = np.asfortranarray(self.X[order])
        self.y, self.w = self.y[order], self.w[order]
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
        return Chunk(self.X[start:stop], self.y[start:stop], self.w[start:stop], "array", start,
                     groups=self.groups[start:stop])
