"""The starting values of a run: the candidates of every method, refined, the best kept;
and the re-seeding of a collapsed component.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings

import numpy as np

from streammix.algorithms.em import EMSettings, drive, em_steps
from streammix.algorithms.squarem import squarem_steps
from streammix.algorithms.start.candidates import (
    INIT_METHODS,
    REFINE_CULL_ITER,
    REFINE_ITER,
    REFINE_KEEP,
    REFINE_SIZE,
    REFINE_TOL,
    candidate,
    candidates,
    ols,
)
from streammix.algorithms.start.pool import pool_search, pool_size
from streammix.algorithms.start.spectral import spectral_candidate
from streammix.core.moments import Moments
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep, estep_features, log_responsibilities
from streammix.core.threads import finish, thread_pool

__all__ = ["initial_params", "make_reseeder"]


def initial_params(X: np.ndarray, y: np.ndarray, n_components: int, *, method,
                   fit_intercept: bool, settings: EMSettings, rng: np.random.Generator,
                   n_random: int = 3, refine_iter: int = REFINE_ITER,
                   refine_tol: float = REFINE_TOL,
                   refine_size: int | None = REFINE_SIZE,
                   moments: Moments | None = None, all_rows: bool = False,
                   pool: bool = True, found: list | None = None,
                   w: np.ndarray | None = None, threads: int = 1) -> MixtureParams:
    """Starting values from the in-memory sample ``(X, y)``.

    Parameters
    ----------
    X, y : ndarray
        The reservoir sample (raw features).
    method : str or MixtureParams
        ``"auto"`` tries residual-quantile bins, y-bins (mixtools) and
        ``n_random`` random partitions (flexmix), refines each by
        ``refine_iter`` EM iterations on the sample (stopping early at
        ``refine_tol``) and keeps the best by the sample objective; the other
        names use a single candidate.  When the (subset of the) sample is
        small enough, ``"auto"`` uses the start pool instead
        (:mod:`streammix.algorithms.start.pool`; see ``pool``).  A
        :class:`MixtureParams` is returned as given.
    refine_size : int, optional
        Candidates are built and refined on a random subset of at most this
        many sample rows (drawn with ``rng``); None uses the whole sample.
    moments : Moments, optional
        Pass-0 moments of all the data; ``"spectral"`` needs them (EM in
        the spectral slope subspace, :mod:`streammix.algorithms.start.spectral`).
    all_rows : bool
        Whether ``(X, y)`` holds every row of the data (unit weights): the
        pool's full runs then converge to a tight tolerance, so that EM on
        the data only confirms the optimum.
    pool : bool
        With ``"auto"``, use the start pool (:mod:`streammix.algorithms.start.pool`)
        when the sample is small enough for its budget.
    found : list, optional
        With ``all_rows``, the pool appends to it the higher degenerate optimum
        it passed over (a ``passed_over`` dict of
        :class:`~streammix.algorithms.em.EMResult`), if any.
    w : ndarray, optional
        Weights of the sample rows (None: unit).  Give the data's weights when
        the sample holds every row (``all_rows``); a weighted reservoir sample
        of some rows already draws rows in proportion to their weight.
    threads : int
        Threads on which the refinement's E-steps of different candidates run
        at the same time (each candidate's run is the same as on one thread).
    """
    if isinstance(method, MixtureParams):
        return method
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=float)
    if refine_size is not None and y.size > refine_size:
        keep = np.sort(rng.choice(y.size, size=refine_size, replace=False))
        X, y, w = X[keep], y[keep], w[keep]
    m = n_components
    Xd = design_matrix(X, fit_intercept)
    cross = settings.mstep.noise != "fixed"
    size = pool_size(y.size, m, cross) if method == "auto" and pool else 0
    if size:
        result = _pooled_start(Xd, y, w, m, size, settings, rng, all_rows)
        if result is not None:
            if all_rows and found is not None and result.passed_over is not None:
                found.append(result.passed_over)
            return result.params
    if method == "auto":
        methods = ["resid_bins", "ybins"] + ["random"] * n_random
    elif method in INIT_METHODS:
        methods = [method]
    else:
        raise ValueError(f"unknown init method {method!r}; choose from {INIT_METHODS}")
    if "spectral" in methods and moments is None:
        raise ValueError("init='spectral' needs the pass-0 moments of the data")
    if methods == ["spectral"]:
        cands = [spectral_candidate(X, y, moments, m, settings=settings, rng=rng,
                                    refine_tol=refine_tol)]
    else:  # one sweep of the rows for every candidate's M-step
        cands = candidates(methods, Xd, y, m, rng, settings.mstep)
    if len(methods) > 1 or refine_iter > 0:
        best = _refined_best(cands, _sample_pass(X, y, w, fit_intercept), m, settings,
                             refine_iter, refine_tol, threads)
    else:
        best = cands[0]
    if best is None:  # every refined candidate collapsed: fall back to the first raw one
        first = "random" if methods[0] == "spectral" else methods[0]
        best = candidate(first, Xd, y, m, rng, settings.mstep)
    return best


def _sample_pass(X, y, w, fit_intercept: bool):
    """The E-step on the sample rows, their features transposed once for every pass."""
    FT = np.ascontiguousarray(np.asarray(X, dtype=np.float64).T)
    if fit_intercept:
        return lambda prm: estep_features(FT, y, w, prm, True)
    return lambda prm: estep(X, y, w, prm)


def _refined_best(cands, pass_fn, m: int, settings: EMSettings, refine_iter: int,
                  refine_tol: float, threads: int = 1) -> MixtureParams | None:
    """The best of the candidates ``cands`` by the sample objective after short EM runs
    (``refine_iter`` iterations at most, stopping at ``refine_tol``).

    Every candidate runs :data:`REFINE_CULL_ITER` iterations; then only the best
    :data:`REFINE_KEEP` by the objective go on, each exactly as its run alone
    would.  A candidate that collapsed on the sample is a poor start and is
    left out.  None if every one collapsed.  The runs advance in lock-step, the
    E-steps of one step on up to ``threads`` threads (the compiled E-step
    releases the GIL); the M-steps follow in the candidates' order.
    """
    short = dataclasses.replace(settings, max_iter=refine_iter, tol=refine_tol,
                                on_collapse="drop")
    cull = len(cands) > REFINE_KEEP and refine_iter > REFINE_CULL_ITER
    runs = [_Refining(cand, short) for cand in cands]
    workers = max(1, min(int(threads), len(runs)))
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        pool = stack.enter_context(thread_pool(workers)) if workers > 1 else None
        _advance(runs, pass_fn, REFINE_CULL_ITER + 1 if cull else None, pool)
        if cull:
            ranked = sorted((run for run in runs if run.n_components == m),
                            key=lambda run: -run.objective)
            runs = ranked[:REFINE_KEEP]
            _advance(runs, pass_fn, None, pool)
    best, best_obj = None, -np.inf
    for run in runs:  # in the candidates' order: the first of equal objectives wins
        res = run.result
        if res.params.n_components == m and res.objective > best_obj:
            best, best_obj = res.params, res.objective
    return best


def _advance(runs, pass_fn, n_passes: int | None, pool) -> None:
    """Every run of ``runs`` up to ``n_passes`` more passes (None: to its end), in
    lock-step: each step's passes on ``pool``'s threads (None: here, in turn)."""
    done = 0
    while n_passes is None or done < n_passes:
        live = [run for run in runs if run.result is None]
        if not live:
            return
        at = [run.params for run in live]
        if pool is not None and len(live) > 1:
            futures = [pool.submit(pass_fn, prm) for prm in at]
            try:
                stats = [future.result() for future in futures]
            finally:
                finish(futures)
        else:
            stats = [pass_fn(prm) for prm in at]
        for run, pass_stats in zip(live, stats, strict=True):
            run.feed(pass_stats)
        done += 1


class _Refining:
    """One candidate's short EM run (:func:`~streammix.algorithms.em.em_steps`),
    fed one pass at a time."""

    def __init__(self, cand: MixtureParams, settings: EMSettings):
        self.steps = em_steps(cand, settings, callback=self._note)
        self.params = next(self.steps)
        self.result = None
        self.objective, self.n_components = -np.inf, cand.n_components

    def _note(self, record: dict) -> None:
        self.objective, self.n_components = record["objective"], record["n_components"]

    def feed(self, stats) -> None:
        """The statistics of the pass at :attr:`params`: the run's next step."""
        try:
            self.params = self.steps.send(stats)
        except StopIteration as stop:
            self.result = stop.value


def _pooled_start(Xd, y, w, m, size, settings: EMSettings, rng, all_rows: bool):
    """The start pool's best run on the design ``Xd`` (row weights ``w``); None if every
    pooled run degenerated."""
    tol = min(settings.tol, 1e-9 * y.size) if all_rows else settings.tol
    # no collapse rule: a small component may pass through few rows on its way;
    # the pool judges degeneracy at the end of the run
    full = dataclasses.replace(settings, tol=tol, min_eff_rows=0.0, min_sigma_ratio=0.0)
    # The pool chooses a basin by maximum likelihood, as its stacked runs do; with
    # flexmix's df correction the winner is then run to the df-corrected fixed
    # point from there (as R's flexmix reference is flexmix's EM from the ML
    # optimum's posteriors).  Choosing under the correction let a spike of a few
    # rows, its σ inflated, end just above the spike test's bound (airquality,
    # mammals, npreg: above R's best non-degenerate optimum).
    ml = dataclasses.replace(full, mstep=dataclasses.replace(settings.mstep,
                                                             df_correction=False))

    def run(start, chosen):
        return drive(squarem_steps(start, chosen), lambda prm: estep(Xd, y, w, prm))

    best = pool_search(Xd, y, m, size, settings=settings, rng=rng,
                       run_full=lambda start: run(start, ml), w=w)
    if best is None or not settings.mstep.df_correction:
        return best
    polished = run(best.params, full)
    if polished.params.n_components != m:
        return best
    polished.passed_over = best.passed_over
    return polished


def make_reseeder(X: np.ndarray, y: np.ndarray, fit_intercept: bool, options: MStepOptions):
    """A ``reseed(params, j)`` function for :func:`~streammix.algorithms.em.run_em`.

    The collapsed component is refitted by least squares to the sample rows
    that the current mixture explains worst (the lowest 1/(2m) of per-row
    log-likelihoods), and given weight 1/m.
    """
    design: list[np.ndarray] = []  # built at the first re-seed: most runs never need one

    def reseed(params: MixtureParams, j: int) -> MixtureParams:
        if not design:
            design.append(design_matrix(X, fit_intercept))
        Xd = design[0]
        m, p = params.n_components, params.n_coef
        ll, _, _ = log_responsibilities(Xd, y, params)
        k = min(y.size, max(5 * (p + 1), y.size // (2 * m)))
        worst = np.argsort(ll, kind="stable")[:k]
        coef, var = ols(Xd[worst], y[worst], np.ones(k))
        beta = params.beta.copy()
        beta[j] = coef
        sigma2 = params.sigma2.copy()
        sigma2[j] = max(var, options.variance_floor, np.finfo(float).tiny)
        weights = params.weights.copy()
        weights[j] = 1.0 / m
        return MixtureParams(weights / weights.sum(), beta, sigma2)

    return reseed
