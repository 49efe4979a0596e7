"""Starts one row away from a run: the exchange step of the start pool.

On a few dozen rows a mixture of regressions has optima whose small
component holds ten rows or so, with as many coefficients as it can carry
(LifeCycleSavings: 10 rows for 6 parameters).  EM reaches them only from
starts that already hold almost exactly those rows, which no random partition
or bin start draws in hundreds of tries, but a neighbouring optimum -- the
same partition but for one row -- is found easily.  Moving one row between
components and running EM again is the exchange step of partition
clustering (Hartigan & Wong 1979's transfer of one point; Banfield & Bassill
1977), applied to the posteriors: row i's responsibilities are set to 1 for
component j, every other row keeps its posteriors, and one M-step gives the
start.  The pool (:mod:`streammix.algorithms.start.pool`) tries these moves
from its best runs when the sample is small enough.
"""

from __future__ import annotations

import math

import numpy as np

from streammix.algorithms.start.population import Population, population_mstep

__all__ = ["posteriors", "row_moves"]

_LOG_2PI = math.log(2.0 * math.pi)


def posteriors(Xd: np.ndarray, y: np.ndarray, pop: Population) -> np.ndarray:
    """Responsibilities (R, m, n) of every row at each run's parameters."""
    resid = y[None, None, :] - np.einsum("rmp,np->rmn", pop.beta, Xd)
    with np.errstate(divide="ignore"):
        log_w = np.log(pop.weights)
    lj = (log_w - 0.5 * (_LOG_2PI + np.log(pop.sigma2)))[:, :, None] \
        - 0.5 * resid**2 / pop.sigma2[:, :, None]
    lj -= lj.max(axis=1, keepdims=True)
    gamma = np.exp(lj)
    return gamma / gamma.sum(axis=1, keepdims=True)


def row_moves(Xd: np.ndarray, y: np.ndarray, w: np.ndarray, pop: Population, count: int,
              rng: np.random.Generator, *, noise: str, floor: float,
              penalty: np.ndarray | None = None,
              fixed_sigma2: np.ndarray | None = None) -> Population:
    """Up to ``count`` starts, each one row of one run of ``pop`` moved to a component
    that does not hold it (its posterior there below 1/2).

    All moves are made when there are at most ``count``; otherwise ``count`` of
    them drawn at random with ``rng``.  Each start is one M-step from the run's
    posteriors with that row's set to the other component.
    """
    if pop.size == 0 or count <= 0:
        return pop.take(np.zeros(0, dtype=np.int64))
    gamma = posteriors(Xd, y, pop)  # (R, m, n)
    run, comp, row = np.nonzero(gamma < 0.5)
    if run.size == 0:
        return pop.take(np.zeros(0, dtype=np.int64))
    if run.size > count:
        pick = np.sort(rng.choice(run.size, size=count, replace=False))
        run, comp, row = run[pick], comp[pick], row[pick]
    resp = gamma[run]  # (M, m, n), a copy
    moved = np.arange(run.size)
    resp[moved, :, row] = 0.0
    resp[moved, comp, row] = 1.0
    return population_mstep(Xd, y, w, resp, noise=noise, floor=floor, penalty=penalty,
                            fixed_sigma2=fixed_sigma2)
