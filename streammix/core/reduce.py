"""The fixed-order reduction of a pass: a balanced binary tree over the plan order.

Every engine sums the results of a pass's chunks with :func:`tree_sum` (or,
on a cluster, with partial sums over aligned power-of-two runs that are
exactly ``tree_sum``'s subtrees), so a pass gives the same bits wherever and
in whatever order its chunks were computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["tree_sum"]


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
