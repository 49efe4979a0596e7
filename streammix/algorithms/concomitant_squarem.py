"""SQUAREM for the generalised EM of fits with concomitant variables.

The map F(θ, Γ) of one pass (:func:`streammix.algorithms.concomitant.concomitant_em`:
the regression M-step and one Böhning step for the gate) is extrapolated in
the joint working vector u = (β, log σ², Γ of components 2..m) (the weights
of a gated fit are π(z), not parameters).  A cycle from x0, whose pass is
done (ℓ0):

1. x1 = F(x0) (free: the M-step of x0's pass), a pass at x1 gives ℓ1 and
   x2 = F(x1); the fit stops here when ℓ1 − ℓ0 < ``tol``, plain GEM's rule;
2. r = u(x1) − u(x0), v = u(x2) − 2u(x1) + u(x0), α = clamp(‖r‖/‖v‖, 1,
   step_max) (scheme S3);
3. a pass at x' = u0 + 2αr + α²v gives ℓ(x'); x' is accepted when
   ℓ(x') ≥ ℓ1 and the next cycle starts at x' (its pass done); otherwise a
   pass at x2 (ℓ2 ≥ ℓ1 by the GEM ascent) and the next cycle starts there.

So the accepted points (the history's records not marked ``rejected``) have
a non-decreasing log-likelihood, as plain GEM's passes.  step_max grows by 4
when α reaches it and shrinks when a step at step_max is rejected (the R
package SQUAREM's rules).  The mathematics page, §1.8.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator

import numpy as np

from streammix.algorithms.concomitant import (
    ConcomitantResult,
    ConcomitantStats,
    drive_gated,
    mean_weights,
)
from streammix.algorithms.squarem import regression_from_vector
from streammix.core.gating import bohning_step
from streammix.core.mstep import MStepOptions, mstep
from streammix.core.params import MixtureParams

__all__ = ["concomitant_squarem", "concomitant_squarem_steps", "joint_vector", "from_joint"]

logger = logging.getLogger(__name__)

STEP_MAX0, STEP_FACTOR = 1.0, 4.0


def _with_mean_weights(params: MixtureParams, weights: np.ndarray) -> MixtureParams:
    return MixtureParams(weights, params.beta, params.sigma2)


def joint_vector(params: MixtureParams, coef: np.ndarray, options: MStepOptions) -> np.ndarray:
    """u = (β, log σ² (one with shared noise, none fixed), Γ[1:]) flattened."""
    parts = [params.beta.ravel()]
    if options.noise == "per_component":
        parts.append(np.log(params.sigma2))
    elif options.noise == "shared":
        parts.append(np.log(params.sigma2[:1]))
    parts.append(np.asarray(coef)[1:].ravel())
    return np.concatenate(parts)


def from_joint(u: np.ndarray, template: MixtureParams, coef_shape: tuple[int, int],
               options: MStepOptions):
    """Inverse of :func:`joint_vector`: (params, coef), or None if not finite."""
    if not np.all(np.isfinite(u)):
        return None
    beta, sigma2, pos = regression_from_vector(u, template, options)
    if not np.all(np.isfinite(sigma2)):
        return None
    coef = np.zeros(coef_shape)
    coef[1:] = u[pos:].reshape(coef_shape[0] - 1, coef_shape[1])
    return MixtureParams(template.weights, beta, sigma2), coef


def concomitant_squarem(pass_fn: Callable[[MixtureParams, np.ndarray], ConcomitantStats],
                        params: MixtureParams, coef: np.ndarray, options: MStepOptions, *,
                        tol: float, max_iter: int,
                        callback: Callable[[dict], None] | None = None) -> ConcomitantResult:
    """SQUAREM-accelerated generalised EM from ``(params, coef)`` (module notes).

    ``max_iter`` bounds the passes after the first; the result is the last
    accepted point, whose parameters and statistics agree.
    """
    return drive_gated(concomitant_squarem_steps(params, coef, options, tol=tol,
                                                 max_iter=max_iter, callback=callback),
                       pass_fn)


def concomitant_squarem_steps(params: MixtureParams, coef: np.ndarray, options: MStepOptions,
                              *, tol: float, max_iter: int,
                              callback: Callable[[dict], None] | None = None,
                              ) -> Generator[tuple, ConcomitantStats, ConcomitantResult]:
    """:func:`concomitant_squarem` as a step generator (for runs in lock-step)."""
    coef = np.asarray(coef, dtype=np.float64).copy()
    coef[0] = 0.0
    history: list[dict] = []

    def evaluate(p, g, step, alpha=None):
        stats = yield p, g
        ll = float(stats.stats.loglik)
        record = {"iteration": len(history), "loglik": ll, "objective": ll,
                  "n_components": p.n_components, "step": step}
        if alpha is not None:
            record["alpha"] = float(alpha)
        history.append(record)
        if callback is not None:
            callback(dict(record))
        logger.debug("concomitant SQUAREM pass %d (%s): loglik %.10g", record["iteration"],
                     step, ll)
        return stats

    def em_map(p, g, stats):
        new, _ = mstep(stats.stats, p, options)
        return _with_mean_weights(new, mean_weights(stats)), bohning_step(g, stats.gate)

    def out_of_passes():
        return len(history) > max_iter

    step_max = STEP_MAX0
    x0 = (params, coef)
    s0 = yield from evaluate(*x0, "start")
    converged = False
    while not out_of_passes():
        x1 = em_map(*x0, s0)
        s1 = yield from evaluate(*x1, "em")
        if abs(s1.stats.loglik - s0.stats.loglik) < tol:
            x0, s0, converged = x1, s1, True
            break
        if out_of_passes():
            x0, s0 = x1, s1
            break
        x2 = em_map(*x1, s1)
        u0 = joint_vector(*x0, options)
        r = joint_vector(*x1, options) - u0
        v = joint_vector(*x2, options) - 2.0 * (u0 + r) + u0
        sr, sv = float(np.linalg.norm(r)), float(np.linalg.norm(v))
        alpha = min(max(sr / sv, 1.0), step_max) if sv > 0 else 1.0
        pe = from_joint(u0 + 2.0 * alpha * r + alpha * alpha * v, x0[0], coef.shape, options)
        if pe is not None:
            se = yield from evaluate(*pe, "extrapolated", alpha)
            if np.isfinite(se.stats.loglik) and se.stats.loglik >= s1.stats.loglik:
                if alpha == step_max:
                    step_max *= STEP_FACTOR
                x0, s0 = pe, se
                continue
            history[-1]["rejected"] = True
            logger.debug("concomitant SQUAREM: step alpha=%.3g rejected", alpha)
        if alpha == step_max:
            step_max = max(STEP_MAX0, step_max / STEP_FACTOR)
        if out_of_passes():
            x0, s0 = x1, s1
            break
        x0, s0 = x2, (yield from evaluate(*x2, "em"))
    params, coef = x0
    params = _with_mean_weights(params, mean_weights(s0))
    return ConcomitantResult(params, coef, float(s0.stats.loglik), len(history) - 1, converged,
                             history, s0)
