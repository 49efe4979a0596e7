"""Which components of a fit are degenerate, and why (the mathematics page, §1.9).

The Gaussian mixture likelihood is unbounded: a component whose
responsibility concentrates on a few rows can shrink its σ towards zero and
raise ℓ without limit (Kiefer & Wolfowitz 1956; Day 1969).  Such *spurious*
maximisers (McLachlan & Peel 2000, §3.10) are excluded by a rule, not by a
count of rows: Hathaway (1985) bounds the ratios σ_j / σ_k from below, and a
component is degenerate here when

(a) its M-step is not identified: fewer effective rows than its parameters
    (n_eff_j < p + 1 with p coefficients, intercept included, and σ; the
    threshold is ``min_eff_rows``), or a weighted design of lower rank than
    the design of all the data;
(b) it is a *spike* (per-component noise only): n_eff_j < ``spike_rows_factor``
    (p + 1) and σ_j / σ_OLS < ``min_sigma_ratio``, σ_OLS the pooled ML
    residual sd of one least-squares fit -- a handful of rows fitted with a σ
    far below the scatter of the data (a tight component holding many rows is
    not a spike); or
(c) its weight π_j is below the user's ``min_weight`` (flexmix's ``minprior``).

In the choice among runs (:attr:`~streammix.algorithms.em.EMSettings.choice_rule`),
with per-component noise, a component is also degenerate when its σ² is pinned
at the variance floor, or when σ_j is below the *resolution of y*: y recorded
to a step δ (:func:`recording_step`) carries a rounding error of variance
δ²/12 (Sheppard 1898), so a residual sd below δ/√12 fits the rounding grid
(rows lying exactly on a line of grid points), not the data -- the likelihood
of rounded data is bounded (McLachlan & Jones 1988; Heitjan 1989), and its
continuous approximation is not valid there.

The same rule flags the R reference solutions of the real-data fixtures
(tests/fixtures/real_data/make_real_data.R).  Pure numpy; it reads one pass's
:class:`~streammix.SuffStats` and the parameters of that pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streammix.core.mstep import RCOND_LIMIT
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats

__all__ = ["DegeneracyRule", "Degeneracy", "find_degenerate", "is_degenerate",
           "pooled_ols_variance", "rule_for_data", "best_nondegenerate", "recording_step",
           "DEFAULT_MIN_SIGMA_RATIO", "DEFAULT_SPIKE_ROWS_FACTOR"]

#: Default of ``min_sigma_ratio``: σ_j below a tenth of the pooled OLS σ.
DEFAULT_MIN_SIGMA_RATIO = 0.1
#: Default of ``spike_rows_factor``: a spike holds fewer than 3 (p + 1) effective rows.
DEFAULT_SPIKE_ROWS_FACTOR = 3.0


@dataclass(frozen=True)
class DegeneracyRule:
    """The thresholds of the degeneracy rule (see the module notes).

    Parameters
    ----------
    min_weight : float
        (c): a component whose weight is below this is degenerate (0 disables).
    min_eff_rows : float, optional
        (a): fewest effective rows of an identified component; None means
        p + 1 (the number of its parameters: p coefficients and σ).
    min_sigma_ratio : float
        (b): σ_j / σ_OLS below this, with few rows, is a spike (0 disables).
    spike_rows_factor : float
        (b): a spike has fewer than ``spike_rows_factor * (p + 1)`` effective rows.
    pooled_sigma2 : float, optional
        σ²_OLS, the pooled ML residual variance of one least-squares fit; None
        disables (b).
    spikes : bool
        Whether (b) applies (per-component noise; a shared or known σ cannot
        shrink on a few rows).
    floor_sigma2 : float, optional
        The variance floor; with ``spikes``, a component whose σ² is pinned
        at it (tied y values on one line: the likelihood is bounded only by
        the floor) is degenerate, reason "at the variance floor".  None (the
        rule during EM) disables; the choice among runs sets it.
    resolution_sigma2 : float, optional
        δ²/12 for y recorded to a step δ; with ``spikes``, a component whose
        σ² is below it is degenerate, reason "below the resolution of y".
        None or 0 (the rule during EM) disables; the choice among runs sets it.
    """

    min_weight: float = 0.0
    min_eff_rows: float | None = None
    min_sigma_ratio: float = DEFAULT_MIN_SIGMA_RATIO
    spike_rows_factor: float = DEFAULT_SPIKE_ROWS_FACTOR
    pooled_sigma2: float | None = None
    spikes: bool = True
    floor_sigma2: float | None = None
    resolution_sigma2: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_weight < 1:
            raise ValueError(f"min_weight must be in [0, 1), got {self.min_weight!r}")
        if self.min_eff_rows is not None and not self.min_eff_rows >= 0:
            raise ValueError(f"min_eff_rows must be >= 0 or None, got {self.min_eff_rows!r}")
        if not self.min_sigma_ratio >= 0:
            raise ValueError(f"min_sigma_ratio must be >= 0, got {self.min_sigma_ratio!r}")
        if not self.spike_rows_factor >= 0:
            raise ValueError(f"spike_rows_factor must be >= 0, got {self.spike_rows_factor!r}")

    def eff_rows_limit(self, n_coef: int) -> float:
        """The (a) threshold for components of ``n_coef`` coefficients."""
        return float(n_coef + 1) if self.min_eff_rows is None else float(self.min_eff_rows)


@dataclass(frozen=True)
class Degeneracy:
    """Why one component is degenerate.

    Attributes
    ----------
    component : int
        Its index in the parameters examined (0-based).
    reason : {"not identified", "rank-deficient design", "spike", "small weight"}
    message : str
        The reason with its numbers, e.g. ``"component 2: 4.2 effective rows
        < 3 parameters (2 coefficients and σ): not identified"``.
    n_eff, weight, sigma_ratio : float
        Effective rows (Σwγ scaled to rows), weight (Σwγ / Σw, the weight
        the M-step of the pass gives) and σ_j / σ_OLS (NaN when σ_OLS is
        not known).
    """

    component: int
    reason: str
    message: str
    n_eff: float
    weight: float
    sigma_ratio: float

    def as_record(self) -> dict:
        """A JSON-ready dict (for ``history_``)."""
        return {"component": self.component, "reason": self.reason, "message": self.message,
                "n_eff": float(self.n_eff), "weight": float(self.weight),
                "sigma_ratio": float(self.sigma_ratio)}


def _ranks(A: np.ndarray) -> np.ndarray:
    """Numerical ranks of a stack of symmetric PSD matrices (…, p, p), one eigvalsh call."""
    evals = np.linalg.eigvalsh(A)
    top = evals.max(axis=-1, initial=0.0)
    return np.sum(evals > RCOND_LIMIT * top[..., None], axis=-1) * (top > 0)


def find_degenerate(params: MixtureParams, stats: SuffStats, rule: DegeneracyRule,
                    ) -> list[Degeneracy]:
    """The degenerate components of ``params``, one entry per component at most.

    Parameters
    ----------
    params : MixtureParams
        The parameters at which ``stats`` were computed.
    stats : SuffStats
        One pass at ``params`` (its s0, s2 give the effective rows and the
        weighted designs).
    rule : DegeneracyRule

    Returns
    -------
    list of Degeneracy
        In component order; empty when no component is degenerate.  The
        first reason that applies is reported, in the order (a), (b), (c).
    """
    m, p = params.n_components, params.n_coef
    if stats.sum_w <= 0:
        return []
    eff = stats.s0 * (stats.n_rows / stats.sum_w)
    weights = stats.s0 / stats.sum_w  # what the M-step of this pass gives
    if rule.pooled_sigma2 is not None and rule.pooled_sigma2 > 0:
        ratio = np.sqrt(params.sigma2 / rule.pooled_sigma2)
    else:
        ratio = np.full(m, np.nan)
    limit = rule.eff_rows_limit(p)
    spike_rows = rule.spike_rows_factor * (p + 1)
    ranks = _ranks(np.concatenate([stats.s2, stats.s2.sum(axis=0)[None]]))
    full_rank = int(ranks[-1])
    found = []
    for j in range(m):
        n_eff, r = float(eff[j]), float(ratio[j])
        why = msg = None
        if n_eff < limit:
            why = "not identified"
            msg = (f"component {j}: {n_eff:.3g} effective rows < {limit:g} "
                   + (f"parameters ({p} coefficients and σ)" if rule.min_eff_rows is None
                      else "(min_eff_rows)") + ": not identified")
        else:
            rank = int(ranks[j])
            if rank < full_rank:
                why = "rank-deficient design"
                msg = (f"component {j}: weighted design of rank {rank} < {full_rank} "
                       f"({n_eff:.3g} effective rows): not identified")
        if why is None and rule.spikes and n_eff < spike_rows and r < rule.min_sigma_ratio:
            why = "spike"
            msg = (f"component {j}: spike, {n_eff:.3g} effective rows < "
                   f"{rule.spike_rows_factor:g} (p + 1) = {spike_rows:g} and σ = {r:.3g} × "
                   f"pooled OLS σ < {rule.min_sigma_ratio:g}")
        if (why is None and rule.spikes and rule.floor_sigma2 is not None
                and params.sigma2[j] <= rule.floor_sigma2 * (1 + 1e-6)):
            why = "at the variance floor"
            msg = (f"component {j}: σ² pinned at the variance floor {rule.floor_sigma2:.3g} "
                   f"({n_eff:.3g} effective rows): a spurious optimum")
        if (why is None and rule.spikes and rule.resolution_sigma2
                and params.sigma2[j] < rule.resolution_sigma2):
            why = "below the resolution of y"
            msg = (f"component {j}: σ = {np.sqrt(params.sigma2[j]):.3g} below the resolution "
                   f"of y, δ/√12 = {np.sqrt(rule.resolution_sigma2):.3g} ({n_eff:.3g} effective "
                   "rows on a line of grid points): a spurious optimum")
        if why is None and weights[j] < rule.min_weight:
            why = "small weight"
            msg = f"component {j}: weight {weights[j]:.3g} < min_weight {rule.min_weight:g}"
        if why is not None:
            found.append(Degeneracy(j, why, msg, n_eff, float(weights[j]), r))
    return found


def is_degenerate(params: MixtureParams, stats: SuffStats, rule: DegeneracyRule) -> bool:
    """Whether any component of ``params`` is degenerate (:func:`find_degenerate`)."""
    return bool(find_degenerate(params, stats, rule))


def pooled_ols_variance(Xd: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """σ²_OLS: the ML residual variance Σw r² / Σw of one weighted least-squares fit.

    The coefficients come from the p × p normal equations (least squares on
    the Gram matrix, so a rank-deficient design is fine) and the residuals
    from the rows: at the least-squares minimum an error δ in the
    coefficients changes Σw r² only by δᵀ XᵀWX δ, so this is as accurate as a
    QR solve at a fraction of its cost (one pass over the sample).
    """
    if w is not None:
        w = np.asarray(w, dtype=float)
    Xw = Xd if w is None else Xd * w[:, None]  # unit weights: no multiplying by ones
    coef, *_ = np.linalg.lstsq(Xw.T @ Xd, Xw.T @ y, rcond=None)
    sq = (y - Xd @ coef) ** 2
    if w is None:
        return float(np.sum(sq) / max(float(y.size), 1e-300))
    return float(np.sum(w * sq) / max(float(np.sum(w)), 1e-300))


#: The rational grids :func:`recording_step` tries below a decimal unit u:
#: δ = u 10^j / k for j = 1..6 and k = 2..100 (seconds are 1/60 of a minute,
#: inches 1/12 of a foot, ounces 1/16 of a pound, hours 1/24 of a day).
GRID_DIVISORS = range(2, 101)
GRID_DECADES = range(1, 7)
#: A coarser grid is taken only when data that fill the unit grid at random
#: would lie in its tolerance bands with a probability below this.
GRID_EVIDENCE = 1e-9


#: :func:`recording_step` first looks at this many values of a longer y: when they are
#: continuous, so is all of y (the sort of every value is skipped).
STEP_PROBE_ROWS = 16_384


def _continuous(y: np.ndarray) -> bool:
    """Whether some gap between distinct finite values of ``y`` (at least 3) is at most
    1e-7 of their range.  Then the same holds for any superset of the values: its
    smallest gap is no larger and its range no smaller (:func:`recording_step` is 0)."""
    v = np.unique(y)
    v = v[np.isfinite(v)]
    return v.size >= 3 and float(np.diff(v).min()) <= 1e-7 * float(v[-1] - v[0])


def recording_step(y: np.ndarray, rtol: float = 1e-9) -> float:
    """δ, the step to which ``y`` is recorded; 0 for continuous data.

    First the unit u: the largest step of which every gap between distinct
    values is a whole multiple (a float greatest common divisor, to ``rtol``
    × max |y|), then checked on every value (the pairwise search lets rounding
    errors add up: 300 normal draws gave a "step" of 1.06e-6); 0 when there
    is none above 1e-7 of the range or fewer than 3 distinct values.

    Then a coarser grid printed to that unit, as seconds written in minutes
    to 3 decimals (R's ``faithful``: u = 0.001, δ = 1/60): the largest
    δ = u 10^j / k (j = 1..6, k = 2..100, δ ≥ 3u) such that every value is
    less than u away from a whole multiple of δ (rounded or truncated to the
    unit; in centred data the multiples are shifted to a point of the unit
    grid, the one nearest the values' circular mean phase), provided that
    (2u/δ)^N < 1e-9 for the N distinct values -- a multiple of δ has at most
    2 points of the unit grid within u, so values filling the unit grid at
    random would pass with at most that probability (mathematics page, §1.9).

    Examples: petal widths in tenths give 0.1, counts 1, faithful's eruption
    times 1/60, a double-precision simulation 0.  The result scales with y.
    """
    y = np.asarray(y, dtype=float)
    if y.size > 2 * STEP_PROBE_ROWS and _continuous(y[:STEP_PROBE_ROWS]):
        return 0.0
    v = np.unique(y)
    v = v[np.isfinite(v)]
    if v.size < 3:
        return 0.0
    tol = rtol * max(float(np.abs(v).max()), 1e-300)
    spread = float(v[-1] - v[0])
    gaps = np.diff(v)
    step = float(gaps.min())
    if step <= 1e-7 * spread:  # continuous data: the step only shrinks, so no grid
        return 0.0
    for gap in np.unique(gaps):
        while step > 1e-7 * spread:
            rem = float(gap) % step
            if min(rem, step - rem) <= tol * (1 + gap / step):
                break
            gap, step = step, rem if rem > tol else step - rem
        if step <= 1e-7 * spread:
            return 0.0
    # the pairwise test lets rounding errors add up: every value must be on the grid
    r = v - v[0]
    if np.abs(r - np.round(r / step) * step).max() > 1e-3 * step + tol:
        return 0.0
    return _coarser_grid(v, step, tol)


def _coarser_grid(v: np.ndarray, unit: float, tol: float) -> float:
    """The grid of :func:`recording_step` printed to ``unit`` (sorted distinct
    ``v``), or ``unit`` itself when none has the evidence.

    The candidates (coarsest first) are tested on a few values all at once,
    then one by one on every value, in the same order and with the same
    arithmetic as one at a time."""
    ratios = _GRID_RATIOS
    enough = np.log(1 / GRID_EVIDENCE) / v.size  # log(δ / 2u) needed per value
    ratios = ratios[: int(np.count_nonzero(np.log(ratios / 2) >= enough))]  # finer: less
    head = v[:: max(1, v.size // 32)]  # most candidates fail on a few values
    # a unit-grid point is a multiple of u/k from a multiple of δ: below u means at
    # most u (1 - 1/k); u itself (a value a whole unit off) is outside
    band = unit * (1 - 0.5 / GRID_DIVISORS[-1])
    delta = unit * ratios
    # the grid through 0, or (centred data) through the point of the unit grid
    # v[0] + u Z nearest the circular mean phase of the values
    phase = np.angle(np.exp(2j * np.pi * head / delta[:, None]).mean(axis=1)) * delta \
        / (2 * np.pi)
    shifts = np.column_stack([np.zeros_like(delta),
                              v[0] + np.round((phase - v[0]) / unit) * unit])
    r = head - shifts[:, :, None]  # (ratio, shift, value)
    on_head = ~(np.abs(r - np.round(r / delta[:, None, None]) * delta[:, None, None])
                .max(axis=2) >= band)
    for i, j in zip(*np.nonzero(on_head), strict=True):  # ratio-major, as the loop
        r = v - shifts[i, j]
        if not np.abs(r - np.round(r / delta[i]) * delta[i]).max() >= band:
            return float(delta[i])
    return unit


#: The ratios δ / u of :func:`_coarser_grid`, coarsest first.
_GRID_RATIOS = np.array(sorted({10**j / k for j in GRID_DECADES for k in GRID_DIVISORS
                                if 10**j % k and 10**j / k >= 3}, reverse=True))


def rule_for_data(Xd: np.ndarray, y: np.ndarray, noise: str = "per_component",
                  w: np.ndarray | None = None, **thresholds) -> DegeneracyRule:
    """The :class:`DegeneracyRule` of a fit of ``y`` on the design ``Xd`` (intercept
    column included): σ_OLS from the data, spikes only for per-component noise,
    other thresholds as given (defaults otherwise)."""
    return DegeneracyRule(pooled_sigma2=pooled_ols_variance(Xd, y, w),
                          spikes=noise == "per_component", **thresholds)


def best_nondegenerate(results, rule: DegeneracyRule, n_components: int):
    """The result to keep among restarts, and the spurious optimum passed over.

    Parameters
    ----------
    results : sequence of EMResult or None
        One per run (None for culled runs).
    rule : DegeneracyRule
    n_components : int
        The number of components asked for.

    Returns
    -------
    best : EMResult or None
        The highest objective among results that kept ``n_components`` and
        are not degenerate at their final point; failing that, among the
        non-degenerate ones; failing that, among all.
    passed_over : dict or None
        The highest log-likelihood above ``best``'s reached with a degenerate
        component -- a degenerate final point, or a point where a spike was
        re-seeded or dropped -- as ``loglik``, ``run``, ``iteration``,
        ``n_components`` and ``reasons``; None when there is none.
    """
    scored, spurious = [], []
    for run, res in enumerate(results):
        if res is None:
            continue
        found = find_degenerate(res.params, res.stats, rule)
        full = res.params.n_components == n_components
        scored.append(((not found) * (1 + full), res.objective, -run, res))
        if found:
            spurious.append({"loglik": float(res.loglik), "run": run,
                             "iteration": int(res.n_iter),
                             "n_components": res.params.n_components,
                             "reasons": [d.message for d in found]})
        seen = getattr(res, "passed_over", None)
        spurious_words = ("spike", "floor", "resolution")
        if seen is not None and any(w in r for r in seen["reasons"] for w in spurious_words):
            spurious.append({**seen, "run": run})
    if not scored:
        return None, None
    best = max(scored, key=lambda t: t[:3])[3]
    higher = [s for s in spurious if s["loglik"] > best.loglik + 1e-9 * abs(best.loglik)]
    passed = max(higher, key=lambda s: s["loglik"]) if higher else None
    return best, passed
