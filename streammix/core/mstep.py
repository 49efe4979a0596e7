"""M-step: sufficient statistics -> parameters.

The updates are those of the mathematics page (docs/mathematics.rst), §1.3–1.5.

Pure numpy.  Maximum likelihood by default; conjugate MAP updates when a
ridge (normal prior on the coefficients), an inverse-gamma prior on the
variances or a Dirichlet prior on the weights is configured.  With a prior
the penalty ``(a - m0)ᵀ Λ (a - m0)`` enters the σ² numerator, so that each
update maximises one penalised Q and EM ascends the log-posterior.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from streammix.core.constrained_mstep import joint_coefficients, shared_columns_check
from streammix.core.linsolve import RCOND_LIMIT, solve_spd_many
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats

__all__ = ["MStepOptions", "mstep", "log_prior", "RCOND_LIMIT"]

logger = logging.getLogger(__name__)


NOISE_MODELS = ("per_component", "shared", "fixed")


@dataclass(frozen=True)
class MStepOptions:
    """Settings of the M-step.

    Parameters
    ----------
    noise : {"per_component", "shared", "fixed"}
        One σ per component, one σ for all, or σ known (``fixed_sigma2``).
    fixed_sigma2 : ndarray of shape (m,), optional
        The known variances when ``noise="fixed"``.
    variance_floor : float
        Absolute lower bound on every σ²; keeps the likelihood bounded.
    ridge : float
        Precision λ of the normal prior a_j | σ_j² ~ N(m0, σ_j² (λ I)^{-1})
        on all coefficients except the intercept.
    intercept : bool
        Whether column 0 of the design matrix is the (unpenalised) intercept.
    prior_dof, prior_scale : float
        ν0 and ζ0² of the inverse-gamma prior σ² ~ IG(ν0/2, ζ0²/2); both zero
        means no prior on σ².
    dirichlet_alpha : float
        Dirichlet(α, ..., α) prior on the weights, α ≥ 1 (1 = no prior).
    df_correction : bool
        Divide RSS_j by S0_j (1 - p/n) as flexmix's FLXMRglm does, instead of
        the maximum-likelihood S0_j (shared σ: Σ RSS_j / (N (1 - p/(m n))), as
        FLXMRglmfix(varFix=TRUE)); n is the number of rows.  Not an EM step
        for the likelihood; for reproducing flexmix only.  With ``shared``
        columns it also fits the coefficients as flexmix's FLXMRglmfix does:
        one pooled least-squares fit weighted by the posteriors alone.
    shared : tuple of int
        Design columns whose coefficient is shared by all components
        (flexmix's ``FLXMRglmfix(fixed=...)``); the coefficients are then one
        joint least-squares solve (:mod:`streammix.core.constrained_mstep`).
    """

    noise: str = "per_component"
    fixed_sigma2: np.ndarray | None = None
    variance_floor: float = 0.0
    ridge: float = 0.0
    intercept: bool = True
    prior_dof: float = 0.0
    prior_scale: float = 0.0
    dirichlet_alpha: float = 1.0
    df_correction: bool = False
    prior_mean: np.ndarray | None = field(default=None)
    shared: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shared", tuple(sorted(int(k) for k in self.shared)))
        if self.noise not in NOISE_MODELS:
            raise ValueError(f"noise must be one of {NOISE_MODELS}, got {self.noise!r}")
        if self.noise == "fixed" and self.fixed_sigma2 is None:
            raise ValueError("noise='fixed' needs the known sigma")
        if self.ridge < 0 or self.prior_dof < 0 or self.prior_scale < 0:
            raise ValueError("ridge, prior_dof and prior_scale must be non-negative")
        if self.dirichlet_alpha < 1:
            raise ValueError(f"dirichlet_alpha must be >= 1, got {self.dirichlet_alpha}")
        if self.variance_floor < 0:
            raise ValueError("variance_floor must be non-negative")

    @property
    def has_variance_prior(self) -> bool:
        return self.prior_dof > 0 or self.prior_scale > 0

    def penalty_matrix(self, p: int) -> np.ndarray:
        """Λ: ridge on the diagonal, zero for the intercept."""
        lam = np.full(p, float(self.ridge))
        if self.intercept:
            lam[0] = 0.0
        return np.diag(lam)

    def prior_rank(self, p: int) -> int:
        """p0 = rank Λ."""
        if self.ridge == 0:
            return 0
        return p - 1 if self.intercept else p

    def mean_vector(self, p: int) -> np.ndarray:
        return np.zeros(p) if self.prior_mean is None else np.asarray(self.prior_mean, float)


def mstep(stats: SuffStats, params: MixtureParams, options: MStepOptions,
          ) -> tuple[MixtureParams, dict[int, str]]:
    """Maximise Q given the statistics of one pass.

    Parameters
    ----------
    stats : SuffStats
        Statistics of the pass, centred at ``params.beta``.
    params : MixtureParams
        Parameters at which the statistics were computed.
    options : MStepOptions

    Returns
    -------
    params : MixtureParams
        Updated parameters.
    flags : dict
        Component index -> a note on a numerical problem met (rank-deficient
        Gram matrix, variance at the floor, empty component).
    """
    if stats.center is None or not np.array_equal(stats.center, params.beta):
        stats = stats.recentre(params.beta)
    m, p = params.n_components, params.n_coef
    N = stats.sum_w
    if N <= 0:
        raise ValueError("no data with positive weight reached the M-step")
    lam = options.penalty_matrix(p)
    m0 = options.mean_vector(p)
    p0 = options.prior_rank(p)
    flags: dict[int, str] = {}
    beta = params.beta.copy()
    rss = np.zeros(m)
    pen = np.zeros(m)
    tiny = 1e-12 * N
    if options.shared:
        beta, sigma2 = _shared_update(stats, params, options, lam, m0, p, p0, flags)
    active = [] if options.shared else [j for j in range(m) if stats.s0[j] > tiny]
    if active:  # one stacked solve for every component (the same bits as one by one)
        rhs = np.array([stats.rx[j] - lam @ (params.beta[j] - m0) for j in active])
        deltas, cuts = solve_spd_many(np.asarray(stats.s2)[active] + lam, rhs)
    solved = {j: i for i, j in enumerate(active)}
    for j in range(m if not options.shared else 0):
        if j not in solved:
            flags[j] = "empty"
            continue
        delta = deltas[solved[j]]
        if cuts[solved[j]]:
            flags[j] = "rank-deficient design"
        beta[j] = params.beta[j] + delta
        s2d = stats.s2[j] @ delta
        rss[j] = max(stats.r0[j] - 2.0 * delta @ stats.rx[j] + delta @ s2d, 0.0)
        dev = beta[j] - m0
        pen[j] = dev @ lam @ dev

    if not options.shared:
        sigma2 = _update_variances(stats, params, options, rss, pen, p, p0, flags)

    alpha = options.dirichlet_alpha
    weights = (stats.s0 + alpha - 1.0) / (N + m * alpha - m)
    weights = np.maximum(weights, 0.0)
    weights = weights / weights.sum()
    return MixtureParams(weights, beta, sigma2), flags


#: Inner cycles of the shared-coefficient M-step: coefficients given σ, σ given the
#: coefficients (each raises Q: an ECM step; iterated, the exact joint maximiser).
SHARED_CYCLES = 100


def _shared_update(stats, params, options, lam, m0, p, p0, flags):
    """Coefficients and variances when ``options.shared`` columns are common to all components.

    Maximum likelihood weights component j by u_j = 1/σ_j² and alternates the
    joint coefficient solve with the variance update until σ² stops moving
    (an ECM cycle raises Q each time; at convergence it is the exact M-step).
    Shared or known σ, and flexmix's ``df_correction``, need one solve (u_j
    equal, or fixed).
    """
    m = params.n_components
    shared = shared_columns_check(options.shared, p)
    empty = {j: "empty" for j in range(m) if stats.s0[j] <= 1e-12 * stats.sum_w}
    flags.update(empty)
    gram = stats.s2 + lam
    rhs = stats.rx - (params.beta - m0) @ lam
    iterate = options.noise == "per_component" and not options.df_correction
    if options.noise == "fixed":
        precision = 1.0 / np.broadcast_to(np.asarray(options.fixed_sigma2, float), (m,))
    elif iterate:
        precision = 1.0 / params.sigma2
    else:
        precision = np.ones(m)
    sigma2 = params.sigma2
    for _ in range(SHARED_CYCLES if iterate else 1):
        delta, cut = joint_coefficients(gram, rhs, precision, shared)
        s2d = np.einsum("jkl,jl->jk", stats.s2, delta)
        rss = np.maximum(stats.r0 - 2.0 * np.einsum("jk,jk->j", delta, stats.rx)
                         + np.einsum("jk,jk->j", delta, s2d), 0.0)
        beta = params.beta + delta
        dev = beta - m0
        pen = np.einsum("jk,kl,jl->j", dev, lam, dev)
        notes = dict(empty)
        new = _update_variances(stats, params, options, rss, pen, p, p0, notes)
        done = np.allclose(new, sigma2, rtol=1e-13, atol=0.0)
        sigma2 = new
        if not iterate or done:
            break
        precision = 1.0 / sigma2
    if cut:
        for j in range(m):
            flags.setdefault(j, "rank-deficient design")
    for j, note in notes.items():
        flags.setdefault(j, note)
    return beta, sigma2


def _update_variances(stats, params, options, rss, pen, p, p0, flags) -> np.ndarray:
    m = params.n_components
    if options.noise == "fixed":
        return np.broadcast_to(np.asarray(options.fixed_sigma2, float), (m,)).copy()
    ig = options.has_variance_prior
    extra = options.prior_dof + 2.0 if ig else 0.0
    if options.noise == "shared":
        num = float(np.sum(rss + pen)) + options.prior_scale
        den = stats.sum_w + m * p0 + extra
        if options.df_correction:  # flexmix FLXMRglmfix(varFix=TRUE): k N - p rows
            den *= 1.0 - p / (m * stats.n_rows)
        sigma2 = np.full(m, num / den if den > 0 else params.sigma2[0])
    else:
        sigma2 = params.sigma2.copy()
        for j in range(m):
            if flags.get(j) == "empty":
                continue
            den = stats.s0[j] + p0 + extra
            if options.df_correction:
                den *= 1.0 - p / stats.n_rows
            sigma2[j] = (rss[j] + pen[j] + options.prior_scale) / den
    floor = options.variance_floor
    low = ~(sigma2 > floor)  # also catches zeros and NaN
    for j in np.flatnonzero(low):
        flags.setdefault(int(j), "variance at floor")
    sigma2 = np.where(low, floor, sigma2)
    if np.any(sigma2 <= 0):
        # No floor configured and a perfect fit: keep the likelihood finite.
        sigma2 = np.where(sigma2 > 0, sigma2, np.finfo(float).tiny ** 0.5)
    return sigma2


def log_prior(params: MixtureParams, options: MStepOptions) -> float:
    """Log prior density (up to a constant) of ``params``; 0 without priors.

    EM with priors ascends ``loglik + log_prior``.
    """
    m, p = params.n_components, params.n_coef
    total = 0.0
    if options.ridge > 0:
        lam = options.penalty_matrix(p)
        p0 = options.prior_rank(p)
        m0 = options.mean_vector(p)
        for j in range(m):
            dev = params.beta[j] - m0
            total += -0.5 * p0 * np.log(params.sigma2[j]) - 0.5 * dev @ lam @ dev / params.sigma2[j]
    if options.has_variance_prior and options.noise != "fixed":
        nu0, z2 = options.prior_dof, options.prior_scale
        s2 = params.sigma2 if options.noise == "per_component" else params.sigma2[:1]
        total += float(np.sum(-(nu0 / 2 + 1) * np.log(s2) - z2 / (2 * s2)))
    if options.dirichlet_alpha != 1.0:
        total += (options.dirichlet_alpha - 1.0) * float(np.sum(np.log(params.weights)))
    return float(total)
