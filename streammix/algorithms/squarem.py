"""SQUAREM acceleration of batch EM, counted in passes.

See the mathematics page (docs/mathematics.rst), §3.1.

One evaluation of the EM map F is one pass over the data followed by an
M-step, so SQUAREM is driven by the same ``pass_fn(params) -> SuffStats`` as
:func:`streammix.algorithms.em.run_em`.  A cycle from θ0 (whose pass is done):

1. θ1 = F(θ0) (free: the M-step of θ0's pass), a pass at θ1 gives θ2 = F(θ1);
2. with r = θ1 − θ0 and v = θ2 − 2θ1 + θ0 in unconstrained coordinates
   (β, log σ², log(π_j/π_m)), scheme S3: α = clamp(‖r‖/‖v‖, 1, step_max);
3. if |α − 1| ≤ 0.01 the next cycle starts at θ2; otherwise a pass at
   θ' = θ0 + 2αr + α²v gives ℓ(θ') and F(θ') (the stabilisation step);
4. fused safeguard: θ' is accepted when ℓ(θ') is finite and at least
   ℓ(θ0) − δ, and the next cycle starts at F(θ'), whose likelihood is at
   least ℓ(θ') by the EM ascent property; otherwise it starts at θ2.
   step_max grows by ``step_factor`` when α reaches it and shrinks when a
   step at step_max is rejected (the R package SQUAREM's rules).

A cycle costs 3 passes (2 when α = 1).  Plain EM's stopping rule (the last
change of ℓ) does not apply to an extrapolating method (the mathematics page (docs/mathematics.rst),
§3.2);
SQUAREM stops on the size of the next EM step, free from the statistics of
each pass at θ: the step r = F(θ) − θ measured in the complete-data
information metric, ½ rᵀ I_c r, and the first-order gain gᵀ r with the
gradient g of §1.7.  For EM, r ≈ I_c⁻¹ g, so gᵀ r ≈ rᵀ I_c r, and the gain
ℓ(F(θ)) − ℓ(θ) of one more EM step lies between ½ rᵀ I_c r and gᵀ r (the
upper end when much information is missing).  SQUAREM stops when
max(rᵀ I_c r, |gᵀ r|) / (1 − λ) < ``tol``, an estimate of what is left to
gain, with 1/(1 − λ) (λ the rate of EM) estimated by the ‖r‖/‖v‖ of the
latest cycle; so it stops no farther from the optimum than plain EM, whose
rule is that its last step gained less than ``tol``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from streammix.algorithms.em import (
    Collapse,
    EMResult,
    EMSettings,
    collapsed_components,
    drive,
    warn_not_converged,
)
from streammix.core.mstep import MStepOptions, log_prior, mstep
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats

__all__ = ["SquaremOptions", "run_squarem", "squarem_steps", "to_unconstrained",
           "from_unconstrained", "regression_from_vector", "em_step_size", "ACCELERATORS"]

logger = logging.getLogger(__name__)

#: Values of the estimator's ``accelerate`` keyword.
ACCELERATORS = (None, "squarem")


@dataclass(frozen=True)
class SquaremOptions:
    """Step-length control of SQUAREM (defaults of the R package SQUAREM).

    Parameters
    ----------
    step_max0 : float
        Initial upper bound on the step length α (``step.max0``).
    step_factor : float
        Factor by which step_max grows or shrinks (``mstep``).
    slack : float, optional
        δ of the safeguard: an extrapolated point is rejected when its
        objective is below the cycle start's by more than δ.  Default
        ``max(1e-3, 10 × the float error of the log-likelihood sum)``, the
        error taken as ε·log2(n)·|ℓ|; ``0`` makes every cycle monotone.
    alpha_tol : float
        The stabilisation pass is skipped when |α − 1| ≤ ``alpha_tol``.
    """

    step_max0: float = 1.0
    step_factor: float = 4.0
    slack: float | None = None
    alpha_tol: float = 0.01

    def __post_init__(self) -> None:
        if not self.step_max0 >= 1.0:
            raise ValueError(f"step_max0 must be >= 1, got {self.step_max0}")
        if not self.step_factor > 1.0:
            raise ValueError(f"step_factor must be > 1, got {self.step_factor}")
        if self.slack is not None and not self.slack >= 0:
            raise ValueError(f"slack must be >= 0, got {self.slack}")


# ------------------------------------------------------------------ coordinates
def to_unconstrained(params: MixtureParams, options: MStepOptions) -> np.ndarray:
    """Flatten ``params`` to (β, log σ², log(π_j/π_m) for j < m).

    With shared noise there is one log σ²; with fixed noise none.
    """
    parts = [params.beta.ravel()]
    if options.noise == "per_component":
        parts.append(np.log(params.sigma2))
    elif options.noise == "shared":
        parts.append(np.log(params.sigma2[:1]))
    if params.n_components > 1:
        lw = np.log(np.maximum(params.weights, np.finfo(float).tiny))
        parts.append(lw[:-1] - lw[-1])
    return np.concatenate(parts)


def regression_from_vector(u: np.ndarray, template: MixtureParams,
                           options: MStepOptions) -> tuple[np.ndarray, np.ndarray, int]:
    """The coefficients and variances at the head of a working vector ``u`` (as
    :func:`to_unconstrained` lays them out), and the position after them.

    Variances are kept at or above the variance floor; fixed variances and the
    shape come from ``template``.
    """
    m, p = template.n_components, template.n_coef
    pos = m * p
    beta = u[:pos].reshape(m, p)
    if options.noise == "per_component":
        sigma2 = np.exp(u[pos:pos + m])
        pos += m
    elif options.noise == "shared":
        sigma2 = np.full(m, np.exp(u[pos]))
        pos += 1
    else:
        sigma2 = template.sigma2
    sigma2 = np.maximum(sigma2, max(options.variance_floor, np.finfo(float).tiny ** 0.5))
    return beta, sigma2, pos


def from_unconstrained(u: np.ndarray, template: MixtureParams,
                       options: MStepOptions) -> MixtureParams | None:
    """Inverse of :func:`to_unconstrained`; None if the point is not finite.

    Variances are kept at or above the variance floor; fixed variances and
    the shape come from ``template``.
    """
    if not np.all(np.isfinite(u)):
        return None
    m = template.n_components
    beta, sigma2, pos = regression_from_vector(u, template, options)
    if m > 1:
        eta = np.append(u[pos:pos + m - 1], 0.0)
        weights = np.exp(eta - eta.max())
        weights = weights / weights.sum()
    else:
        weights = np.ones(1)
    if not (np.all(np.isfinite(sigma2)) and np.all(np.isfinite(weights))):
        return None
    return MixtureParams(weights, beta, sigma2)


def _gradient(stats: SuffStats, params: MixtureParams, options: MStepOptions) -> np.ndarray:
    """Gradient of the objective in unconstrained coordinates.

    See the mathematics page (docs/mathematics.rst), §1.7.
    """
    m, p = params.n_components, params.n_coef
    s2 = params.sigma2
    g_beta = stats.rx / s2[:, None]
    g_ls = (stats.r0 - stats.s0 * s2) / (2.0 * s2)
    if options.ridge > 0:
        lam = options.penalty_matrix(p)
        dev = params.beta - options.mean_vector(p)
        g_beta = g_beta - dev @ lam / s2[:, None]
        g_ls = g_ls - 0.5 * options.prior_rank(p) + 0.5 * np.einsum(
            "jk,kl,jl->j", dev, lam, dev) / s2
    parts = [g_beta.ravel()]
    if options.noise != "fixed":
        ig = np.zeros(m)
        if options.has_variance_prior:
            ig = -(options.prior_dof / 2 + 1) + options.prior_scale / (2.0 * s2)
        if options.noise == "per_component":
            parts.append(g_ls + ig)
        else:
            parts.append(np.array([g_ls.sum() + ig[0]]))
    if m > 1:
        pi = params.weights
        g_eta = stats.s0 - stats.sum_w * pi
        if options.dirichlet_alpha != 1.0:
            g_eta = g_eta + (options.dirichlet_alpha - 1.0) * (1.0 - m * pi)
        parts.append(g_eta[:-1])
    return np.concatenate(parts)


def em_step_size(stats: SuffStats, params: MixtureParams, new: MixtureParams,
                 options: MStepOptions) -> tuple[float, float, float]:
    """How far the EM step ``params -> new`` goes, from the statistics at ``params``.

    Returns
    -------
    quad : float
        ½ rᵀ I_c r, with r = F(θ) − θ in unconstrained coordinates and I_c
        the complete-data information (block diagonal: S2_j/σ_j² for β_j,
        S0_j/2 for log σ_j², N(diag π − ππᵀ) for the log-ratios of weights).
    gain : float
        gᵀ r, the first-order change of the objective along the step.
    grad_norm : float
        Euclidean norm of the gradient g.
    """
    if stats.center is None or not np.array_equal(stats.center, params.beta):
        stats = stats.recentre(params.beta)
    m = params.n_components
    r = to_unconstrained(new, options) - to_unconstrained(params, options)
    g = _gradient(stats, params, options)
    rb = (new.beta - params.beta)
    quad = float(np.einsum("jk,jkl,jl->", rb, stats.s2, rb / params.sigma2[:, None]))
    pos = rb.size
    if options.noise == "per_component":
        quad += float(np.sum(stats.s0 * r[pos:pos + m] ** 2) / 2.0)
        pos += m
    elif options.noise == "shared":
        quad += float(stats.sum_w * r[pos] ** 2 / 2.0)
        pos += 1
    if m > 1:
        pi = params.weights
        info = stats.sum_w * (np.diag(pi) - np.outer(pi, pi))[:-1, :-1]
        re = r[pos:]
        quad += float(re @ info @ re)
    return 0.5 * quad, float(g @ r), float(np.linalg.norm(g))


def _slack(stats: SuffStats, sq: SquaremOptions) -> float:
    if sq.slack is not None:
        return sq.slack
    err = np.finfo(float).eps * np.log2(max(stats.n_rows, 2)) * abs(stats.loglik)
    return max(1e-3, 10.0 * err)


# ----------------------------------------------------------------------- driver
def run_squarem(pass_fn: Callable[[MixtureParams], SuffStats], params: MixtureParams,
                settings: EMSettings, squarem: SquaremOptions | None = None, *,
                reseed: Callable | None = None, warn: bool = True,
                callback: Callable[[dict], None] | None = None) -> EMResult:
    """Run SQUAREM-accelerated EM from ``params``.

    Parameters
    ----------
    pass_fn : callable
        ``pass_fn(params) -> SuffStats``: one full E-step pass.
    params : MixtureParams
        Starting values.
    settings : EMSettings
        As for :func:`~streammix.algorithms.em.run_em`, except that ``tol`` applies to
        the size of the next EM step (see the module notes) and ``max_iter``
        bounds the number of passes after the first.
    squarem : SquaremOptions, optional
    reseed : callable, optional
        As for :func:`~streammix.algorithms.em.run_em`.
    warn : bool
        Emit :class:`~streammix.ConvergenceWarning` at ``max_iter``.
    callback : callable, optional
        Called after each pass with a copy of its history record.

    Returns
    -------
    EMResult
        ``params``, ``loglik`` and ``stats`` belong to one evaluated point;
        ``history`` has one record per pass (``step`` says which kind) and
        ``n_iter`` is the number of passes after the first.
    """
    result = drive(squarem_steps(params, settings, squarem, reseed=reseed, callback=callback),
                   pass_fn)
    if warn:
        warn_not_converged(result, stacklevel=3)
    return result


def squarem_steps(params: MixtureParams, settings: EMSettings,
                  squarem: SquaremOptions | None = None, *, reseed: Callable | None = None,
                  callback: Callable[[dict], None] | None = None,
                  ) -> Generator[MixtureParams, SuffStats, EMResult]:
    """:func:`run_squarem` as a generator (see :func:`streammix.algorithms.em.em_steps`)."""
    sq = squarem if squarem is not None else SquaremOptions()
    run = _Run(settings, reseed, callback)
    step_max = sq.step_max0
    stats = yield from run.evaluate(params, "start")
    while True:
        # A cycle starts at `params`, whose pass (`stats`) is done.
        if run.n_components_changed(params, stats) and not run.out_of_passes():
            params, stats = yield from run.after_collapse(params, stats)
            continue
        p1 = run.em_map(params, stats)
        if run.converged(params, stats, p1) or run.out_of_passes():
            return run.finish(params, stats)
        s1 = yield from run.evaluate(p1, "em")
        if run.n_components_changed(p1, s1):
            params, stats = p1, s1
            continue
        p2 = run.em_map(p1, s1)
        if run.converged(p1, s1, p2) or run.out_of_passes():
            return run.finish(p1, s1)
        opts = run.options
        u0 = to_unconstrained(params, opts)
        r = to_unconstrained(p1, opts) - u0
        v = to_unconstrained(p2, opts) - 2.0 * (u0 + r) + u0
        sr, sv = float(np.linalg.norm(r)), float(np.linalg.norm(v))
        run.rate_factor = max(sr / sv, 1.0) if sv > 0 else run.rate_factor
        alpha = min(max(sr / sv, 1.0), step_max) if sv > 0 else 1.0
        if abs(alpha - 1.0) <= sq.alpha_tol:
            if alpha == step_max:
                step_max *= sq.step_factor
            params = p2
            stats = yield from run.evaluate(p2, "em")
            continue
        pe = from_unconstrained(u0 + 2.0 * alpha * r + alpha * alpha * v, params, opts)
        accepted = False
        if pe is not None:
            se = yield from run.evaluate(pe, "extrapolated", alpha=alpha, fatal=False)
            floor = run.objective(params, stats) - _slack(stats, sq)
            accepted = np.isfinite(se.loglik) and run.objective(pe, se) >= floor
            if accepted and run.n_components_changed(pe, se):
                params, stats = pe, se  # handled at the top of the next cycle
                continue
        if accepted:
            p_new = run.em_map(pe, se)
            if run.converged(pe, se, p_new) or run.out_of_passes():
                return run.finish(pe, se)
        else:
            logger.debug("SQUAREM: step alpha=%.3g rejected", alpha)
            p_new = p2
            if alpha == step_max:
                step_max = max(sq.step_max0, step_max / sq.step_factor)
            alpha = 1.0
        if alpha == step_max:
            step_max *= sq.step_factor
        if run.out_of_passes():
            return run.finish(p1, s1)
        params = p_new
        stats = yield from run.evaluate(params, "em" if not accepted else "stabilised")


class _Run:
    """Book-keeping of one SQUAREM run: history, pass budget, collapse handling."""

    def __init__(self, settings: EMSettings, reseed, callback=None):
        self.callback = callback
        self.settings = settings
        self.options = settings.mstep
        self.reseed = reseed
        self.history: list[dict] = []
        self.collapse = Collapse(settings, reseed)
        self.event: str | None = None
        self.reasons: list[dict] = []
        self.best: tuple[float, MixtureParams, SuffStats] | None = None
        self.converged_flag = False
        self.rate_factor = 1.0
        self._notes: dict[int, dict[str, str]] = {}  # id(params) -> M-step notes

    @property
    def n_passes(self) -> int:
        return len(self.history)

    def out_of_passes(self) -> bool:
        return self.n_passes > self.settings.max_iter

    def objective(self, params: MixtureParams, stats: SuffStats) -> float:
        return stats.loglik + log_prior(params, self.options)

    def evaluate(self, params: MixtureParams, step: str, alpha: float | None = None,
                 fatal: bool = True):
        stats = yield params
        finite = np.isfinite(stats.loglik)
        if not finite and fatal:
            raise FloatingPointError(
                f"log-likelihood is not finite at pass {self.n_passes}; "
                "check the data scale or set a variance floor"
            )
        obj = self.objective(params, stats) if finite else float("nan")
        record = {"iteration": self.n_passes, "loglik": float(stats.loglik),
                  "objective": float(obj), "n_components": params.n_components,
                  "step": step}
        if alpha is not None:
            record["alpha"] = float(alpha)
        if self.event is not None:
            record["event"] = self.event
            record["collapse"] = self.reasons
            self.event = None
        notes = self._notes.pop(id(params), None)
        if notes:
            record["notes"] = notes
        self.history.append(record)
        if self.callback is not None:
            self.callback(dict(record))
        logger.debug("SQUAREM pass %d (%s): loglik %.10g", record["iteration"], step,
                     stats.loglik)
        if finite and (self.best is None or obj > self.best[0]):
            self.best = (obj, params, stats)
        return stats

    def em_map(self, params: MixtureParams, stats: SuffStats) -> MixtureParams:
        new, flags = mstep(stats, params, self.options)
        for j, note in flags.items():
            logger.debug("pass %d, component %d: %s", self.n_passes - 1, j, note)
        if len(self._notes) > 4:  # maps whose result was never evaluated
            self._notes.clear()
        self._notes[id(new)] = {str(j): note for j, note in sorted(flags.items())}
        return new

    def converged(self, params, stats, new) -> bool:
        # Always called on the point of the latest pass.
        quad, gain, gnorm = em_step_size(stats, params, new, self.options)
        self.history[-1].update(em_step=quad, em_gain=gain, grad_norm=gnorm)
        # The next EM step gains between ½rᵀI_c r and gᵀr (= rᵀI_c r for EM);
        # what is left to gain ≈ that / (1 − λ), λ the rate of EM, and
        # ‖r‖/‖v‖ of the latest cycle estimates 1/(1 − λ).
        gap = max(2.0 * quad, abs(gain)) * self.rate_factor
        self.history[-1]["gap_estimate"] = gap
        self.converged_flag = gap < self.settings.tol
        return self.converged_flag

    def n_components_changed(self, params: MixtureParams, stats: SuffStats) -> bool:
        return bool(collapsed_components(params, stats, self.settings))

    def after_collapse(self, params: MixtureParams, stats: SuffStats):
        """Drop or re-seed collapsed components, then take a plain EM step."""
        found = collapsed_components(params, stats, self.settings)
        params, stats, self.options, event, self.reasons = self.collapse.handle(
            found, params, stats, self.options, self.n_passes - 1, stats.loglik)
        self.event = event
        self.best = None  # earlier points have another number of components
        if stats is not None:
            params = self.em_map(params, stats)
        stats = yield from self.evaluate(params, "em")
        return params, stats

    def finish(self, params: MixtureParams, stats: SuffStats) -> EMResult:
        converged = self.converged_flag
        if not converged and self.best is not None and self.best[0] > self.objective(
                params, stats):
            _, params, stats = self.best
        settings = dataclasses.replace(self.settings, mstep=self.options)
        return EMResult(params, float(stats.loglik), self.objective(params, stats),
                        self.n_passes - 1, converged, self.history, stats, settings,
                        self.collapse.passed_over)
