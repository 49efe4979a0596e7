"""The default start pool: many cheap starts when a pass over the sample is cheap.

On small and medium data (the sample the starts are computed on is small,
typically because it holds every row), EM from a handful of starts often
stops at a local optimum that R's flexmix (20 random partitions) or mixtools
(20 seeds) gets past.  There a pass costs microseconds, so the pool tries
hundreds of starts, with a budget of work proportional to
``n_rows × n_components`` (:func:`pool_size`):

1. **Starts** (:func:`~streammix.algorithms.start.pool_starts.pool_starts`), a
   third flexmix's random partitions (each row's label drawn uniformly,
   responsibilities 0.9 / 0.1, one M-step), a sixth each of: mixtools'
   ``regmix.init`` (random weights, rows sorted by y cut into bins of those
   sizes, least squares per bin, coefficients jittered by their sampling
   distribution, σ_j = 1/Exp(rate ŝ_j)); the same on pooled-OLS residuals;
   outlier splits (the rows worst explained by least squares become a
   component); and random lines (least squares through p + 1 random rows, every
   other one concentrated on the rows closest to it by C-steps).
2. **Short runs, both noise models**: every start runs ``SHORT_ITER``
   (up to twice as many when the budget is left over at ``MAX_POOL``
   starts, :func:`~streammix.algorithms.start.pool_budget.short_iterations`)
   EM iterations under the fit's noise model and, for per-component or
   shared noise, also under the other one
   (:func:`~streammix.algorithms.start.population.population_em`, all runs
   at once); a quarter of each (up to half on small samples,
   :func:`~streammix.algorithms.start.pool_budget.survivor_count`) continues
   for 3 × as many iterations; the other model's survivors are converted (a
   shared σ² = Σ π_j σ_j² from per-component ones; per-component σ's start
   at the shared one) and run under the fit's model.  Half the survivors of
   each stage are the best runs that pass the degeneracy test
   (:func:`degenerate_runs`), half the best that pass only its lenient form
   (small components still forming; spikes pinned at the floor never pass);
   at the first cut (:func:`first_cut_runs`) the forming half's unused places
   go to more identified runs, and an eighth more continue: those that
   climbed fastest in the last short iteration.
3. **Finalists**: the best distinct survivors of both kinds (4 each, up to 64
   on small samples, :func:`~streammix.algorithms.start.pool_budget.finalist_count`,
   and a quarter more)
   run ``LONG_ITER`` more stacked iterations (up to 4 × as many,
   :func:`~streammix.algorithms.start.pool_budget.long_iterations`).
4. **Exchange** (:mod:`streammix.algorithms.start.moves`): from the best
   distinct finalists, identified ones and spikes, starts one row away (a
   row's posterior moved to another component) run a few iterations, and
   the best distinct identified ones ``LONG_ITER`` more; up to
   ``EXCHANGE_ROUNDS`` rounds, each from finalists not yet expanded.  It
   finds optima with a small component of about as many rows as parameters,
   next to a spike or to a partition one row off, that no start reaches.
5. **Full runs**: down the list of the best distinct identified finalists
   (at most ``MAX_FULL``) until ``N_FULL`` end non-degenerate, plus the best
   forming one and the extra starts, each run by the estimator's own EM
   (SQUAREM, with its priors and options) to convergence on the sample --
   to a tight tolerance when the sample holds all the rows, so that EM on
   the data only confirms the optimum -- and the best non-degenerate result
   is the start.  If every run degenerates, the standard candidates are
   used.

The stacked runs work on the design in orthogonal coordinates
(:func:`orthonormal_design`): the guard of their M-step's solves, a ridge of
1e-10 of the trace, is then negligible, where on raw columns of very
different scales it moved a small component off its fixed point.

On large data the budget allows fewer than ``MIN_POOL`` starts and the
pool is not used: the starts are the standard candidates, refined on the
sample (:func:`streammix.algorithms.start.initial.initial_params`), and the
cost stays bounded in passes.  The sizes are in
:mod:`streammix.algorithms.start.pool_budget`.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from streammix.algorithms.degeneracy import find_degenerate, is_degenerate
from streammix.algorithms.start.candidates import ols
from streammix.algorithms.start.moves import row_moves
from streammix.algorithms.start.pool_budget import (
    EXCHANGE_ROUNDS,
    GAIN_SHARE,
    LONG_ITER,
    MAX_FULL,
    MAX_POOL,
    MIN_POOL,
    N_FINALISTS,
    N_FORMING,
    N_FULL,
    POOL_BUDGET,
    exchange_moves,
    finalist_count,
    long_iterations,
    pool_size,
    short_iterations,
    survivor_count,
)
from streammix.algorithms.start.pool_starts import pool_starts
from streammix.algorithms.start.population import (
    Population,
    concat,
    population_em,
    unstack,
)

__all__ = ["POOL_BUDGET", "MIN_POOL", "MAX_POOL", "pool_size", "orthonormal_design",
           "degenerate_runs", "first_cut_runs", "pool_search"]

logger = logging.getLogger(__name__)

#: Degeneracy rule of the short runs (see :func:`degenerate_runs`).
SPIKE_ROWS_FACTOR = 3
SPIKE_SIGMA2_RATIO = 0.01


def orthonormal_design(Xd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Xq, T)``: the design in orthogonal coordinates, ``Xq = Xd T`` with
    ``Xqᵀ Xq = n I`` (``T = √n R⁻¹`` from ``Xd = QR``), and ``T``.

    Fitted values, and so every log-likelihood and posterior, are the same in
    both coordinates (β = T β_q).  The stacked M-step guards its solves with a
    ridge of 1e-10 of each Gram matrix's trace; on raw columns of very
    different scales (incomes in thousands beside shares in percent) that
    ridge moved the coefficients of a component of a dozen rows enough to
    leave a true fixed point of EM (LifeCycleSavings, stackloss), so the pool
    never found it.  In orthogonal coordinates every Gram matrix is as well
    conditioned as its rows allow and the guard is negligible.
    """
    n, p = Xd.shape
    _, r = np.linalg.qr(Xd)
    diag = np.abs(np.diag(r))
    if p == 0 or diag.min() <= 1e-12 * max(diag.max(), 1e-300):
        return Xd, np.eye(p)  # rank-deficient design: keep the raw coordinates
    t = np.linalg.solve(r, np.eye(p)) * np.sqrt(n)
    return Xd @ t, t


def _to_raw(params, t: np.ndarray):
    """``params`` (orthogonal coordinates) with β = T β_q."""
    from streammix.core.params import MixtureParams

    return MixtureParams(params.weights, params.beta @ t.T, params.sigma2)


def degenerate_runs(pop: Population, p: int, pooled: float, floor: float,
                    noise: str, lenient: bool = False, resolution: float = 0.0) -> np.ndarray:
    """Which runs of ``pop`` are degenerate: a component with fewer effective rows
    than p + 1 (its regression and σ are not identified), or, with per-component
    noise, a spike -- fewer than ``3 (p + 1)`` effective rows with σ² below 1% of
    the pooled OLS residual variance or at the floor.

    ``lenient`` is the test of the short runs, which are not converged: a run on
    its way to a small but identified component may pass below p + 1 rows or
    through a small σ, so only fewer than (p + 1) / 2 rows, or a spike with σ² at
    the floor, count.  With per-component noise, a σ² pinned at the floor or
    below ``resolution`` (δ²/12 for y recorded to a step δ) is degenerate at
    any row count (the choice rule,
    :attr:`~streammix.algorithms.em.EMSettings.choice_rule`).
    """
    min_rows = (p + 1) / 2 if lenient else p + 1
    bad = (pop.n_eff < min_rows).any(axis=1) | ~np.isfinite(pop.loglik)
    if noise == "per_component":
        at_floor = (pop.sigma2 <= floor * 1.0001) | (pop.sigma2 < resolution)
        small_sigma = at_floor if lenient else (pop.sigma2 < SPIKE_SIGMA2_RATIO * pooled) | at_floor
        bad |= ((pop.n_eff < SPIKE_ROWS_FACTOR * (p + 1)) & small_sigma).any(axis=1)
        bad |= at_floor.any(axis=1)  # pinned at the floor by tied y values, or on grid points
    return bad


def first_cut_runs(loglik: np.ndarray, gain: np.ndarray, strict: np.ndarray,
                   loose: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the runs that continue after the first short runs.

    ``keep`` runs by log-likelihood: the best that pass the strict degeneracy
    test (``strict`` is True for those that fail it), half of ``keep`` or more,
    and the best that pass only its lenient form (``loose``: fail it) in the
    other half -- when fewer runs are forming than that half, its places go to
    more identified runs (prestige k=2 seed 10: the run bound for the best
    optimum was 108th of the identified ones, 97 were kept and 5 forming ones
    beside them).  Then ``keep // GAIN_SHARE`` more: of the runs not kept that
    pass the lenient test, those whose log-likelihood rose most in the last
    iteration (``gain``).  On a hundred rows a run bound for the best sensible
    optimum can still rank low after a few iterations while it climbs faster
    than most runs above it, bound for lesser optima or spikes (airquality
    k=3: 288th of 359).
    """
    n_clean = min(keep // 2, int((~strict & np.isfinite(loglik)).sum()))
    forming = _order(loglik, keep - n_clean, loose | ~strict)
    clean = _order(loglik, keep - forming.size, strict)
    chosen = np.concatenate([clean, forming])
    rest = loose.copy()
    rest[chosen] = True
    return np.concatenate([chosen, _order(gain, keep // GAIN_SHARE, rest)])


def _order(score: np.ndarray, keep: int, bad: np.ndarray) -> np.ndarray:
    """Indices of the ``keep`` highest finite ``score`` not ``bad``, best first."""
    score = np.where(bad, -np.inf, score)
    order = np.argsort(-score, kind="stable")[:keep]
    return order[np.isfinite(score[order])]


def _best(pop: Population, keep: int, bad: np.ndarray) -> Population:
    return pop.take(_order(pop.loglik, keep, bad))


def _convert(pop: Population, noise: str) -> Population:
    """Survivors of the other noise model as starts for ``noise``."""
    if noise == "shared":
        s2 = (pop.weights * pop.sigma2).sum(axis=1, keepdims=True)
        sigma2 = np.repeat(s2, pop.weights.shape[1], axis=1)
    else:
        sigma2 = pop.sigma2.copy()
    return Population(pop.weights, pop.beta, sigma2, pop.loglik, pop.n_eff)


def pool_search(Xd: np.ndarray, y: np.ndarray, m: int, size: int, *, settings,
                rng: np.random.Generator, run_full, extra=(),
                w: np.ndarray | None = None) -> object | None:
    """Run the pool of ``size`` starts on the sample ``(Xd, y)``; the best start.

    Parameters
    ----------
    settings : EMSettings
        The fit's settings (noise model, floor, ridge).
    run_full : callable
        ``run_full(params) -> EMResult``: the estimator's EM on the sample.
    extra : sequence of MixtureParams
        Further starts that go straight to the full runs (the standard
        candidates' winner).
    w : ndarray, optional
        Row weights of the sample (None: unit), used by every run.

    Returns
    -------
    EMResult or None
        The best non-degenerate full run, or None when every run degenerated.
    """
    options = settings.mstep
    noise = options.noise
    n, p = Xd.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    _, pooled = ols(Xd, y, w)
    floor = options.variance_floor
    resolution = getattr(settings, "resolution_sigma2", None) or 0.0
    Xd, t = orthonormal_design(Xd)  # the stacked runs work in orthogonal coordinates
    penalty = t.T @ options.penalty_matrix(p) @ t if options.ridge > 0 else None
    fixed = options.fixed_sigma2
    cross = noise in ("per_component", "shared")
    other = "shared" if noise == "per_component" else "per_component"
    starts = pool_starts(Xd, y, m, size, rng, options, penalty=penalty)

    def em(pop, n_iter, model, tol=0.0, trace=None):
        return population_em(Xd, y, w, pop, n_iter=n_iter, noise=model, floor=floor,
                             penalty=penalty, fixed_sigma2=fixed, tol=tol, trace=trace)

    settled = 1e-10 * max(n, 100)  # the long stages stop when every run has settled

    def survivors(pop, model, keep, lenient=True):
        """The best ``keep`` runs: half that pass the strict test, and (if
        ``lenient``) the others from those that pass only the lenient one."""
        strict = degenerate_runs(pop, p, pooled, floor, model, resolution=resolution)
        if not lenient:
            return _best(pop, keep, strict)
        clean = _best(pop, keep // 2, strict)
        loose = degenerate_runs(pop, p, pooled, floor, model, lenient=True,
                                resolution=resolution)
        forming = _best(pop, keep - clean.size, loose | ~strict)
        return concat([clean, forming])

    def _exchange(finalists, count, n_iter, expanded):
        """The best distinct identified finalists not expanded yet (their
        log-likelihoods are in ``expanded``), each one row away (the exchange
        step, :mod:`~streammix.algorithms.start.moves`): ``count`` moves run
        ``n_iter`` iterations, the best distinct identified ones LONG_ITER more."""
        strict = degenerate_runs(finalists, p, pooled, floor, noise, resolution=resolution)
        gap = 1e-5 * max(n, 100)
        fresh = np.array([all(abs(ll - e) > gap for e in expanded) for ll in finalists.loglik],
                         dtype=bool)
        # from identified runs, and from spikes: a row moved into a spike may
        # widen it into a small identified component
        tops = [_best(finalists, finalists.size, bad | ~fresh) for bad in (strict, ~strict)]
        top = concat([pop.take(_distinct(pop, N_FINALISTS, n)) for pop in tops])
        expanded.extend(float(ll) for ll in top.loglik)
        moved = em(row_moves(Xd, y, w, top, count, rng, noise=noise, floor=floor,
                             penalty=penalty, fixed_sigma2=fixed), n_iter, noise)
        moved = survivors(moved, noise, moved.size, lenient=False)
        moved = em(moved.take(_distinct(moved, N_FINALISTS, n)), LONG_ITER, noise, settled)
        # only identified results join the finalists: a spike widened by one row
        # that shrinks back is not a forming component
        return survivors(moved, noise, moved.size, lenient=False)

    def first_cut(model, keep):
        """The short runs of every start under ``model``, and the runs that continue
        (:func:`first_cut_runs`)."""
        trace: list[np.ndarray] = []
        pop = em(starts, short, model, trace=trace)
        strict = degenerate_runs(pop, p, pooled, floor, model, resolution=resolution)
        loose = degenerate_runs(pop, p, pooled, floor, model, lenient=True,
                                resolution=resolution)
        return pop.take(first_cut_runs(pop.loglik, trace[-1] - trace[-2], strict, loose,
                                       keep))

    short = short_iterations(n, m, cross, size)
    keep = survivor_count(n, m, cross, size, short)
    with np.errstate(all="ignore"):
        mine = em(first_cut(noise, keep), 3 * short, noise)
        groups = [mine]
        if cross:
            theirs = em(first_cut(other, keep), 3 * short, other)
            theirs = survivors(theirs, other, keep)
            groups.append(em(_convert(theirs, noise), 3 * short, noise))
        merged = concat(groups)
        spurious = _best(merged, 1, ~degenerate_runs(merged, p, pooled, floor, noise,
                                                     resolution=resolution))
        # the best distinct runs that look identified already, and as many of those
        # that only pass the lenient test (small components still forming)
        clean = survivors(merged, noise, merged.size, lenient=False)
        forming = survivors(merged, noise, merged.size)
        forming = forming.take(degenerate_runs(forming, p, pooled, floor, noise,
                                                      resolution=resolution))
        # a quarter more than the budget's count: the first cut keeps more
        # identified runs, which would crowd out a finalist bound for the best
        # optimum (npreg k=3 seed 1: 37th)
        n_final = finalist_count(n, m) * 5 // 4
        parts = [pop.take(_distinct(pop, n_final, n)) for pop in (clean, forming)]
        finalists = concat(parts)
        logger.debug("start pool: %d starts; %d + %d finalists", size, parts[0].size,
                     parts[1].size)
        finalists = em(finalists, long_iterations(n, m, finalists.size), noise, settled)
        expanded: list[float] = []
        moves = exchange_moves(n, m, size, 2 * short)
        for _ in range(EXCHANGE_ROUNDS):
            found = _exchange(finalists, moves, 2 * short, expanded)
            if not found.size:
                break
            finalists = concat([finalists, found])
        strict = degenerate_runs(finalists, p, pooled, floor, noise, resolution=resolution)
        loose = degenerate_runs(finalists, p, pooled, floor, noise, lenient=True,
                                resolution=resolution)
        clean = _best(finalists, finalists.size, strict)
        forming = _best(finalists, finalists.size, loose | ~strict)
    def full(start):
        """The full run from ``start`` (raw coordinates), or None when it ends
        degenerate or collapsed."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_full(start)
        if res.params.n_components != m or _degenerate_result(
                res, settings.choice_rule, p, pooled, floor, noise, resolution):
            return None
        return res

    # the best distinct identified finalists, down the list until N_FULL of them
    # end non-degenerate (a run just above the spike test may still end a spike),
    # then the best forming ones and the extra starts
    results, tried = [], 0
    for i in _distinct(clean, MAX_FULL, n):
        tried += 1
        res = full(_to_raw(unstack(clean, i), t))
        if res is not None:
            results.append(res)
            if len(results) == N_FULL:
                break
    starts = [_to_raw(unstack(forming, i), t) for i in _distinct(forming, N_FORMING, n)]
    starts += list(extra)
    tried += len(starts)
    results += [full(start) for start in starts]
    best = None
    for res in results:
        if res is not None and (best is None or res.objective > best.objective):
            best = res
    logger.debug("start pool: %d starts, %d full runs, best %s", size, tried,
                 None if best is None else f"{best.loglik:.10g}")
    if best is not None and spurious.size and spurious.loglik[0] > best.loglik:
        _note_passed_over(best, run_full(_to_raw(unstack(spurious, 0), t)),
                          settings.choice_rule)
    return best


def _note_passed_over(best, res, rule) -> None:
    """Record on ``best`` (its ``passed_over``) the degenerate optimum ``res`` when it
    is higher: the best degenerate run of the pool, run to convergence."""
    found = find_degenerate(res.params, res.stats, rule) if rule is not None else []
    if not found or not res.loglik > best.loglik:
        return
    if best.passed_over is None or res.loglik > best.passed_over["loglik"]:
        best.passed_over = {"loglik": float(res.loglik), "iteration": int(res.n_iter),
                            "n_components": res.params.n_components,
                            "reasons": [d.message for d in found]}


def _distinct(pop: Population, k: int, n: int) -> list[int]:
    """Indices of up to ``k`` runs of ``pop`` (sorted best first) whose
    log-likelihoods differ by more than 1e-3 per 100 rows: distinct basins."""
    chosen: list[int] = []
    gap = 1e-5 * max(n, 100)
    for i in range(pop.size):
        if all(abs(pop.loglik[i] - pop.loglik[j]) > gap for j in chosen):
            chosen.append(i)
        if len(chosen) == k:
            break
    return chosen


def _degenerate_result(res, rule, p, pooled, floor, noise, resolution=0.0) -> bool:
    """Whether a full run ended degenerate: the estimator's rule
    (:func:`~streammix.algorithms.degeneracy.find_degenerate`) when the
    settings carry one, else the rule of :func:`degenerate_runs`."""
    if rule is not None and rule.pooled_sigma2 is not None:
        return is_degenerate(res.params, res.stats, rule)
    stats = res.stats
    rows_per_weight = stats.n_rows / stats.sum_w
    pop = Population(res.params.weights[None], res.params.beta[None],
                     res.params.sigma2[None], np.array([res.loglik]),
                     (stats.s0 * rows_per_weight)[None])
    return bool(degenerate_runs(pop, p, pooled, floor, noise, resolution=resolution)[0])
