"""Batch EM with concomitant variables: the map task, the statistics and the driver.

The weights are π(z) = softmax(Γ z̃) (:mod:`streammix.core.gating`).  One pass
computes, at the current (θ, Γ), the regression statistics and the gate's
gradient and Böhning matrix (:class:`ConcomitantStats`, mergeable); the
M-step updates the regressions as always (:func:`streammix.core.mstep.mstep`,
its weight update unused) and the gate by one Böhning MM step.  Each pass
therefore raises the log-likelihood (a generalised EM; the mathematics page,
docs/mathematics.rst, §1.8).  No data are read here: the driver is given
``pass_fn(params, coef) -> ConcomitantStats``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from streammix.algorithms.restarts import StatsBundle
from streammix.core.gating import GatingStats, bohning_step, gating_estep, with_intercept
from streammix.core.mstep import MStepOptions, mstep
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, design_matrix
from streammix.exceptions import DataError

__all__ = ["ConcomitantStats", "ConcomitantTask", "ConcomitantMultiTask", "ConcomitantResult",
           "concomitant_em", "concomitant_steps", "drive_gated", "initial_gate", "mean_weights",
           "permute_gate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ConcomitantStats:
    """The statistics of one pass with concomitant variables: regression and gate."""

    stats: SuffStats
    gate: GatingStats

    @classmethod
    def zeros(cls, n_components: int, n_coef: int, n_gate: int) -> ConcomitantStats:
        return cls(SuffStats.zeros(n_components, n_coef), GatingStats.zeros(n_components, n_gate))

    def __add__(self, other: ConcomitantStats) -> ConcomitantStats:
        if not isinstance(other, ConcomitantStats):
            return NotImplemented
        return ConcomitantStats(self.stats + other.stats, self.gate + other.gate)

    @property
    def loglik(self) -> float:
        """The log-likelihood of the pass (that of its regression statistics)."""
        return self.stats.loglik

    @property
    def sum_w(self) -> float:
        """Σ w of the pass."""
        return self.stats.sum_w


@dataclass(frozen=True)
class ConcomitantTask:
    """Map function of a pass: a chunk (with its concomitant block ``Z``) -> its statistics."""

    params: MixtureParams
    coef: np.ndarray
    fit_intercept: bool

    def __call__(self, chunk) -> ConcomitantStats:
        Z = getattr(chunk, "Z", None)
        if Z is None:
            raise DataError(f"{chunk.origin}: the chunk has no concomitant variables")
        Xd = design_matrix(chunk.X, self.fit_intercept)
        stats, gate = gating_estep(Xd, chunk.y, chunk.w, with_intercept(Z), self.params,
                                   self.coef)
        return ConcomitantStats(stats, gate)


@dataclass(frozen=True)
class ConcomitantMultiTask:
    """Map function of a lock-step pass of several runs: a chunk -> a
    :class:`~streammix.algorithms.restarts.StatsBundle` of one
    :class:`ConcomitantStats` per ``(params, coef)`` point, the chunk read once."""

    points: tuple
    fit_intercept: bool

    def __call__(self, chunk) -> StatsBundle:
        return StatsBundle(ConcomitantTask(p, c, self.fit_intercept)(chunk)
                           for p, c in self.points)


@dataclass
class ConcomitantResult:
    """Outcome of a run: parameters, gate, log-likelihood and history (as EMResult)."""

    params: MixtureParams
    coef: np.ndarray
    loglik: float
    n_iter: int
    converged: bool
    history: list[dict]
    stats: ConcomitantStats


def initial_gate(params: MixtureParams, n_gate: int) -> np.ndarray:
    """Γ of constant weights ``params.weights``: intercepts log(π_j/π_1), slopes zero."""
    coef = np.zeros((params.n_components, n_gate))
    logw = np.log(np.maximum(params.weights, 1e-12))
    coef[:, 0] = logw - logw[0]
    return coef


def mean_weights(stats: ConcomitantStats) -> np.ndarray:
    """Σ w π(z) / Σ w: the average weight of each component over the data."""
    total = stats.gate.prior_sum
    return total / total.sum()


def _with_mean_weights(params: MixtureParams, weights: np.ndarray) -> MixtureParams:
    return MixtureParams(weights, params.beta, params.sigma2)


def drive_gated(steps: Generator, pass_fn: Callable[[MixtureParams, np.ndarray],
                                                 ConcomitantStats]) -> ConcomitantResult:
    """Run a step generator of a gated fit (it yields ``(params, coef)`` and is sent
    that point's :class:`ConcomitantStats`) with ``pass_fn(params, coef)``."""
    point = next(steps)
    while True:
        try:
            point = steps.send(pass_fn(*point))
        except StopIteration as stop:
            return stop.value


def concomitant_em(pass_fn: Callable[[MixtureParams, np.ndarray], ConcomitantStats],
                   params: MixtureParams, coef: np.ndarray, options: MStepOptions, *,
                   tol: float, max_iter: int,
                   callback: Callable[[dict], None] | None = None) -> ConcomitantResult:
    """Generalised EM from ``(params, coef)``: regression M-step plus one Böhning step a pass.

    Stops when the log-likelihood changes by less than ``tol`` between two
    passes, or after ``max_iter`` M-steps.  The result belongs to its last
    pass (parameters and statistics agree).
    """
    return drive_gated(concomitant_steps(params, coef, options, tol=tol, max_iter=max_iter,
                                         callback=callback), pass_fn)


def concomitant_steps(params: MixtureParams, coef: np.ndarray, options: MStepOptions, *,
                      tol: float, max_iter: int,
                      callback: Callable[[dict], None] | None = None,
                      ) -> Generator[tuple, ConcomitantStats, ConcomitantResult]:
    """:func:`concomitant_em` as a step generator (for runs in lock-step)."""
    coef = np.asarray(coef, dtype=np.float64).copy()
    coef[0] = 0.0
    history: list[dict] = []
    prev = None
    n_iter = 0
    converged = False
    while True:
        stats = yield params, coef
        ll = stats.stats.loglik
        record = {"iteration": n_iter, "loglik": ll, "objective": ll,
                  "n_components": params.n_components}
        history.append(record)
        if callback is not None:
            callback(dict(record))
        logger.debug("concomitant EM iteration %d: loglik %.10g", n_iter, ll)
        if prev is not None and abs(ll - prev) < tol:
            converged = True
            break
        if n_iter >= max_iter:
            break
        prev = ll
        new, flags = mstep(stats.stats, params, options)
        for j, note in flags.items():
            logger.debug("iteration %d, component %d: %s", n_iter, j, note)
        coef = bohning_step(coef, stats.gate)
        params = _with_mean_weights(new, mean_weights(stats))
        n_iter += 1
    params = _with_mean_weights(params, mean_weights(stats))
    return ConcomitantResult(params, coef, ll, n_iter, converged, history, stats)


def permute_gate(coef: np.ndarray, order) -> np.ndarray:
    """Γ with components in ``order`` and the new first component as the baseline."""
    out = np.asarray(coef, dtype=np.float64)[np.asarray(order)]
    return out - out[0]

