"""Where the map-reduce of a pass runs.

An engine has one method, ``map_reduce(source, func, zero)``: apply ``func``
to every chunk of the source's plan and sum the results with ``+`` in a
fixed binary tree over the plan order, so that the result does not depend
on where or in which order chunks were computed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["InProcessEngine", "tree_sum"]


def tree_sum(values: Iterable[Any], zero: Any) -> Any:
    """Sum ``values`` pairwise in a balanced binary tree, streaming.

    The tree shape depends only on the number of values: values are combined
    like the carries of a binary counter, so memory is O(log n) and the
    result is the same as reducing the list with a fixed ``split_every=2``.
    """
    stack: list[tuple[int, Any]] = []  # (height, partial sum)
    for value in values:
        height = 0
        while stack and stack[-1][0] == height:
            _, left = stack.pop()
            value = left + value
            height += 1
        stack.append((height, value))
    if not stack:
        return zero
    _, total = stack.pop()
    while stack:
        _, left = stack.pop()
        total = left + total
    return total


class InProcessEngine:
    """Run the passes in this process.

    With ``n_threads > 1`` chunks are read and reduced by a pool of threads,
    at most ``n_threads`` chunks at a time, so the memory of a pass is
    bounded by ``n_threads`` decoded chunks plus O(log C) partial
    statistics.  Results are summed in plan order, so they do not depend on
    the number of threads.

    Parameters
    ----------
    n_threads : int, optional
        Worker threads; default 1 (every chunk in the calling thread).  On
        in-memory arrays the E-step's short numpy calls contend for the GIL
        and threads did not pay (benchmarks/bench_core.py); they help when
        reading chunks means I/O and decoding.
    """

    def __init__(self, n_threads: int | None = None):
        if n_threads is None:
            n_threads = 1
        if int(n_threads) < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        self.n_threads = int(n_threads)

    def map_reduce(self, source, func: Callable, zero: Any) -> Any:
        plan = source.plan()
        if self.n_threads == 1 or len(plan) <= 1:
            return tree_sum((func(source.read(d)) for d in plan), zero)
        return tree_sum(self._threaded(source, func, plan), zero)

    def _threaded(self, source, func, plan) -> Iterator[Any]:
        def task(descriptor):
            return func(source.read(descriptor))

        with ThreadPoolExecutor(self.n_threads, thread_name_prefix="streammix") as pool:
            pending: deque = deque()
            for descriptor in plan:
                if len(pending) >= self.n_threads:
                    yield pending.popleft().result()
                pending.append(pool.submit(task, descriptor))
            while pending:
                yield pending.popleft().result()

    def __repr__(self) -> str:
        return f"InProcessEngine(n_threads={self.n_threads})"
