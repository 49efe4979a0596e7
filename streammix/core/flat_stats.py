"""Sufficient statistics as one flat vector, for per-batch arithmetic.

The running statistics of the state are kept as one flat vector
    [s0 (m), s2 (m p p), rx (m p), r0 (m), loglik, class_loglik, entropy]
so that mixing and scaling are one numpy operation each, not one per field
and per SuffStats object: with 10k-row batches these fixed costs are of the
order of the E-step itself.
"""

from __future__ import annotations

import numpy as np

from streammix.core.stats import SuffStats

__all__ = ["flatten", "flat_views", "unflatten", "recentred"]


def flatten(stats: SuffStats) -> np.ndarray:
    """The additive fields of ``stats`` (all but sum_w and n_rows) as one new flat vector."""
    return np.concatenate((stats.s0, stats.s2.reshape(-1), stats.rx.reshape(-1), stats.r0,
                           (stats.loglik, stats.class_loglik, stats.entropy)))


def flat_views(flat: np.ndarray, m: int, p: int):
    """``(s0, s2, rx, r0)`` of a flat vector (views, no copies)."""
    a = m + m * p * p
    b = a + m * p
    return flat[:m], flat[m:a].reshape(m, p, p), flat[a:b].reshape(m, p), flat[b:b + m]


def unflatten(flat: np.ndarray, m: int, p: int, sum_w: float, n_rows: int,
              center: np.ndarray | None) -> SuffStats:
    """The :class:`SuffStats` of a flat vector, with the given totals and centre."""
    s0, s2, rx, r0 = flat_views(flat, m, p)
    return SuffStats(s0, s2, rx, r0, float(flat[-3]), float(flat[-2]), float(flat[-1]),
                     sum_w, n_rows, center)


def recentred(flat: np.ndarray, center: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Flat statistics re-centred from ``center`` to ``beta`` (:meth:`SuffStats.recentre`)."""
    m, p = beta.shape
    _, s2, rx, r0 = flat_views(flat, m, p)
    delta = beta - center
    s2d = np.einsum("jkl,jl->jk", s2, delta)
    moved = flat.copy()
    _, _, rx_moved, r0_moved = flat_views(moved, m, p)
    np.subtract(rx, s2d, out=rx_moved)
    np.maximum(r0 - 2.0 * np.einsum("jk,jk->j", delta, rx) + np.einsum("jk,jk->j", delta, s2d),
               0.0, out=r0_moved)
    return moved
