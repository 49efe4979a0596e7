"""The batch fit pipeline, as named functions used by ``fit`` and by model selection alike.

A fit is: pass 0 (:func:`profile_pass`: counts, the reservoir sample, the
moments when standardisation or the spectral start reads them, optional
standardisation; in-memory arrays profiled whole, without a pass over
chunks), the EM settings the data can carry
(:func:`em_settings`), one step generator per run (:func:`run_steps`: its
starting values, then SQUAREM or plain EM), and the lock-step scans that feed
every run at once (:func:`lockstep_pass`, :func:`fit_runs`).  :func:`fit`
chains them for one number of components, with checkpoints;
:func:`streammix.select_components` chains them for several.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass

import numpy as np

from streammix.algorithms import scales
from streammix.algorithms.degeneracy import (
    best_nondegenerate,
    pooled_ols_variance,
    recording_step,
)
from streammix.algorithms.em import EMSettings, em_steps, warn_not_converged
from streammix.algorithms.information import SE_METHODS
from streammix.algorithms.restarts import CullRule, StatsBundle, run_lockstep
from streammix.algorithms.squarem import squarem_steps
from streammix.algorithms.standardize import ScaledTask, Scaling
from streammix.algorithms.start.candidates import variance_floor
from streammix.algorithms.start.initial import initial_params, make_reseeder
from streammix.algorithms.start.profile import Profile, ProfileTask, key_floor, profile_arrays
from streammix.algorithms.tasks import MultiEStepTask
from streammix.core import kernel
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix
from streammix.core.threads import thread_pool
from streammix.data.arrays import ArraySource
from streammix.data.parquet.source import ParquetSource
from streammix.data.resolve import as_source
from streammix.engines.blas_threads import one_blas_thread
from streammix.engines.resolve import resolve_engine
from streammix.estimator import base, constraints, formulas
from streammix.estimator.checkpointed import open_checkpoint
from streammix.estimator.inference import compute_se
from streammix.estimator.online_fitting import drop_online_state
from streammix.exceptions import DataError, SpuriousOptimumWarning

__all__ = ["FitContext", "fit", "seed_and_profile", "profile_pass", "em_settings", "run_steps",
           "lockstep_pass", "fit_runs", "check_se_method", "warn_passed_over"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitContext:
    """What pass 0 of a fit found: the source, where passes run, the profile."""

    source: object
    engine: object
    profile: Profile
    seed: int
    d: int
    p: int
    sample: Profile | None = None  # the profile on the fitting scale (standardised or not)
    scaling: Scaling | None = None
    shared: tuple[int, ...] = ()  # design columns shared by all components (fixed=...)
    extreme: str = ""  # the columns beyond scales.SAFE_RANGE, described ("" if none)


def check_se_method(se) -> str | None:
    """The standard-error method ``fit(se=...)`` asks for (None: no standard errors)."""
    if se is False or se is None:
        return None
    method = "louis" if se is True else se
    if method not in SE_METHODS:
        raise ValueError(f"se must be True, False or one of {SE_METHODS}, got {se!r}")
    return method


def fit(model, X, y=None, sample_weight=None, *, target=None, se=False, callback=None,
        checkpoint=None, resume: bool = False, formula=None) -> None:
    """Fit ``model`` by EM (see :meth:`streammix.MixtureOfLinearRegressions.fit`)."""
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=FOLDER")
    method = check_se_method(se)
    base.check_hyperparameters(model)
    drop_online_state(model)  # a batch fit starts afresh
    if formula is not None:
        if target is not None:
            raise ValueError("give the target either in the formula or as target=, not both")
        source = formulas.formula_source(model, X, y, sample_weight, formula)
    else:
        source = as_source(X, y, sample_weight, chunk_rows=model.chunk_rows, target=target)
    base.require_target(source, "fit")
    formulas.prepare(model, source)  # a formula's levels, before the checkpoint's fingerprint
    with open_checkpoint(model, source, checkpoint) as saver, one_blas_thread():
        fit_in(model, source, saver, resume, method, callback)


def fit_in(model, source, saver, resume: bool, method, callback) -> None:
    """The fit of :func:`fit` once its checkpoint folder (if any) is open."""
    def check_scale(ctx) -> None:
        if ctx.extreme and method is not None:
            raise DataError(f"standard errors cannot be computed on the scale of this data "
                            f"({ctx.extreme}; the information pass would overflow float64): "
                            "fit without them, or rescale these columns")

    ctx = seed_and_profile(model, source, saver, resume, check_scale)
    m = model.n_components
    start = base.start_params(model, ctx.d)
    explicit = isinstance(start, MixtureParams)
    if explicit and start.n_coef != ctx.p:
        raise ValueError(f"init has {start.n_coef} coefficients per component, "
                         f"the data needs {ctx.p}")
    settings = em_settings(model, ctx, m)
    n_runs = 1 if explicit else model.n_init
    pass_many = lockstep_pass(ctx, model.fit_intercept)
    if saver is not None:
        pass_many = saver.wrap(pass_many)
        callback = saver.quiet(callback)
    runs = [run_steps(model, ctx, m, start, run, settings, callback=callback)
            for run in range(n_runs)]
    best, n_passes, passed = fit_runs(model, runs, settings, pass_many)
    warn_not_converged(best, stacklevel=4)  # the caller of MixtureOfLinearRegressions.fit
    if ctx.scaling is not None:
        best = ctx.scaling.unscale(best)
    base.set_fitted(model, best, ctx.source, ctx.profile)
    model.passed_over_ = passed
    model.n_passes_ = n_passes + 1
    if method is not None:
        compute_se(model, ctx.source, ctx.engine, method)


def fit_runs(model, runs, settings: EMSettings, pass_many, n_components: int | None = None):
    """All ``runs`` in the same scans (SQUAREM or plain EM each): the best result, the
    number of passes and the spurious optimum passed over (dict or None).

    The best result is the best non-degenerate one
    (:func:`~streammix.algorithms.degeneracy.best_nondegenerate`); a higher
    degenerate optimum passed over is warned about
    (:class:`~streammix.SpuriousOptimumWarning`).
    """
    cull = CullRule(options=settings.mstep) if model.cull_restarts else None
    lockstep = run_lockstep(runs, pass_many, cull=cull)
    for run, result in enumerate(lockstep.results):
        if result is not None:
            logger.info("run %d: loglik %.10g after %d iterations (converged: %s)",
                        run, result.loglik, result.n_iter, result.converged)
    m = model.n_components if n_components is None else n_components
    best, passed = best_nondegenerate(lockstep.results, settings.choice_rule, m)
    if passed is not None:
        warn_passed_over(passed, best, stacklevel=5)
    return best, lockstep.n_passes, passed


def warn_passed_over(passed: dict, best, stacklevel: int = 2) -> None:
    """Emit :class:`~streammix.SpuriousOptimumWarning` for a degenerate optimum passed over."""
    msg = (f"a higher log-likelihood {passed['loglik']:.10g} (run {passed['run']}, iteration "
           f"{passed['iteration']}) was reached with a degenerate component "
           f"({'; '.join(passed['reasons'])}): a spurious optimum, passed over for the best "
           f"non-degenerate one, {best.loglik:.10g} (see passed_over_; min_sigma_ratio=0 "
           "allows spikes, y_resolution=None a σ below the resolution of y)")
    warnings.warn(msg, SpuriousOptimumWarning, stacklevel=stacklevel + 1)
    logger.warning("%s", msg)


def profile_pass(model, source, seed: int) -> FitContext:
    """Pass 0 over ``source``: its profile (counts, sample, moments), on ``model``'s engine."""
    engine = resolve_engine(model.engine, source)
    d = source.n_features
    size = model.init_sample_size
    floor = key_floor(size, known_rows(source))
    spectral = spectral_sums(model)
    task = ProfileTask(seed, size, floor, spectral, moments=spectral or model.standardize,
                       lazy=True)
    if isinstance(source, ArraySource):
        # the arrays are here: the pass's profile without copying chunks, the sample by index
        threads_for = getattr(engine, "threads_for", None)
        with thread_pool(1 if threads_for is None else threads_for(task)) as pool:
            profile = profile_arrays(task, source.X, source.y, source.w, source.plan(),
                                     map=pool.map)
    else:
        profile = _profile_chunks(engine, source, task, d)
    if profile.n_positive == 0:
        raise DataError("the data has no rows with positive weight (all sample weights are zero)")
    sample, scaling, described = profile, None, ""
    shared = constraints.shared_columns(model, _feature_names(source))
    extreme = scales.extreme_columns(profile.max_abs)
    if extreme:
        described = scales.describe_extremes(profile.max_abs, column_names(source), extreme)
        scaling, sample = _extreme_scaling(model, source, engine, seed, profile, described,
                                           shared)
    elif model.standardize:
        scaling = Scaling.from_moments(profile.moments, model.fit_intercept)
        scaling = constraints.shared_scaling(scaling, shared)
        Xs, ys = scaling.data(profile.X, profile.y)
        sample = dataclasses.replace(profile, X=Xs, y=ys,
                                     moments=scaling.moments(profile.moments))
    return FitContext(source, engine, profile, seed, d, d + int(model.fit_intercept),
                      sample, scaling, shared, described)


def _profile_chunks(engine, source, task: ProfileTask, d: int) -> Profile:
    """The settled profile of a pass of ``task`` over ``source``'s chunks on ``engine``
    (the sample rows are gathered once, after the pass)."""
    profile = engine.map_reduce(source, task, Profile.empty(d, task.size))
    if not profile.exact(task.floor):  # fewer rows than announced: the pass without a floor
        logger.info("pass 0: %d of %d sampled keys above the key floor; taking the pass again "
                    "without it", int((profile.keys > task.floor).sum()), task.size)
        task = dataclasses.replace(task, floor=-np.inf)
        profile = engine.map_reduce(source, task, Profile.empty(d, task.size))
    return profile.settled()


def spectral_sums(model) -> bool:
    """Whether pass 0 forms the moments' spectral sums: only ``init="spectral"`` reads them."""
    return isinstance(model.init, str) and model.init == "spectral"


def known_rows(source) -> int | None:
    """The number of rows of ``source`` when it is known before a pass (in-memory
    arrays, an unfiltered lake), else None; pass 0's key floor depends on it."""
    if isinstance(source, ArraySource):
        return int(source.X.shape[0])
    if isinstance(source, ParquetSource) and source.filters is None:
        return int(source.n_rows)
    return None


def _feature_names(source) -> list[str]:
    names = list(getattr(source, "feature_names", []) or [])
    return names or [f"x{k}" for k in range(source.n_features)]


def column_names(source) -> list[str]:
    """The features' names and the target's, as errors name them."""
    return _feature_names(source) + [str(getattr(source, "target", None) or "y")]


def _extreme_scaling(model, source, engine, seed, profile, described: str, shared):
    """Standardisation for columns beyond :data:`~streammix.algorithms.scales.SAFE_RANGE`.

    The moments of pass 0 over- or underflowed, so they are taken again over
    the data divided by powers of two; the model must be representable.
    """
    logger.info("%s (beyond %g..%g in magnitude, where EM's squares and products overflow "
                "or underflow float64): fitting on standardised data (the same optimum), "
                "after one more pass for the moments", described, *scales.SAFE_RANGE)
    pre = scales.prescaling(profile.max_abs, model.fit_intercept)
    task = ProfileTask(seed, model.init_sample_size, spectral=spectral_sums(model), lazy=True)
    again = engine.map_reduce(source, ScaledTask(task, pre),
                              Profile.empty(source.n_features, model.init_sample_size)).settled()
    inner = Scaling.from_moments(again.moments, model.fit_intercept)
    inner = constraints.shared_scaling(inner, shared)
    scaling = scales.compose(pre, inner)
    scales.check_representable(scaling, column_names(source), profile.max_abs)
    Xs, ys = inner.data(again.X, again.y)
    return scaling, dataclasses.replace(again, X=Xs, y=ys, moments=inner.moments(again.moments))


def em_settings(model, ctx: FitContext, m: int) -> EMSettings:
    """EM settings for ``m`` components; checks that the data can carry them."""
    p, profile = ctx.p, ctx.sample
    n_params = base.n_parameters(model.noise, m, p) - (m - 1) * constraints.n_shared(model)
    if profile.n_positive <= n_params:
        raise DataError(
            f"{profile.n_positive} rows with positive weight are too few for "
            f"{n_params} free parameters ({m} components, {p} coefficients each); "
            "use fewer components or more data"
        )
    Xd_sample = design_matrix(profile.X, model.fit_intercept)
    unit = pooled_ols_variance(Xd_sample, profile.y)  # one least-squares fit of the sample
    floor = variance_floor(Xd_sample, profile.y, model.variance_floor, pooled=unit)
    options = base.mstep_options(model, floor, m)
    options = dataclasses.replace(options, shared=ctx.shared)
    if options.fixed_sigma2 is not None and ctx.scaling is not None:
        options = dataclasses.replace(
            options, fixed_sigma2=options.fixed_sigma2 / ctx.scaling.s_y**2)
    all_rows = profile.n_positive <= profile.size
    weighted = all_rows and profile.w is not None and not np.all(profile.w == 1.0)
    pooled = pooled_ols_variance(Xd_sample, profile.y, profile.w) if weighted else unit
    return base.em_settings(model, options, model.max_iter, pooled_sigma2=pooled,
                            resolution_sigma2=resolution_sigma2(model, ctx))


def resolution_sigma2(model, ctx: FitContext) -> float | None:
    """δ²/12 on the fitting scale, δ the step y is recorded to (``model.y_resolution``)."""
    if model.y_resolution is None:
        return None
    if model.y_resolution == "auto":
        step = recording_step(ctx.sample.y)
    else:
        step = float(model.y_resolution)
        if ctx.scaling is not None:
            step /= ctx.scaling.s_y
    return step**2 / 12 if step > 0 else None


def run_steps(model, ctx: FitContext, m: int, start, run: int,
              settings: EMSettings | None = None, callback=None):
    """The step generator of run ``run`` (its own starting values) for ``m`` components.

    ``callback(record)`` is called after each of its passes with a copy
    of the history record plus ``"run": run`` (runs are in lock-step, so
    their records interleave).  ``settings`` default to :func:`em_settings`.
    """
    settings = em_settings(model, ctx, m) if settings is None else settings
    tagged = None
    if callback is not None:
        def tagged(record):
            callback({**record, "run": run})
    rng = base.run_rng(ctx.seed, run)
    if isinstance(start, MixtureParams) and ctx.scaling is not None:
        start = ctx.scaling.forward(start)
    sample, found = ctx.sample, []
    all_rows = ctx.profile.n_positive <= ctx.profile.size
    params0 = initial_params(sample.X, sample.y, m, method=start,
                             fit_intercept=model.fit_intercept, settings=settings, rng=rng,
                             moments=sample.moments, all_rows=all_rows, found=found,
                             w=sample.w if all_rows else None, threads=start_threads(ctx))
    params0 = constraints.project(params0, ctx.shared)
    reseed = make_reseeder(sample.X, sample.y, model.fit_intercept, settings.mstep)
    if model.accelerate == "squarem":
        steps = squarem_steps(params0, settings, reseed=reseed, callback=tagged)
    else:
        steps = em_steps(params0, settings, reseed=reseed, callback=tagged)
    return _noting(steps, found[0]) if found else steps


def start_threads(ctx: FitContext) -> int:
    """Threads of the starts' E-steps on the sample: those of an in-process engine's
    E-step passes (1 on other engines: the sample is in this process)."""
    threads_for = getattr(ctx.engine, "threads_for", None)
    if threads_for is None or not kernel.enabled():
        return 1
    return int(threads_for(MultiEStepTask((), True)))


def _noting(steps, passed: dict):
    """``steps``, its result's ``passed_over`` the higher of its own and ``passed``
    (a degenerate optimum the start pool passed over)."""
    result = yield from steps
    if result is not None and (result.passed_over is None
                               or passed["loglik"] > result.passed_over["loglik"]):
        result.passed_over = passed
    return result


def lockstep_pass(ctx: FitContext, fit_intercept: bool):
    """``pass_many(params_tuple)``: one scan computing statistics for every set."""
    def pass_many(params: tuple[MixtureParams, ...]) -> StatsBundle:
        task = MultiEStepTask(params, fit_intercept)
        if ctx.scaling is not None:
            task = ScaledTask(task, ctx.scaling)
        return ctx.engine.map_reduce(ctx.source, task, StatsBundle.zeros(params))

    return pass_many


def seed_and_profile(model, source, saver, resume: bool, check=None):
    """Pass 0 of a fit (:func:`~streammix.estimator.fitting.profile_pass`) with the seed a
    resumed checkpoint saved, or a new one (saved if there is a checkpoint).

    ``check(ctx)`` runs on the pass-0 context before its profile is compared
    with the checkpoint's.  Returns the context.
    """
    if saver is not None and resume:
        saver.load()
        seed = saver.seed
    else:
        seed = base.draw_seed(model.random_state)
        if saver is not None:
            saver.start(seed)
    ctx = profile_pass(model, source, seed)
    if check is not None:
        check(ctx)
    if saver is not None:
        from streammix.estimator.checkpoint import profile_digest

        saver.check_profile(profile_digest(ctx.profile))
    return ctx
