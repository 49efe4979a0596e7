"""Grouped lakes: ``ParquetSource(..., groups="id")`` for fits with grouped classes.

Every row of a group must be in one map task (flexmix's ``y ~ x | id``).
:meth:`GroupingMixin.grouped_view` runs the locating pass on an engine (only
the group column and the filter columns are read), merges chunks that share
a group (:func:`~streammix.data.parquet.group_plan.merge_pieces`) and returns
a :class:`GroupedView`: a source whose descriptors are these merged tasks
and whose chunks carry the group ids (``Chunk.groups``).  Group ids are
integers, floats or strings (dictionary-encoded too); a null id is a
:class:`~streammix.DataError` naming the file, the column and the row.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streammix.core.chunk import Chunk
from streammix.data.grouped_arrays import check_constant_in_groups
from streammix.data.parquet.group_plan import (
    GroupedPiece,
    GroupLocations,
    merge_pieces,
    piece_key,
)
from streammix.exceptions import DataError

__all__ = ["GroupingMixin", "GroupedView", "GroupsView", "group_labels"]

logger = logging.getLogger(__name__)

#: Default bound of a merged task, in multiples of ``chunk_rows``.
TASK_ROWS_FACTOR = 8


def group_labels(column, name: str, row_ids: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """The group ids of a chunk as numpy (int64, float64 or str objects) and their kind.

    A null (or NaN) id raises a :class:`~streammix.DataError` naming ``where``
    (the file), the column ``name`` and the row.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    typ = column.type
    nulls = column.is_null(nan_is_null=True) if pa.types.is_floating(typ) else column.is_null()
    n_null = pc.sum(nulls).as_py() or 0
    if n_null:
        first = int(np.flatnonzero(nulls.to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where}: column {name!r} has {n_null} null group "
                        f"id{'s' if n_null != 1 else ''}, first at row {int(row_ids[first])}: "
                        "every row needs a group")
    if pa.types.is_integer(typ) or pa.types.is_boolean(typ):
        return column.to_numpy(zero_copy_only=False).astype(np.int64), "number"
    if pa.types.is_floating(typ):
        return column.to_numpy(zero_copy_only=False).astype(np.float64), "number"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) \
            or pa.types.is_string_view(typ):
        return column.to_numpy(zero_copy_only=False).astype(object), "string"
    raise DataError(f"{where}: group column {name!r} has type {typ}; group ids must be "
                    "integers or strings")


class GroupingMixin:
    """The grouped side of :class:`~streammix.ParquetSource` (its ``groups`` column)."""

    @property
    def task_row_bound(self) -> int:
        """The largest merged task, in rows (``max_task_rows``, or 8 × ``chunk_rows``)."""
        if self.max_task_rows is not None:
            return self.max_task_rows
        return TASK_ROWS_FACTOR * self.chunk_rows

    def locate_groups(self, engine=None) -> GroupLocations:
        """The locating pass: the distinct group ids of every chunk, on ``engine``."""
        if self.groups is None:
            raise ValueError("this source has no group column (ParquetSource(..., groups=...))")
        from streammix.engines.inprocess import InProcessEngine
        engine = InProcessEngine() if engine is None else engine
        return engine.map_reduce(GroupsView(self), _identity, GroupLocations())

    def grouped_view(self, engine=None) -> GroupedView:
        """The source as map tasks of whole groups (runs :meth:`locate_groups`)."""
        locations = self.locate_groups(engine)
        tasks = merge_pieces(self.plan(), locations, self.task_row_bound, self.groups,
                             self.shown)
        logger.info("groups of column %r: %d chunks merged into %d tasks", self.groups,
                    len(self.plan()), len(tasks))
        ids = [np.asarray(v) for v in locations.ids.values()]
        n_groups = int(pd.unique(np.concatenate(ids)).size) if ids else 0
        return GroupedView(self, tasks, n_groups)

    def _chunk_groups(self, piece, table, row_ids) -> np.ndarray | None:
        """The group ids of a chunk's rows (None without a group column)."""
        if self.groups is None:
            return None
        return group_labels(table.column(self.groups), self.groups, row_ids,
                            self.shown(piece.path))[0]


class GroupsView:
    """A source seen through :meth:`GroupingMixin.locate_groups`: chunks read as the
    :class:`GroupLocations` of their rows (only the group and filter columns)."""

    def __init__(self, source):
        self.source = source

    def plan(self):
        return self.source.plan()

    def read(self, piece) -> GroupLocations:
        source = self.source
        columns = [source.groups] + [c for c in source.filter_column_names()
                                     if c != source.groups]
        table = source._read_table(piece, columns)
        row_ids = np.arange(piece.first_row, piece.first_row + table.num_rows, dtype=np.int64)
        if source._expr is not None and table.num_rows:
            table = table.append_column("__streammix_row__", pa.array(row_ids))
            table = table.filter(source._expr)
            row_ids = table.column("__streammix_row__").to_numpy()
        labels, kind = group_labels(table.column(source.groups), source.groups, row_ids,
                                    source.shown(piece.path))
        return GroupLocations({piece_key(piece): np.unique(labels)}, {kind: piece.path})

    def __repr__(self) -> str:
        return f"GroupsView({self.source!r})"


class GroupedView:
    """A grouped :class:`~streammix.ParquetSource` as map tasks of whole groups.

    ``plan()`` gives :class:`~streammix.data.parquet.group_plan.GroupedPiece`
    descriptors; ``read`` reads their chunks and joins them into one
    :class:`~streammix.core.chunk.Chunk` whose ``groups`` holds the ids.  The
    rows keep no file identity (a task may span files): use the source itself
    for the profile pass.
    """

    def __init__(self, source, tasks: list[GroupedPiece], n_groups: int = 0):
        self.source = source
        self._tasks = list(tasks)
        #: The number of distinct groups (found by the locating pass).
        self.n_groups = int(n_groups)

    def plan(self) -> list[GroupedPiece]:
        return list(self._tasks)

    def read(self, task: GroupedPiece) -> Chunk:
        """The rows of a task; ``groups`` holds integer codes of the ids (hashed once
        here, so the E-step sorts integers, not strings).  The weight and the
        concomitant columns must be the same on every row of a group: a
        :class:`~streammix.DataError` names the file, the column and the group."""
        parts = self._parts(task)
        chunk = _joined(parts)
        codes, labels = pd.factorize(chunk.groups)
        source = self.source
        if source.weight is not None or chunk.Z is not None:
            ends = np.cumsum([part.n_rows for part in parts])

            def where(row: int) -> str:
                piece = task.pieces[int(np.searchsorted(ends, row, side="right"))]
                return f"{self.shown(piece.path)}: column "

            if source.weight is not None:
                check_constant_in_groups(codes, chunk.w, source.weight, labels, where)
            if chunk.Z is not None:
                check_constant_in_groups(codes, chunk.Z, source.concomitant_names, labels,
                                         where)
        return dataclasses.replace(chunk, groups=codes)

    def read_with_ids(self, task: GroupedPiece) -> Chunk:
        """The rows of a task with the group ids as stored."""
        return _joined(self._parts(task))

    def _parts(self, task: GroupedPiece) -> list[Chunk]:
        """The chunks of a task, each with only the rows it keeps."""
        chunks = [self.source.read(piece) for piece in task.pieces]
        if task.keep is not None:
            chunks = [_kept(chunk, mode, ids) for chunk, (mode, ids)
                      in zip(chunks, task.keep, strict=True)]
        return chunks

    @property
    def readable_on(self) -> str:
        return self.source.readable_on

    def shown(self, path: str) -> str:
        return self.source.shown(path)

    @property
    def n_features(self) -> int:
        return self.source.n_features

    def __getstate__(self) -> dict:
        return {"source": self.source, "_tasks": [],  # the plan stays on the client
                "n_groups": self.n_groups}

    def __repr__(self) -> str:
        return f"GroupedView({self.source!r}, {len(self._tasks)} tasks)"


def _joined(chunks: list[Chunk]) -> Chunk:
    """One chunk of the rows of ``chunks``, in order."""
    if len(chunks) == 1:
        return chunks[0]
    first = chunks[0]
    return Chunk(np.asfortranarray(np.concatenate([c.X for c in chunks])),
                 np.concatenate([c.y for c in chunks]),
                 np.concatenate([c.w for c in chunks]), first.origin, first.first_row,
                 np.concatenate([_row_ids(c) for c in chunks]),
                 None if first.Z is None else np.concatenate([c.Z for c in chunks]),
                 np.concatenate([c.groups for c in chunks]))


def _kept(chunk: Chunk, mode: str, ids: np.ndarray) -> Chunk:
    """The rows of ``chunk`` whose group is in ``ids`` (``"only"``) or not (``"drop"``)."""
    inside = pd.Index(ids).get_indexer(chunk.groups) >= 0
    keep = inside if mode == "only" else ~inside
    if keep.all():
        return chunk
    return Chunk(np.asfortranarray(chunk.X[keep]), chunk.y[keep], chunk.w[keep], chunk.origin,
                 chunk.first_row, _row_ids(chunk)[keep],
                 None if chunk.Z is None else chunk.Z[keep], chunk.groups[keep])


def _row_ids(chunk: Chunk) -> np.ndarray:
    if chunk.row_ids is not None:
        return chunk.row_ids
    return np.arange(chunk.first_row, chunk.first_row + chunk.n_rows, dtype=np.int64)


def _identity(value):
    return value
