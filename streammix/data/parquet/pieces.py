"""What a Parquet source plans and counts: chunk descriptors and invalid-row counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["ParquetPiece", "InvalidRows"]


class ParquetPiece(NamedTuple):
    """Descriptor of one chunk: consecutive row groups of one file.

    Attributes
    ----------
    path : str
        The file, as its file system names it.
    row_groups : tuple of int
        Ids of consecutive row groups.
    first_row : int
        Index in the file of the first row of the first row group.
    n_rows : int
        Rows in these row groups (before filters).
    partition : tuple of (name, value)
        Hive partition values of the file.
    stamp : FileStamp or None
        The file's size, modification time and footer hash when it was
        planned (:mod:`streammix.data.parquet.stamps`); the task that reads
        the chunk checks the file against it.  None: not checked.

    Notes
    -----
    The ``repr`` leaves the stamp out: it names the chunk (checkpoints hash
    the plan's ``repr``, and store each file's size and time on their own).
    """

    path: str
    row_groups: tuple[int, ...]
    first_row: int
    n_rows: int
    partition: tuple[tuple[str, Any], ...] = ()
    stamp: Any = None

    def __repr__(self) -> str:
        return (f"ParquetPiece(path={self.path!r}, row_groups={self.row_groups!r}, "
                f"first_row={self.first_row!r}, n_rows={self.n_rows!r}, "
                f"partition={self.partition!r})")


@dataclass(frozen=True)
class InvalidRows:
    """Mergeable count of rows with null, NaN or infinite values.

    ``+`` adds counts, ``InvalidRows()`` is its identity, so it can be
    reduced by any engine like the E-step statistics.

    Attributes
    ----------
    n_rows : int
        Rows with at least one invalid value (the rows ``on_invalid="drop"``
        drops).
    by_column : dict
        Column name -> number of invalid values in it.
    by_file : dict
        File path -> number of invalid rows in it.
    """

    n_rows: int = 0
    by_column: dict = field(default_factory=dict)
    by_file: dict = field(default_factory=dict)

    def __add__(self, other: InvalidRows) -> InvalidRows:
        if not isinstance(other, InvalidRows):
            return NotImplemented
        return InvalidRows(self.n_rows + other.n_rows,
                           _add_counts(self.by_column, other.by_column),
                           _add_counts(self.by_file, other.by_file))


def _add_counts(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out
