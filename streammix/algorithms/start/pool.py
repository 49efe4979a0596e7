"""The default start pool: many cheap starts when a pass over the sample is cheap.

On small and medium data (the sample the starts are computed on is small,
typically because it holds every row), EM from a handful of starts often
stops at a local optimum that R's flexmix (20 random partitions) or mixtools
(20 seeds) gets past.  There a pass costs microseconds, so the pool tries
hundreds of starts, with a budget of work proportional to
``n_rows × n_components`` (:func:`pool_size`):

1. **Starts** (:func:`pool_starts`), a third flexmix's random partitions
   (each row's label drawn uniformly, responsibilities 0.9 / 0.1, one
   M-step), a sixth each of: mixtools' ``regmix.init`` (random weights, rows
   sorted by y cut into bins of those sizes, least squares per bin,
   coefficients jittered by their sampling distribution, σ_j = 1/Exp(rate
   ŝ_j)); the same on pooled-OLS residuals; outlier splits (the rows worst
   explained by least squares become a component); and random lines (least
   squares through p + 1 random rows, every other one concentrated on the
   rows closest to it by C-steps).
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
   (small components still forming; spikes pinned at the floor never pass).
3. **Finalists**: the best distinct survivors of both kinds (4 each, up to 64
   on small samples, :func:`~streammix.algorithms.start.pool_budget.finalist_count`)
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

import dataclasses
import logging
import warnings

import numpy as np

from streammix.algorithms.degeneracy import find_degenerate, is_degenerate
from streammix.algorithms.start.candidates import ols
from streammix.algorithms.start.moves import row_moves
from streammix.algorithms.start.pool_budget import (
    EXCHANGE_ROUNDS,
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
from streammix.algorithms.start.population import (
    Population,
    population_em,
    population_mstep,
    unstack,
)

__all__ = ["POOL_BUDGET", "MIN_POOL", "MAX_POOL", "pool_size", "orthonormal_design",
           "pool_starts", "degenerate_runs", "pool_search"]

logger = logging.getLogger(__name__)

#: Degeneracy rule of the short runs (see :func:`degenerate_runs`).
SPIKE_ROWS_FACTOR = 3
SPIKE_SIGMA2_RATIO = 0.01


def pool_starts(Xd: np.ndarray, y: np.ndarray, m: int, size: int, rng: np.random.Generator,
                options, penalty: np.ndarray | None = None) -> Population:
    """``size`` unrefined starts, stacked: a third random partitions, a sixth each
    y bins, residual bins, outlier splits and random lines (see the module notes).
    ``penalty`` is the ridge matrix on the design ``Xd`` (None: the options' own)."""
    n, p = Xd.shape
    n_random, n_bins, n_split = size // 3, size // 6, size // 6
    n_lines = size - n_random - 2 * n_bins - n_split
    coef, pooled = ols(Xd, y, np.ones(n))
    fixed = options.fixed_sigma2
    if penalty is None and options.ridge > 0:
        penalty = options.penalty_matrix(p)

    def mstep_from(resp):
        return population_mstep(Xd, y, np.ones(n), resp, noise=options.noise,
                                floor=options.variance_floor, penalty=penalty,
                                fixed_sigma2=fixed)

    # flexmix: a uniform random label per row, posteriors 0.9 / 0.1
    labels = rng.integers(m, size=(n_random, n))
    resp = np.full((n_random, m, n), 0.1 / max(m - 1, 1))
    np.put_along_axis(resp, labels[:, None, :], 0.9, axis=1)
    parts = [mstep_from(resp)]
    # mixtools' regmix.init on y, then on pooled-OLS residuals
    for key in (y, y - Xd @ coef):
        parts.append(_bin_starts(Xd, key, m, n_bins, rng, mstep_from, options))
    parts.append(_split_starts(Xd, y, m, n_split, rng, mstep_from))
    parts.append(_random_lines(Xd, y, m, n_lines, rng, pooled))
    if fixed is not None:
        for part in parts:
            part.sigma2[:] = np.asarray(fixed, float)
    return _concat(parts)


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


def _concat(parts) -> Population:
    return Population(*(np.concatenate([getattr(part, f.name) for part in parts])
                        for f in dataclasses.fields(Population)))


def _bin_starts(Xd, key, m, count, rng, mstep_from, options) -> Population:
    """mixtools' ``regmix.init``: random weights λ (at least 4 rows a bin), the rows
    sorted by ``key`` cut into bins of sizes λ n, least squares per bin, then
    β_j ~ N(β̂_j, ŝ_j² diag((XᵀX)⁻¹)) and σ_j = 1 / Exp(rate ŝ_j)."""
    n, p = Xd.shape
    lam = rng.random((count, m))
    lam /= lam.sum(axis=1, keepdims=True)
    sizes = np.maximum(np.round(lam * n), min(4, n // m)).astype(np.int64)
    sizes[:, -1] = n - sizes[:, :-1].sum(axis=1)
    bad = sizes[:, -1] < min(4, n // m)
    sizes[bad] = n // m
    sizes[bad, -1] = n - (m - 1) * (n // m)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(key, kind="stable")] = np.arange(n)
    edges = np.cumsum(sizes, axis=1)  # (count, m)
    labels = (rank[None, :, None] >= edges[:, None, :]).sum(axis=2)  # (count, n)
    labels = np.minimum(labels, m - 1)
    resp = np.zeros((count, m, n))
    np.put_along_axis(resp, labels[:, None, :], 1.0, axis=1)
    pop = mstep_from(resp)
    dof = np.maximum(sizes - p, 1)
    s_hyp = np.sqrt(np.maximum(pop.sigma2 * sizes / dof, 1e-300))
    sd = np.sqrt(np.maximum(np.diag(np.linalg.pinv(Xd.T @ Xd)), 0.0))
    pop.beta += rng.standard_normal(pop.beta.shape) * s_hyp[..., None] * sd
    if options.noise == "shared":
        s_hyp = np.repeat(s_hyp.mean(axis=1, keepdims=True), m, axis=1)
        sigma = np.repeat(1.0 / rng.exponential(1.0 / s_hyp[:, :1]), m, axis=1)
    else:
        sigma = 1.0 / rng.exponential(1.0 / s_hyp)  # numpy's scale = 1 / rate
    pop.sigma2[:] = np.maximum(sigma**2, options.variance_floor)
    pop.weights[:] = lam
    return pop


def _split_starts(Xd, y, m, count, rng, mstep_from) -> Population:
    """Outlier splits: the rows worst explained by least squares on the rows left
    (a random share between (p + 1) / n and one half, by absolute residual) become a
    component, m − 1 times; least squares per component.  Finds small components
    of outlying rows that random partitions almost never isolate."""
    n, p = Xd.shape
    labels = np.full((count, n), m - 1, dtype=np.int64)
    low = min(0.5, (p + 1) / max(n, 1))
    for i in range(count):
        rest = np.arange(n)
        for j in range(m - 1):
            if rest.size <= 2 * (p + 1):
                break
            coef = np.linalg.lstsq(Xd[rest], y[rest], rcond=None)[0]
            size = int(round(rng.uniform(low, 0.5) * rest.size))
            size = min(max(size, p + 1), rest.size - (p + 1))
            worst = np.argsort(-np.abs(y[rest] - Xd[rest] @ coef), kind="stable")[:size]
            labels[i, rest[worst]] = j
            rest = np.delete(rest, worst)
    resp = np.zeros((count, m, n))
    np.put_along_axis(resp, labels[:, None, :], 1.0, axis=1)
    return mstep_from(resp + 1e-9)


def _random_lines(Xd, y, m, count, rng, pooled, c_steps: int = 3) -> Population:
    """``count`` starts of m lines each: least squares through p + 1 random rows,
    then, for every other start, ``c_steps`` concentration steps (least squares on
    the h rows closest to the line, h random between 2 (p + 1) and n / m; the
    C-steps of least trimmed squares, Rousseeuw & Van Driessen 2006), which
    lock onto tight subgroups of rows."""
    n, p = Xd.shape
    k = min(n, p + 1)
    lines = count * m
    rows = np.argsort(rng.random((lines, n)), axis=1)[:, :k]
    Xs, ys = Xd[rows], y[rows]  # (lines, k, p), (lines, k)
    beta = _solve(np.einsum("rki,rkj->rij", Xs, Xs), np.einsum("rki,rk->ri", Xs, ys))
    sigma2 = np.full(lines, max(pooled, 1e-300))
    trimmed = (np.arange(count) % 2 == 1).repeat(m)
    if trimmed.any() and n > 2 * (p + 1):
        XX = (Xd[:, :, None] * Xd[:, None, :]).reshape(n, p * p)
        Xy = Xd * y[:, None]
        h = rng.integers(2 * (p + 1), max(2 * (p + 1), n // m) + 1, size=int(trimmed.sum()))
        b = beta[trimmed]
        for _ in range(c_steps):
            resid = np.abs(y[None, :] - b @ Xd.T)
            rank = np.argsort(np.argsort(resid, axis=1, kind="stable"), axis=1)
            mask = (rank < h[:, None]).astype(float)
            b = _solve((mask @ XX).reshape(-1, p, p), mask @ Xy)
        rss = (mask * (y[None, :] - b @ Xd.T) ** 2).sum(axis=1)
        beta[trimmed] = b
        sigma2[trimmed] = np.maximum(rss / h, 1e-6 * pooled)
    return Population(np.full((count, m), 1.0 / m), beta.reshape(count, m, p),
                      sigma2.reshape(count, m), np.full(count, -np.inf), np.zeros((count, m)))


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched least-squares normal equations, with a tiny ridge for singular ones."""
    p = gram.shape[-1]
    gram = gram + np.eye(p) * (1e-8 * np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-300)
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


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


def _best(pop: Population, keep: int, bad: np.ndarray) -> Population:
    score = np.where(bad, -np.inf, pop.loglik)
    order = np.argsort(-score, kind="stable")[:keep]
    order = order[np.isfinite(score[order])]
    return pop.take(order)


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

    def em(pop, n_iter, model, tol=0.0):
        return population_em(Xd, y, w, pop, n_iter=n_iter, noise=model, floor=floor,
                             penalty=penalty, fixed_sigma2=fixed, tol=tol)

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
        return _concat([clean, forming])

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
        top = _concat([pop.take(_distinct(pop, N_FINALISTS, n)) for pop in tops])
        expanded.extend(float(ll) for ll in top.loglik)
        moved = em(row_moves(Xd, y, w, top, count, rng, noise=noise, floor=floor,
                             penalty=penalty, fixed_sigma2=fixed), n_iter, noise)
        moved = survivors(moved, noise, moved.size, lenient=False)
        moved = em(moved.take(_distinct(moved, N_FINALISTS, n)), LONG_ITER, noise, settled)
        # only identified results join the finalists: a spike widened by one row
        # that shrinks back is not a forming component
        return survivors(moved, noise, moved.size, lenient=False)

    short = short_iterations(n, m, cross, size)
    keep = survivor_count(n, m, cross, size, short)
    with np.errstate(all="ignore"):
        mine = em(survivors(em(starts, short, noise), noise, keep), 3 * short, noise)
        groups = [mine]
        if cross:
            theirs = em(survivors(em(starts, short, other), other, keep), 3 * short, other)
            theirs = survivors(theirs, other, keep)
            groups.append(em(_convert(theirs, noise), 3 * short, noise))
        merged = _concat(groups)
        spurious = _best(merged, 1, ~degenerate_runs(merged, p, pooled, floor, noise,
                                                     resolution=resolution))
        # the best distinct runs that look identified already, and as many of those
        # that only pass the lenient test (small components still forming)
        clean = survivors(merged, noise, merged.size, lenient=False)
        forming = survivors(merged, noise, merged.size)
        forming = forming.take(degenerate_runs(forming, p, pooled, floor, noise,
                                                      resolution=resolution))
        n_final = finalist_count(n, m)
        parts = [pop.take(_distinct(pop, n_final, n)) for pop in (clean, forming)]
        finalists = _concat(parts)
        logger.debug("start pool: %d starts; %d + %d finalists", size, parts[0].size,
                     parts[1].size)
        finalists = em(finalists, long_iterations(n, m, finalists.size), noise, settled)
        expanded: list[float] = []
        moves = exchange_moves(n, m, size, 2 * short)
        for _ in range(EXCHANGE_ROUNDS):
            found = _exchange(finalists, moves, 2 * short, expanded)
            if not found.size:
                break
            finalists = _concat([finalists, found])
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
