"""The pieces of a pass's task graph on a Dask cluster.

The functions its tasks run (read a chunk, apply the map function, sum a run
of results), the tree in which :class:`~streammix.engines.dask_engine.DaskEngine`
combines them (:func:`counter_tree`, the shape of
:func:`streammix.core.reduce.tree_sum`), how many consecutive chunks one task
takes (:func:`small_chunk_run`, :func:`run_length`), and how a chunk is named
in a message (:func:`describe_descriptor`).
"""

from __future__ import annotations

import functools
import numbers
import operator
from collections.abc import Callable, Iterable
from typing import Any

from streammix.core.reduce import tree_sum

__all__ = ["FUSED_LEVELS", "MIN_TASK_ROWS", "counter_tree", "describe_descriptor",
           "fused_levels", "reduction", "run_length", "small_chunk_run"]


def describe_descriptor(source, descriptor) -> str:
    """A chunk descriptor as a user would name it: file and row groups for Parquet."""
    path = getattr(descriptor, "path", None)
    groups = getattr(descriptor, "row_groups", None)
    if path is not None and groups is not None:
        shown = source.shown(path) if hasattr(source, "shown") else path
        rows = getattr(descriptor, "n_rows", None)
        first = getattr(descriptor, "first_row", None)
        extent = f", rows {first}..{first + rows - 1}" if rows and first is not None else ""
        return f"{shown} row groups {list(groups)}{extent}"
    return f"chunk {descriptor!r}"


def counter_tree(values: Iterable[Any], zero: Any, split_every: int,
                 combine: Callable[[list], Any]) -> Any:
    """Reduce ``values`` with ``combine`` in a fixed ``split_every``-ary tree.

    Values are grouped like the carries of a base-``split_every`` counter and
    whatever is left at the end is combined from the right, so with
    ``split_every=2`` and ``combine = lambda v: v[0] + v[1]`` the tree is
    exactly that of :func:`streammix.core.reduce.tree_sum`.  ``combine`` receives
    2 to ``split_every`` values in plan order.
    """
    k = int(split_every)
    if k < 2:
        raise ValueError(f"split_every must be >= 2, got {split_every!r}")
    stack: list[tuple[int, Any]] = []
    for value in values:
        height = 0
        stack.append((height, value))
        while len(stack) >= k and all(h == height for h, _ in stack[-k:]):
            group = [v for _, v in stack[-k:]]
            del stack[-k:]
            height += 1
            stack.append((height, combine(group)))
    if not stack:
        return zero
    items = [v for _, v in stack]
    while len(items) > 1:
        group = items[-k:]
        del items[-k:]
        items.append(combine(group))
    return items[0]


def _sum_values(*values):
    return functools.reduce(operator.add, values)


#: Levels of the reduction tree that one ``+`` task computes (a nested task
#: of up to ``split_every ** FUSED_LEVELS`` inputs).  One task per level cost a
#: scheduler round trip and a transfer between workers per level: the last
#: map task of a pass waited for three of them (8 map tasks); a graph of 8
#: map tasks that do nothing took 0.47-0.63x as long with three levels a task
#: (2 local workers, alternating, benchmarks/README.md).
FUSED_LEVELS = 3


def fused_levels(func) -> int:
    """Levels of the tree a ``+`` task computes in a pass of map function ``func``:
    :data:`FUSED_LEVELS`, or 1 when ``func`` has a true ``bulky_results`` (results
    large enough, such as a pass-0 sample of every chunk, that a worker should
    hold two at a time, not ``split_every ** FUSED_LEVELS``)."""
    return 1 if getattr(func, "bulky_results", False) else FUSED_LEVELS


def reduction(graph: dict, token: str, leaves: list, split_every: int,
              levels: int | None = None) -> str:
    """Add to ``graph`` the ``+`` tasks that sum the ``leaves`` (keys, in plan
    order) in the tree of :func:`counter_tree`; return the key of the total.

    Each task computes ``levels`` (default :data:`FUSED_LEVELS`) levels of
    the tree as one nested expression, so the sums and their order, and so
    the result, are those of a task per sum.
    """
    levels = FUSED_LEVELS if levels is None else max(1, int(levels))
    counter = iter(range(len(leaves) + 1))

    def task(expr) -> str:
        key = f"streammix-sum-{token}-{next(counter)}"
        graph[key] = expr
        return key

    def combine(group):
        height = 1 + max(h for h, _ in group)
        expr = (_sum_values, *(e for _, e in group))
        return (0, task(expr)) if height >= levels else (height, expr)

    height, top = counter_tree([(0, key) for key in leaves], None, split_every, combine)
    if height:  # the top levels, nested
        return task(top)
    if len(leaves) == 1:  # a single map task: the graph needs an output of its own
        return task((_sum_values, top))
    return top


def _read_apply(source, func, descriptor):
    return func(source.read(descriptor))


def _apply(func, chunk):
    return func(chunk)


def _read_input(source, descriptor, value):
    return source.read_input(descriptor, value)


def _read_input_apply(source, func, descriptor, value):
    return func(source.read_input(descriptor, value))


def _apply_run(func, *chunks):
    return tree_sum((func(chunk) for chunk in chunks), None)


def _read_apply_run(source, func, *descriptors):
    # One chunk in memory at a time: read, map, and let it go.
    return tree_sum((func(source.read(d)) for d in descriptors), None)


#: A task that reads from storage covers at least about this many rows (runs
#: of consecutive chunks, still about four tasks per worker thread), so that
#: small files and chunks do not each pay the scheduler's per-task cost, the
#: transfer of their statistics and a merge.  An EM pass over a 4M-row lake
#: (31 chunks of 131072 rows, 2 workers x 1 thread) took 1.47x pyarrow's
#: threaded scan with runs of up to 65536 rows (a task per chunk) and 1.06x
#: with runs of 4 chunks (the two alternating in one run, medians of 5
#: rounds, load 7); a later ``benchmarks/bench_lake.py`` run, which had both
#: rows, showed no clear difference (1.14 s and 1.07 s, load 4-6), nor did
#: tasks of 1, 2 or 4 chunks once the reduction was fused (FUSED_LEVELS).
MIN_TASK_ROWS = 1 << 19


def small_chunk_run(plan, n_threads: int, min_rows: int | None = None) -> int:
    """Chunks per reading task: 1 for chunks of ``min_rows`` rows or more,
    else enough consecutive chunks (a power of two) to reach about
    ``min_rows``, capped by :func:`run_length`.  Descriptors without an
    ``n_rows`` are read one per task."""
    min_rows = MIN_TASK_ROWS if min_rows is None else min_rows
    rows = [getattr(d, "n_rows", None) for d in plan]
    if not rows or any(not isinstance(r, numbers.Integral) for r in rows):
        return 1
    typical = max(1, sorted(rows)[len(rows) // 2])
    cap, g = run_length(len(plan), n_threads), 1
    while g < cap and g * typical < min_rows:
        g *= 2
    return g


def run_length(n_chunks: int, n_threads: int) -> int:
    """Chunks per map task for cached passes: the largest power of two that
    still leaves about four tasks per worker thread (at least 1)."""
    g = 1
    while -(-n_chunks // (2 * g)) >= 4 * max(1, n_threads):
        g *= 2
    return g
