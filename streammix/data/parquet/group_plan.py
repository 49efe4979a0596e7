"""Where the groups of a grouped lake live, and the map tasks that keep every group whole.

A fit with grouped classes needs all rows of a group in one map task.  The
locating pass reads only the group column of every chunk (after filters)
and returns, per chunk, the distinct group ids it holds
(:class:`GroupLocations`, summed over the lake like any statistic).
:func:`merge_pieces` then joins chunks that share a group: chunks are the
nodes of a graph whose edges are shared groups, and each connected
component (found by union-find) of at most ``max_task_rows`` rows is one map
task, a :class:`GroupedPiece`, that reads its chunks once.

A larger component is split by *home chunk*: a lake stored by group but cut
into row groups anywhere chains every chunk to the next one, so its
component is the whole lake.  Each group's home is the first chunk (in plan
order) holding it; the task of a home chunk reads it and the chunks its
groups spill into, and keeps only the rows of the groups at home there.  A
boundary chunk is then read twice (by its own task and by the one before),
but every group is whole in one task and every row counted once.  A task
still above ``max_task_rows`` is refused with a :class:`~streammix.DataError`
naming the group that spans the most chunks and its files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from streammix.data.parquet.pieces import ParquetPiece
from streammix.exceptions import DataError

__all__ = ["GroupLocations", "GroupedPiece", "merge_pieces", "piece_key"]


def piece_key(piece: ParquetPiece) -> tuple:
    """The identity of a chunk in the locations: its file and row groups."""
    return (piece.path, tuple(piece.row_groups))


@dataclass(frozen=True)
class GroupLocations:
    """Mergeable map chunk -> distinct group ids in it (``+`` unites, ``GroupLocations()``
    is the identity).

    Attributes
    ----------
    ids : dict
        :func:`piece_key` -> ndarray of the distinct group ids of the chunk.
    kinds : dict
        ``"number"`` or ``"string"`` -> the first file whose ids are of that kind
        (ids of both kinds in one lake cannot be matched and are refused).
    """

    ids: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)

    def __add__(self, other: GroupLocations) -> GroupLocations:
        if not isinstance(other, GroupLocations):
            return NotImplemented
        kinds = dict(self.kinds)
        for kind, path in other.kinds.items():
            kinds.setdefault(kind, path)
        return GroupLocations({**self.ids, **other.ids}, kinds)


class GroupedPiece(NamedTuple):
    """One map task of a grouped fit: chunks that together hold whole groups.

    Attributes
    ----------
    pieces : tuple of ParquetPiece
        The chunks: the home chunk first, then the others in plan order.
    n_rows : int
        Rows in them (before filters).
    keep : tuple or None
        None: every row of the chunks.  Otherwise one ``(mode, ids)`` per
        chunk: ``("drop", ids)`` keeps the rows whose group is not in ``ids``
        (the home chunk, without the groups at home earlier), ``("only",
        ids)`` the rows whose group is in ``ids`` (the groups at home in the
        first chunk).
    """

    pieces: tuple
    n_rows: int
    keep: tuple | None = None

    def __repr__(self) -> str:
        kept = "" if self.keep is None else \
            f", keep={[(mode, len(ids)) for mode, ids in self.keep]!r}"
        return f"GroupedPiece(pieces={list(self.pieces)!r}, n_rows={self.n_rows!r}{kept})"


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def merge_pieces(plan: list[ParquetPiece], locations: GroupLocations, max_task_rows: int,
                 column: str, shown=str) -> list[GroupedPiece]:
    """Map tasks of whole groups: the chunks of ``plan`` joined by shared group ids.

    Parameters
    ----------
    plan : list of ParquetPiece
        The chunks of the lake, in plan order.
    locations : GroupLocations
        The group ids of each chunk (from the locating pass).
    max_task_rows : int
        The largest number of rows a task of several chunks may hold (before
        filters); a single chunk is a task whatever its size.
    column : str
        The group column (for messages).
    shown : callable
        A file path as users wrote it (for messages).

    Raises
    ------
    DataError
        When the ids are of two kinds (numbers in some files, strings in
        others), or chunks tied by shared groups hold more than
        ``max_task_rows`` rows.
    """
    if len(locations.kinds) > 1:
        raise DataError(f"group column {column!r} holds numbers in "
                        f"{shown(locations.kinds['number'])} but strings in "
                        f"{shown(locations.kinds['string'])}: give every file the same type")
    labels, owners = [], []
    for i, piece in enumerate(plan):
        ids = locations.ids.get(piece_key(piece))
        if ids is not None and len(ids):
            labels.append(ids)
            owners.append(np.full(len(ids), i))
    parent = list(range(len(plan)))
    if labels:
        codes = pd.factorize(np.concatenate(labels))[0]
        owner = np.concatenate(owners)
        order = np.lexsort((owner, codes))
        codes, owner = codes[order], owner[order]
        same = np.flatnonzero(codes[1:] == codes[:-1])  # consecutive chunks of one group
        for a, b in zip(owner[same].tolist(), owner[same + 1].tolist(), strict=True):
            ra, rb = _find(parent, a), _find(parent, b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for i in range(len(plan)):
        members.setdefault(_find(parent, i), []).append(i)
    tasks = []
    for root in sorted(members):
        chosen = [plan[i] for i in members[root]]
        n_rows = sum(p.n_rows for p in chosen)
        if n_rows <= max_task_rows or len(chosen) == 1:  # a lone chunk is a task as ever
            tasks.append(GroupedPiece(tuple(chosen), n_rows))
        else:
            tasks.extend(_home_tasks(chosen, locations, max_task_rows, column, shown))
    return tasks


def _home_tasks(chosen, locations, max_task_rows, column, shown) -> list[GroupedPiece]:
    """Tasks of home chunks for one connected component too large to read at once."""
    ids = [locations.ids.get(piece_key(p), np.zeros(0)) for p in chosen]
    home: dict = {}
    for i, labels in enumerate(ids):
        for gid in labels.tolist():
            home.setdefault(gid, i)
    tasks = []
    for i, piece in enumerate(chosen):
        at_home = [g for g in ids[i].tolist() if home[g] == i]
        if not at_home:
            continue  # every group of this chunk is read by an earlier task
        mine = set(at_home)
        others = [(j, [g for g in ids[j].tolist() if g in mine])
                  for j in range(i + 1, len(chosen))]
        others = [(j, kept) for j, kept in others if kept]
        pieces = [piece] + [chosen[j] for j, _ in others]
        n_rows = sum(p.n_rows for p in pieces)
        if n_rows > max_task_rows and len(pieces) > 1:
            raise _too_spread(pieces, locations, n_rows, max_task_rows, column, shown)
        foreign = np.array([g for g in ids[i].tolist() if home[g] != i], dtype=ids[i].dtype)
        keep = (("drop", foreign),) + tuple(("only", np.array(kept, dtype=ids[j].dtype))
                                            for j, kept in others)
        tasks.append(GroupedPiece(tuple(pieces), n_rows, keep))
    return tasks


def _too_spread(chosen, locations, n_rows, max_task_rows, column, shown) -> DataError:
    """The error for chunks tied together beyond the bound, naming the most spread group."""
    counts: dict = {}
    files: dict = {}
    for piece in chosen:
        for gid in locations.ids.get(piece_key(piece), ()):
            gid = gid.item() if hasattr(gid, "item") else gid
            counts[gid] = counts.get(gid, 0) + 1
            files.setdefault(gid, [])
            if piece.path not in files[gid]:
                files[gid].append(piece.path)
    worst = max(counts, key=lambda g: (counts[g], len(files[g]))) if counts else None
    names = sorted({p.path for p in chosen})
    where = ", ".join(shown(p) for p in files.get(worst, names)[:5])
    more = len(files.get(worst, names)) - 5
    where += f" and {more} more" if more > 0 else ""
    return DataError(
        f"group {worst!r} (column {column!r}) is too spread out: it has rows in "
        f"{counts.get(worst, 0)} chunks of {where}; the chunks one task must read for it "
        f"({len(chosen)} chunks of {len(names)} files) hold {n_rows} rows, more than "
        f"max_task_rows={max_task_rows}. Rewrite the lake by group (streammix regroup LAKE "
        f"--groups {column} --out LAKE2) or raise max_task_rows")
