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
(:meth:`~streammix.ParquetSource.grouped_view`).  Without sample weights,
standard errors, checkpoints or concomitant variables (yet).
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.em import EMResult, warn_not_converged
from streammix.algorithms.grouped_em import GroupedTask, grouped_em
from streammix.algorithms.start.initial import initial_params
from streammix.core.grouped_estep import group_log_posteriors
from streammix.core.params import MixtureParams
from streammix.data.grouped_arrays import GroupedArraySource, check_groups
from streammix.estimator import base, fitting, formulas

__all__ = ["fit_grouped", "group_posteriors", "is_grouped_source"]


def is_grouped_source(X) -> bool:
    """Whether ``X`` is a source with a group column (``ParquetSource(..., groups=)``)."""
    return getattr(X, "groups", None) is not None and hasattr(X, "grouped_view")


def fit_grouped(model, X, y, sample_weight, groups, *, se=False, callback=None,
                checkpoint=None, concomitant=None) -> None:
    """Fit ``model`` with grouped classes ``groups`` (n,) on in-memory ``X``, ``y``, or on a
    grouped source ``X`` (``groups`` None)."""
    if is_grouped_source(X):
        if groups is not None or y is not None:
            raise ValueError("the target and the groups come from the source itself: pass "
                             "only the source")
        if X.weight is not None:
            raise ValueError("sample weights (the source's weight column) are not available "
                             "with groups")
    if sample_weight is not None:
        raise ValueError("sample_weight is not available with groups")
    if se:
        raise ValueError("standard errors of fits with groups are not available yet: "
                         "fit with se=False")
    if checkpoint is not None or concomitant is not None:
        raise ValueError("groups cannot be combined with checkpoint or concomitant (yet)")
    if model.standardize:
        raise ValueError("standardize=True is not available with groups")
    base.check_hyperparameters(model)
    if is_grouped_source(X):
        formulas.prepare(model, X)
        base.require_target(X, "fit")
        source = X
    else:
        source = GroupedArraySource(X, y, groups, chunk_rows=model.chunk_rows)
    seed = base.draw_seed(model.random_state)
    ctx = fitting.profile_pass(model, source, seed)
    tasks = source.grouped_view(ctx.engine) if source is X else source
    m = model.n_components
    settings = fitting.em_settings(model, ctx, m)
    start = base.start_params(model, ctx.d)
    explicit = isinstance(start, MixtureParams)

    def pass_fn(params):
        return ctx.engine.map_reduce(tasks, GroupedTask(params, model.fit_intercept),
                                     _zeros(m, ctx.p))

    best, n_passes = None, 0
    for run in range(1 if explicit else model.n_init):
        sample = ctx.sample
        params0 = start if explicit else initial_params(
            sample.X, sample.y, m, method=start, fit_intercept=model.fit_intercept,
            settings=settings, rng=base.run_rng(seed, run), moments=sample.moments,
            all_rows=ctx.profile.n_positive <= ctx.profile.size)
        result = grouped_em(pass_fn, params0, settings.mstep, tol=model.tol,
                            max_iter=model.max_iter, callback=callback)
        n_passes += len(result.history)
        if best is None or result.loglik > best.loglik:
            best = result
    em = EMResult(best.params, best.loglik, best.loglik, best.n_iter, best.converged,
                  best.history, best.stats.stats, settings)
    warn_not_converged(em, stacklevel=4)
    base.set_fitted(model, em, source, ctx.profile)
    model.n_groups_ = int(best.stats.n_groups)
    model.n_passes_ = n_passes + 1 + int(tasks is not source)  # pass 0, the locating pass
    return model


def _zeros(m, p):
    from streammix.core.grouped_estep import GroupedStats
    return GroupedStats.zeros(m, p)


def group_posteriors(model, X, y, groups) -> np.ndarray:
    """P(j | the group's rows) of each row (n, m), in the caller's row order."""
    Xd, y = base.design_xy(model, X, y)
    codes = check_groups(groups, Xd.shape[0])
    L, ll = group_log_posteriors(Xd, y, codes, model.params_)
    return np.exp(L - ll[:, None])[codes]
