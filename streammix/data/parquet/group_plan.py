"""Where the groups of a grouped lake live, and the map tasks that keep every group whole.

A fit with grouped classes needs all rows of a group in one map task.  The
locating pass reads only the group column of every chunk (after filters)
and returns, per chunk, the distinct group ids it holds
(:class:`GroupLocations`, summed over the lake like any statistic).
:func:`merge_pieces` then joins chunks that share a group: chunks are the
nodes of a graph whose edges are shared groups (a group's chunks are
chained), and each connected component (the classes of a union-find, found
by :func:`scipy.sparse.csgraph.connected_components`) of at most
``max_task_rows`` rows is one map task, a :class:`GroupedPiece`, that reads
its chunks once.  Chunks left without rows by the filters are no task.

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
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

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
        first chunk); ``ids`` is a tuple, so the descriptor is hashable.
    """

    pieces: tuple
    n_rows: int
    keep: tuple | None = None

    def __repr__(self) -> str:
        kept = "" if self.keep is None else \
            f", keep={[(mode, len(ids)) for mode, ids in self.keep]!r}"
        return f"GroupedPiece(pieces={list(self.pieces)!r}, n_rows={self.n_rows!r}{kept})"


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
        others), or a task would hold more than ``max_task_rows`` rows.
    """
    if len(locations.kinds) > 1:
        raise DataError(f"group column {column!r} holds numbers in "
                        f"{shown(locations.kinds['number'])} but strings in "
                        f"{shown(locations.kinds['string'])}: give every file the same type")
    n = len(plan)
    per = [locations.ids.get(piece_key(p), ()) for p in plan]
    lengths = np.array([len(ids) for ids in per], dtype=np.int64)
    if not lengths.sum():
        return [GroupedPiece((p,), p.n_rows) for p in plan]
    codes, uniques = pd.factorize(np.concatenate([ids for ids in per if len(ids)]))
    owner = np.repeat(np.arange(n), lengths)
    order = np.lexsort((owner, codes))  # by group, then chunk
    codes, owner = codes[order], owner[order]
    first = np.r_[True, codes[1:] != codes[:-1]]
    later = np.flatnonzero(~first)  # a group's second, third ... chunk
    edges = coo_matrix((np.ones(later.size), (owner[later - 1], owner[later])), shape=(n, n))
    _, component = connected_components(edges, directed=False)
    sizes = np.array([p.n_rows for p in plan], dtype=np.int64)
    rows = np.bincount(component, weights=sizes)
    home = owner[first][codes]  # each group's first chunk, per (group, chunk) pair
    big = (rows[component] > max_task_rows) & (np.bincount(component)[component] > 1)
    tasks: list[tuple[int, GroupedPiece]] = []
    for members in _members(component, ~big):
        if not lengths[members].any():
            continue  # no rows left after the filters
        chosen = tuple(plan[i] for i in members)
        tasks.append((members[0], GroupedPiece(chosen, int(sizes[members].sum()))))
    spill = later[big[owner[later]]]
    tasks += _home_tasks(plan, sizes, np.flatnonzero(big), home, owner, codes, uniques, spill,
                         locations, max_task_rows, column, shown)
    return [task for _, task in sorted(tasks, key=lambda item: item[0])]


def _members(component: np.ndarray, chosen: np.ndarray) -> list[np.ndarray]:
    """The chunks of each component among ``chosen`` chunks, in plan order."""
    idx = np.flatnonzero(chosen)
    idx = idx[np.argsort(component[idx], kind="stable")]
    cuts = np.flatnonzero(np.diff(component[idx])) + 1
    return [m for m in np.split(idx, cuts) if m.size]


def _home_tasks(plan, sizes, chunks, home, owner, codes, uniques, spill, locations,
                max_task_rows, column, shown) -> list[tuple[int, GroupedPiece]]:
    """Tasks of home chunks for components too large to read at once.

    ``spill`` indexes the (group, chunk) pairs of those components whose chunk
    is not the group's home: the home's task reads that chunk for these groups
    only, and the chunk's own task drops them.
    """
    h, o, c = home[spill], owner[spill], codes[spill]
    by_drop = np.lexsort((c, o))
    drops = _split_by(o[by_drop], c[by_drop])
    by_home = np.lexsort((c, o, h))
    h, o, c = h[by_home], o[by_home], c[by_home]
    homes = set(home[np.isin(owner, chunks)].tolist())  # chunks that are some group's home
    extras: dict[int, list[tuple[int, np.ndarray]]] = {}
    if h.size:
        cuts = np.flatnonzero((np.diff(h) != 0) | (np.diff(o) != 0)) + 1
        for hh, oo, cc in zip(np.split(h, cuts), np.split(o, cuts), np.split(c, cuts),
                              strict=True):
            extras.setdefault(int(hh[0]), []).append((int(oo[0]), cc))
    tasks = []
    for i in sorted(homes):
        spilled = extras.get(i, [])
        pieces = (plan[i],) + tuple(plan[j] for j, _ in spilled)
        n_rows = int(sizes[i] + sum(sizes[j] for j, _ in spilled))
        if n_rows > max_task_rows and len(pieces) > 1:
            raise _too_spread(pieces, locations, n_rows, max_task_rows, column, shown)
        keep = (("drop", _ids(uniques[drops.get(i, np.zeros(0, np.int64))])),) + tuple(
            ("only", _ids(uniques[cc])) for _, cc in spilled)
        tasks.append((i, GroupedPiece(pieces, n_rows, keep)))
    return tasks


def _ids(values: np.ndarray) -> tuple:
    """Group ids as a tuple of Python values: descriptors stay hashable (engines key
    their caches by descriptor)."""
    return tuple(values.tolist())


def _split_by(keys: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """``values`` grouped by the (sorted) ``keys``."""
    if not keys.size:
        return {}
    cuts = np.flatnonzero(np.diff(keys)) + 1
    return {int(k[0]): v for k, v in zip(np.split(keys, cuts), np.split(values, cuts),
                                         strict=True)}


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
