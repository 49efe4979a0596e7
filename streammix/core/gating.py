"""Concomitant variables: weights that depend on covariates z (a softmax gate).

flexmix's ``FLXPmultinom``: π_j(z) = softmax_j(γ_jᵀ z̃) with z̃ = [1, z] and
γ_1 = 0 (component 1 the baseline).  The gating part of the EM objective,
Q_g(Γ) = Σ_i w_i Σ_j τ_ij log π_j(z_i) (τ the responsibilities), has no
closed-form maximiser; its gradient in the free rows j = 2..m is
G_j = Σ_i w_i (τ_ij − π_j(z_i)) z̃_i, and its Hessian is bounded below by
−B with Böhning's (1992) fixed matrix B = ½(I − 11ᵀ/m) ⊗ Σ_i w_i z̃_i z̃_iᵀ.
One step Γ ← Γ + B⁻¹ G (an MM step) therefore never lowers Q_g, so EM with it
is a generalised EM and stays monotone (the mathematics page,
docs/mathematics.rst, §1.8).  Every quantity is a sum over rows, computed in
the pass of the E-step and merged like the other statistics.  Numpy only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, accumulate, log_norm

__all__ = ["GatingStats", "log_gate", "gate_weights", "gating_loglik", "gating_estep",
           "bohning_step", "with_intercept"]


def with_intercept(Z: np.ndarray) -> np.ndarray:
    """z̃ = [1, z] for each row of ``Z`` (n, q)."""
    Z = np.asarray(Z, dtype=np.float64)
    return np.column_stack([np.ones(Z.shape[0]), Z])


def log_gate(Z1: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """log π_j(z_i), shape (n, m), from z̃ (n, q + 1) and Γ (m, q + 1), in the log domain."""
    return _log_gate_t(Z1, coef).T


def _log_gate_t(Z1: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """log π_j(z_i) as an (m, n) array: the components in rows, so that the sums over
    components are sums of contiguous rows (several times faster than along axis 1)."""
    eta = np.asarray(coef, dtype=np.float64) @ np.asarray(Z1, dtype=np.float64).T
    top = eta.max(axis=0)
    eta -= top
    return eta - np.log(np.exp(eta).sum(axis=0))


def gate_weights(Z: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """π(z) of raw covariates ``Z`` (n, q): shape (n, m), rows summing to one."""
    return np.exp(log_gate(with_intercept(Z), coef))


@dataclass(frozen=True, eq=False)
class GatingStats:
    """Mergeable statistics of the gate in one pass (zeros() is the identity, + adds).

    Attributes
    ----------
    grad : ndarray of shape (m, q + 1)
        Σ w (τ_j − π_j(z)) z̃ (row 0 is minus the sum of the others).
    zz : ndarray of shape (q + 1, q + 1)
        Σ w z̃ z̃ᵀ.
    prior_sum : ndarray of shape (m,)
        Σ w π_j(z): the mean weights of the components, times N.
    """

    grad: np.ndarray
    zz: np.ndarray
    prior_sum: np.ndarray

    @classmethod
    def zeros(cls, n_components: int, n_gate: int) -> GatingStats:
        return cls(np.zeros((n_components, n_gate)), np.zeros((n_gate, n_gate)),
                   np.zeros(n_components))

    def __add__(self, other: GatingStats) -> GatingStats:
        if not isinstance(other, GatingStats):
            return NotImplemented
        return GatingStats(self.grad + other.grad, self.zz + other.zz,
                           self.prior_sum + other.prior_sum)


def _joint(Xd, y, Z1, params: MixtureParams, coef):
    """Per-row log-likelihood (n,) and, as (m, n) arrays (components in rows), the
    log-responsibilities, the joint log-densities and log π(z)."""
    log_pi = _log_gate_t(Z1, coef)
    R = y - params.beta @ np.asarray(Xd, dtype=np.float64).T
    base = log_norm(params) - np.log(np.maximum(params.weights, 1e-300))
    L = log_pi + base[:, None] - R * R * (0.5 / params.sigma2)[:, None]
    top = L.max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    ll = top + np.log(np.exp(L - top).sum(axis=0))
    return ll, L - ll, L, log_pi


def gating_loglik(Xd: np.ndarray, y: np.ndarray, Z1: np.ndarray, params: MixtureParams,
                  coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log p(y | x, z) and log-responsibilities (n, m) under the gate ``coef``."""
    ll, log_resp, _, _ = _joint(Xd, np.asarray(y, dtype=np.float64), Z1, params, coef)
    return ll, log_resp.T


def gating_estep(Xd: np.ndarray, y: np.ndarray, w: np.ndarray, Z1: np.ndarray,
                 params: MixtureParams, coef: np.ndarray) -> tuple[SuffStats, GatingStats]:
    """The E-step of a chunk when the weights are π(z): regression and gate statistics.

    ``params.weights`` are not used: row i's prior is π(z_i) from ``coef``.
    The regression statistics are those of
    :func:`streammix.core.stats.accumulate` at these responsibilities, with
    the log-likelihood, classification log-likelihood and entropy filled in.
    """
    w = np.asarray(w, dtype=np.float64)
    ll, log_resp, L, log_pi = _joint(Xd, y, Z1, params, coef)  # (m, n) but ll
    resp = np.exp(log_resp)
    stats = accumulate(Xd, y, w, resp.T, params.beta)
    with np.errstate(invalid="ignore"):
        ent = -float(np.sum(np.where(resp > 0, resp * log_resp, 0.0) @ w))
    stats = dataclasses.replace(stats, loglik=float(w @ ll),
                                class_loglik=float(w @ L.max(axis=0)), entropy=ent)
    pi = np.exp(log_pi)
    Zw = Z1 * w[:, None]
    gate = GatingStats((resp - pi) @ Zw, Zw.T @ Z1, pi @ w)
    return stats, gate


def bohning_step(coef: np.ndarray, gate: GatingStats) -> np.ndarray:
    """Γ + B⁻¹ G on the free rows j = 2..m (Böhning 1992), the first row kept at zero.

    With A = ½(I − 11ᵀ/(m)) of size m − 1, A⁻¹ = 2(I + 11ᵀ), so the step is
    ΔΓ = 2 (G + 1 1ᵀG) (Σ w z̃ z̃ᵀ)⁻¹, a fixed matrix solve.
    """
    coef = np.asarray(coef, dtype=np.float64)
    G = gate.grad[1:]
    if G.shape[0] == 0:
        return coef.copy()
    lhs = 2.0 * (G + G.sum(axis=0, keepdims=True))
    evals, evecs = np.linalg.eigh(0.5 * (gate.zz + gate.zz.T))
    cutoff = 1e-12 * max(evals.max(initial=0.0), 0.0)
    inv = np.where(evals > cutoff, 1.0 / np.where(evals > cutoff, evals, 1.0), 0.0)
    delta = (lhs @ evecs) * inv @ evecs.T
    out = coef.copy()
    out[1:] += delta
    out[0] = 0.0
    return out
