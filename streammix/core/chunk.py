"""The unit of work of a pass: one chunk of rows, as every source reads it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Chunk"]


@dataclass(frozen=True)
class Chunk:
    """One chunk of rows: raw features (no intercept column), target, weights.

    ``origin`` names where the rows come from (a file path, or ``"array"``)
    and ``first_row`` is the index of the chunk's first row within it, so
    every row has a stable identity whatever the chunking.  When a source
    removed rows (a filter, or ``on_invalid="drop"``) the rows left are not
    consecutive: ``row_ids`` then holds the index of each row within
    ``origin`` (None means ``first_row, first_row + 1, ...``).  ``Z`` holds
    the rows' concomitant variables (n, q) when the source has them, ``groups``
    the rows' group labels (n,) of a grouped fit (every group whole in the chunk).
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    origin: str
    first_row: int
    row_ids: np.ndarray | None = None
    Z: np.ndarray | None = None
    groups: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])
