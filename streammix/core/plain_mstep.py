"""The plain maximum-likelihood M-step, vectorised over components.

With small batches (online EM) the M-step is a fixed cost per batch next to
the E-step, and the per-component Python loop of
:func:`streammix.core.mstep.mstep` dominates it.  :func:`ml_mstep_arrays`
does the same arithmetic (Cholesky factor, the same two solves, the same
variance update) for all components at once, in the compiled kernel when it
runs (:mod:`streammix.core.kernel`), and steps aside (returns None) whenever
``mstep`` would do anything else: priors, shared or fixed noise, the df
correction, an empty or ill-conditioned component, a variance at the floor.
"""

from __future__ import annotations

import math

import numpy as np

from streammix.core import kernel
from streammix.core.mstep import RCOND_LIMIT, MStepOptions
from streammix.core.params import MixtureParams

__all__ = ["is_plain_ml", "cholesky_solve", "ml_mstep_arrays"]


def is_plain_ml(options: MStepOptions) -> bool:
    """Whether ``mstep`` with these options is the plain per-component ML update."""
    return (options.noise == "per_component" and options.ridge == 0
            and not options.has_variance_prior and options.dirichlet_alpha == 1.0
            and not options.df_correction and not options.shared)


def cholesky_solve(s2: np.ndarray, rx: np.ndarray):
    """Cholesky factors L of the stack ``s2`` and ``s2⁻¹ rx`` by two solves with them.

    The arithmetic of ``mstep`` (``np.linalg.cholesky``, then ``np.linalg.solve``
    with L and Lᵀ).  Returns ``(L, delta)``, or None when a matrix of the
    stack is not positive definite.
    """
    try:
        L = np.linalg.cholesky(s2)
    except np.linalg.LinAlgError:
        return None
    with np.errstate(all="ignore"):
        z = np.linalg.solve(L, rx[:, :, None])
        delta = np.linalg.solve(np.swapaxes(L, 1, 2), z)[:, :, 0]
    return L, delta


def ml_mstep_arrays(s0: np.ndarray, s2: np.ndarray, rx: np.ndarray, r0: np.ndarray,
                     sum_w: float, beta: np.ndarray, variance_floor: float):
    """The plain ML M-step on statistics centred at ``beta``, vectorised over components.

    Returns ``(params, s2d, rss)``: the new parameters, ``s2 δ`` and the
    residual sums of squares at them -- with which the statistics are
    re-centred to the new coefficients (``rx − s2 δ`` and ``rss``,
    the mathematics page (docs/mathematics.rst),
    §1.2) at no further cost.  Returns None whenever ``mstep`` would do
    anything but the plain update: an empty or ill-conditioned component, a
    variance at the floor (or a result that is not finite).
    """
    N = sum_w
    if kernel.enabled():  # the same update in one compiled call (to rounding)
        m, p = beta.shape
        beta_new, sigma2, weights = np.empty((m, p)), np.empty(m), np.empty(m)
        s2d, rss = np.empty((m, p)), np.empty(m)

        def contiguous(a):
            return np.require(a, np.float64, ["C", "A"])

        if not kernel.ml_mstep(contiguous(s0), contiguous(s2), contiguous(rx), contiguous(r0),
                               contiguous(beta), float(N),
                               float(variance_floor), RCOND_LIMIT, beta_new, sigma2,
                               weights, s2d, rss):
            return None
        return MixtureParams.unchecked(weights, beta_new, sigma2), s2d, rss
    if not N > 0 or (s0 <= 1e-12 * N).any():
        return None
    solved = cholesky_solve(s2, rx)
    if solved is None:
        return None
    L, delta = solved
    # mstep's test (d.min() / d.max())² > RCOND_LIMIT per component, on Python floats
    # (cheaper than numpy for a handful of numbers); NaN (a failed factor) fails it.
    for d in np.diagonal(L, axis1=1, axis2=2).tolist():
        hi = max(d)
        if not (hi > 0 and (min(d) / hi) ** 2 > RCOND_LIMIT) or math.isnan(sum(d)):
            return None
    s2d = np.einsum("jkl,jl->jk", s2, delta)
    rss = np.maximum(r0 - 2.0 * np.einsum("jk,jk->j", delta, rx)
                     + np.einsum("jk,jk->j", delta, s2d), 0.0)
    sigma2 = rss / s0
    # Every σ² above the floor (NaN is not) and finite; a non-finite delta would
    # make its σ² NaN or infinite.
    if not all(variance_floor < v < math.inf for v in sigma2.tolist()):
        return None
    weights = s0 / N  # > 0, tested above: mstep's clip at zero changes nothing
    return MixtureParams.unchecked(weights / weights.sum(), beta + delta, sigma2), s2d, rss
