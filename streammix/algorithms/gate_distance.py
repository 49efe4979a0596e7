"""The duplicate rule of restarts (§3.3) for gated runs: a distance with the gate in it.

Restarts of a fit with concomitant variables run in lock-step
(:func:`streammix.algorithms.restarts.run_lockstep`); their points are
``(params, coef)``.  Two runs with the same lines but different gates are
different models, so the distance between runs is the regression part of
:func:`~streammix.algorithms.restarts.information_distance` (β and log σ²; the
mean weights left out) plus the gate's part in the Böhning metric,
½ Σ_jk A_jk d_jᵀ (Σ w z̃z̃ᵀ) d_k with A = ½(I − 11ᵀ/m) and d_j the difference
of the free rows γ_j (j = 2..m), minimised over relabellings (the gate
re-based on the new first component).  Böhning's matrix bounds the gate's
complete-data information from above, so the gate's part is never smaller
than in the information metric: the rule stays conservative, as with
I_c ≥ I_obs for the regression.  Both parts come from the leader's
statistics of the same pass (:class:`~streammix.algorithms.concomitant.ConcomitantStats`).
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.concomitant import ConcomitantStats, permute_gate
from streammix.algorithms.restarts import relabellings
from streammix.algorithms.squarem import em_step_size, to_unconstrained
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams

__all__ = ["gated_distance", "gated_size", "gate_quadratic"]


def gate_quadratic(delta: np.ndarray, zz: np.ndarray) -> float:
    """½ vec(Δ)ᵀ (A ⊗ Σ w z̃z̃ᵀ) vec(Δ) for the free rows Δ (m − 1, q + 1) of a gate change."""
    k = delta.shape[0]
    if k == 0:
        return 0.0
    A = 0.5 * (np.eye(k) - np.full((k, k), 1.0 / (k + 1)))
    return 0.5 * float(np.sum(A * (delta @ zz @ delta.T)))


def gated_distance(a: tuple, b: tuple, stats_b: ConcomitantStats,
                   options: MStepOptions) -> float:
    """The distance of gated point ``a = (params, coef)`` to ``b``, in nats (module notes);
    infinite when their shapes differ."""
    (pa, ca), (pb, cb) = a, b
    ca, cb = np.asarray(ca, dtype=np.float64), np.asarray(cb, dtype=np.float64)
    m = pb.n_components
    if pa.n_components != m or pa.n_coef != pb.n_coef or ca.shape != cb.shape:
        return float("inf")
    best = float("inf")
    for order in relabellings(pa, pb):
        moved = pa.permute(list(order))
        lines = MixtureParams(pb.weights, moved.beta, moved.sigma2)  # no weights term
        regression = em_step_size(stats_b.stats, pb, lines, options)[0]
        delta = permute_gate(ca, order)[1:] - cb[1:]
        best = min(best, regression + gate_quadratic(delta, stats_b.gate.zz))
    return best


def gated_size(b: tuple, options: MStepOptions) -> int:
    """P of a gated point: β, the variances and the gate's (m − 1)(q + 1) free terms."""
    params, coef = b
    m = params.n_components
    return int(to_unconstrained(params, options).size - (m - 1) + (m - 1) * coef.shape[1])
