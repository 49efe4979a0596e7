"""Batch fits with grouped classes: ``fit(X, y, groups=g)`` (flexmix's ``y ~ x | id``).

All rows of a group share one component.  Pass 0 and the starting values
are those of any fit (:mod:`streammix.estimator.fitting`, on the rows);
then the EM of :mod:`streammix.algorithms.grouped_em`.  ``n_parameters`` is
unchanged.  BIC uses n = the number of rows, as flexmix's ``nobs`` does
(``BIC(fit)`` of a grouped flexmix fit); ICL counts one classification term
per group (flexmix's ``clogLik``).  In-memory arrays, or a Parquet lake
with a group column (``ParquetSource(..., groups="id")``): pass 0 runs on
the lake's chunks, then the locating pass finds each group's chunks and the
EM passes run on tasks of whole groups
(:meth:`~streammix.ParquetSource.grouped_view`).  Checkpoints work as for
any batch fit: each pass's statistics (with Σ_g γ_gj and G) are saved, and a
resumed fit replays them.  ``se=True`` adds one information pass over the
same tasks (:mod:`streammix.algorithms.grouped_information`: Louis' formula
group by group).  Without sample weights or concomitant variables (yet).
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.em import EMResult, warn_not_converged
from streammix.algorithms.grouped_em import GroupedTask, grouped_em
from streammix.algorithms.grouped_information import GroupedInformationTask
from streammix.algorithms.information import InfoStats, constrain, infer
from streammix.algorithms.parameter_layout import ParameterLayout, constraint_matrix
from streammix.algorithms.restarts import StatsBundle
from streammix.algorithms.start.initial import initial_params
from streammix.core.grouped_estep import group_log_posteriors
from streammix.core.params import MixtureParams
from streammix.data.grouped_arrays import GroupedArraySource, check_groups
from streammix.estimator import base, fitting, formulas
from streammix.estimator.checkpointed import open_checkpoint
from streammix.estimator.concomitant_fitting import drop_concomitant
from streammix.estimator.constraints import model_layout
from streammix.estimator.inference import set_inference

__all__ = ["fit_grouped", "group_posteriors", "is_grouped_source"]


def is_grouped_source(X) -> bool:
    """Whether ``X`` is a source with a group column (``ParquetSource(..., groups=)``)."""
    return getattr(X, "groups", None) is not None and hasattr(X, "grouped_view")


def fit_grouped(model, X, y, sample_weight, groups, *, se=False, callback=None,
                checkpoint=None, gate=None, resume: bool = False) -> None:
    """Fit ``model`` with grouped classes ``groups`` (n,) on in-memory ``X``, ``y``, or on a
    grouped source ``X`` (``groups`` None); with ``checkpoint``, saved pass by pass and
    resumable (``resume=True``) as any batch fit (:mod:`streammix.estimator.checkpoint`);
    ``se`` adds standard errors (Louis, OPG or sandwich over whole groups)."""
    if is_grouped_source(X):
        if groups is not None or y is not None:
            raise ValueError("the target and the groups come from the source itself: pass "
                             "only the source")
        if X.weight is not None:
            raise ValueError("sample weights (the source's weight column) are not available "
                             "with groups")
    if sample_weight is not None:
        raise ValueError("sample_weight is not available with groups")
    method = fitting.check_se_method(se)
    if gate is not None:  # concomitant variables
        raise ValueError("groups cannot be combined with concomitant variables (yet)")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=FOLDER")
    if model.standardize:
        raise ValueError("standardize=True is not available with groups")
    base.check_hyperparameters(model)
    if is_grouped_source(X):
        formulas.prepare(model, X)
        base.require_target(X, "fit")
        source = X
    else:
        source = GroupedArraySource(X, y, groups, chunk_rows=model.chunk_rows)
    with open_checkpoint(model, source, checkpoint) as saver:
        _fit_in(model, source, saver, resume, callback, method)
    return model


def _fit_in(model, source, saver, resume: bool, callback, method=None) -> None:
    """The fit of :func:`fit_grouped` once its checkpoint folder (if any) is open."""
    ctx = fitting.seed_and_profile(model, source, saver, resume)
    m = model.n_components
    settings = fitting.em_settings(model, ctx, m)
    start = base.start_params(model, ctx.d)
    explicit = isinstance(start, MixtureParams)
    tasks: list = []  # the grouped view, made at the first pass that reads the data

    def whole_groups():
        if not tasks:  # the locating pass of a lake (in memory: the source itself)
            tasks.append(source.grouped_view(ctx.engine) if is_grouped_source(source)
                         else source)
        return tasks[0]

    def pass_many(params_sets):
        return StatsBundle([ctx.engine.map_reduce(
            whole_groups(), GroupedTask(params_sets[0], model.fit_intercept), _zeros(m, ctx.p))])

    if saver is not None:
        pass_many = saver.wrap(pass_many)
        callback = saver.quiet(callback)

    def pass_fn(params):
        return pass_many((params,))[0]

    best, n_passes = None, 0
    for run in range(1 if explicit else model.n_init):
        sample = ctx.sample
        params0 = start if explicit else initial_params(
            sample.X, sample.y, m, method=start, fit_intercept=model.fit_intercept,
            settings=settings, rng=base.run_rng(ctx.seed, run), moments=sample.moments,
            all_rows=ctx.profile.n_positive <= ctx.profile.size)
        result = grouped_em(pass_fn, params0, settings.mstep, tol=model.tol,
                            max_iter=model.max_iter, callback=callback)
        n_passes += len(result.history)
        if best is None or result.loglik > best.loglik:
            best = result
    em = EMResult(best.params, best.loglik, best.loglik, best.n_iter, best.converged,
                  best.history, best.stats.stats, settings)
    warn_not_converged(em, stacklevel=5)
    base.set_fitted(model, em, source, ctx.profile)
    drop_concomitant(model)  # the gate of an earlier fit
    model.n_groups_ = int(best.stats.n_groups)
    if method is not None:
        _standard_errors(model, whole_groups(), ctx.engine, method)
    located = int(bool(tasks) and tasks[0] is not source)
    model.n_passes_ = n_passes + 1 + located  # pass 0 and the locating pass count


def _standard_errors(model, tasks, engine, method: str) -> None:
    """Standard errors of a grouped fit: one information pass over whole groups
    (:mod:`streammix.algorithms.grouped_information`)."""
    params = model.params_
    full = ParameterLayout(params.n_components, params.n_coef, model.noise)
    stats = engine.map_reduce(tasks, GroupedInformationTask(params, model.fit_intercept,
                                                            model.noise),
                              InfoStats.zeros(full.size))
    layout = model_layout(model)
    if layout.shared:
        stats = constrain(stats, constraint_matrix(layout))
    result = infer(stats, layout, method)
    set_inference(model, result.vcov, method, result.loglik_gap)


def _zeros(m, p):
    from streammix.core.grouped_estep import GroupedStats
    return GroupedStats.zeros(m, p)


def group_posteriors(model, X, y, groups) -> np.ndarray:
    """P(j | the group's rows) of each row (n, m), in the caller's row order."""
    Xd, y = base.design_xy(model, X, y)
    codes = check_groups(groups, Xd.shape[0])
    L, ll = group_log_posteriors(Xd, y, codes, model.params_)
    return np.exp(L - ll[:, None])[codes]
