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
group by group).  Sample weights and concomitant variables belong to the
group (the same on each of its rows, as in flexmix): a group of weight w
counts w times, and with a gate each group's prior is π(z_g) (the generalised
EM of :mod:`streammix.estimator.concomitant_fitting` on tasks of whole groups,
with :class:`~streammix.algorithms.grouped_em.GroupedGateMultiTask`).
``standardize=True`` runs the passes on the standardised data (not with a gate).
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.concomitant_information import GateLayout
from streammix.algorithms.em import EMResult, warn_not_converged
from streammix.algorithms.grouped_em import GroupedGateMultiTask, GroupedTask, grouped_em
from streammix.algorithms.grouped_information import GroupedInformationTask
from streammix.algorithms.information import InfoStats, constrain, covariance, infer
from streammix.algorithms.parameter_layout import ParameterLayout, constraint_matrix
from streammix.algorithms.restarts import StatsBundle
from streammix.algorithms.standardize import ScaledTask
from streammix.algorithms.start.initial import initial_params
from streammix.core.grouped_estep import group_index, group_log_posteriors
from streammix.core.params import MixtureParams
from streammix.data.grouped_arrays import GroupedArraySource, check_groups
from streammix.estimator import base, fitting, formulas
from streammix.estimator.checkpointed import open_checkpoint
from streammix.estimator.concomitant_fitting import (
    concomitant_source,
    drop_concomitant,
    gated_fit,
    row_weights,
)
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
    ``se`` adds standard errors (Louis, OPG or sandwich over whole groups).  Sample
    weights and the concomitant variables ``gate`` (an array, a table or a gate formula;
    a source's own ``concomitant`` columns) must be the same on every row of a group."""
    if is_grouped_source(X):
        if groups is not None or y is not None or sample_weight is not None:
            raise ValueError("the target, the weights and the groups come from the source "
                             "itself: pass only the source")
        if gate is not None:
            raise ValueError("a source carries its own concomitant columns: make it with "
                             "concomitant=[...] instead of passing concomitant to fit")
    method = fitting.check_se_method(se)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=FOLDER")
    base.check_hyperparameters(model)
    if is_grouped_source(X):
        formulas.prepare(model, X)
        base.require_target(X, "fit")
        source = X
    else:
        source = _array_source(model, X, y, sample_weight, groups, gate)
    gated = bool(list(getattr(source, "concomitant_names", None) or []))
    if gated and model.standardize:
        raise ValueError("standardize=True is not available with concomitant variables")
    with open_checkpoint(model, source, checkpoint) as saver:
        if gated:
            if saver is not None:
                saver.n_gate = len(source.concomitant_names) + 1
            _fit_gated(model, source, saver, resume, callback, method)
        else:
            _fit_in(model, source, saver, resume, callback, method)
    return model


def _array_source(model, X, y, sample_weight, groups, gate) -> GroupedArraySource:
    """The in-memory grouped source of ``X``, ``y`` (and the gate's columns, if any)."""
    if gate is None:
        return GroupedArraySource(X, y, groups, chunk_rows=model.chunk_rows,
                                  sample_weight=sample_weight)
    flat = concomitant_source(X, y, sample_weight, gate, model.chunk_rows, model=model)
    source = GroupedArraySource(
        flat.X, flat.y, groups, chunk_rows=model.chunk_rows,
        feature_names=flat.feature_names if flat.feature_names_given else None,
        sample_weight=None if sample_weight is None else flat.w, concomitant=flat.Z,
        concomitant_names=flat.concomitant_names)
    for name in ("formula_design", "concomitant_design"):
        if getattr(flat, name, None) is not None:
            setattr(source, name, getattr(flat, name))
    return source


def _grouped_scan(source):
    """``scan(engine)``: the source as tasks of whole groups, made at the first pass that
    reads the data (the locating pass of a lake; in memory the source itself); and
    ``located()``: how many locating passes were made (0 or 1)."""
    tasks: list = []

    def scan(engine):
        if not tasks:
            tasks.append(source.grouped_view(engine) if is_grouped_source(source) else source)
        return tasks[0]

    return scan, lambda: int(bool(tasks) and tasks[0] is not source)


def _fit_gated(model, source, saver, resume: bool, callback, method) -> None:
    """Grouped classes with concomitant variables: the generalised EM of a gated fit
    (:func:`~streammix.estimator.concomitant_fitting.gated_fit`) on tasks of whole groups."""
    scan, located = _grouped_scan(source)
    ctx = gated_fit(model, source, saver, resume, callback, scan=scan,
                    task_type=GroupedGateMultiTask)
    tasks = scan(ctx.engine)
    model.n_groups_ = int(tasks.n_groups)
    if method is not None:
        _standard_errors(model, tasks, ctx.engine, method)
    model.n_passes_ += located()


def _fit_in(model, source, saver, resume: bool, callback, method=None) -> None:
    """The fit of :func:`fit_grouped` without a gate once its checkpoint folder (if any)
    is open.  With ``standardize`` (or columns beyond float64's safe range) the passes
    run on the standardised data and the result is mapped back
    (:mod:`streammix.algorithms.standardize`: a group's log-likelihood shifts by its rows'
    Jacobians, so the shift is the same −Σw log s_y)."""
    ctx = fitting.seed_and_profile(model, source, saver, resume)
    m = model.n_components
    settings = fitting.em_settings(model, ctx, m)
    start = base.start_params(model, ctx.d)
    explicit = isinstance(start, MixtureParams)
    if explicit and ctx.scaling is not None:
        start = ctx.scaling.forward(start)
    scan, located = _grouped_scan(source)

    def pass_many(params_sets):
        task = GroupedTask(params_sets[0], model.fit_intercept)
        if ctx.scaling is not None:
            task = ScaledTask(task, ctx.scaling)
        return StatsBundle([ctx.engine.map_reduce(scan(ctx.engine), task, _zeros(m, ctx.p))])

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
    if ctx.scaling is not None:
        em = ctx.scaling.unscale(em)
    warn_not_converged(em, stacklevel=5)
    base.set_fitted(model, em, source, ctx.profile)
    drop_concomitant(model)  # the gate of an earlier fit
    model.n_groups_ = int(best.stats.n_groups)
    if method is not None:
        _standard_errors(model, scan(ctx.engine), ctx.engine, method)
    model.n_passes_ = n_passes + 1 + located()  # pass 0 and the locating pass count


def _standard_errors(model, tasks, engine, method: str) -> None:
    """Standard errors of a grouped fit: one information pass over whole groups
    (:mod:`streammix.algorithms.grouped_information`), with the gate if it has one."""
    params = model.params_
    coef = getattr(model, "concomitant_coef_", None)
    full = ParameterLayout(params.n_components, params.n_coef, model.noise)
    size = full.size if coef is None else GateLayout(full, coef.shape[1]).size
    stats = engine.map_reduce(tasks, GroupedInformationTask(params, model.fit_intercept,
                                                            model.noise, coef),
                              InfoStats.zeros(size))
    layout = model_layout(model)
    if layout.shared:
        stats = constrain(stats, _constraints(layout, coef))
    if coef is None:
        result = infer(stats, layout, method)
        set_inference(model, result.vcov, method, result.loglik_gap)
        return
    info_inv = covariance(stats, "louis")
    gap = 0.5 * float(stats.score @ info_inv @ stats.score)
    set_inference(model, covariance(stats, method), method, gap)


def _constraints(layout: ParameterLayout, coef) -> np.ndarray:
    """The constraint matrix of shared coefficients (:func:`constraint_matrix`), its
    logits replaced by the gate's free rows when there is a gate."""
    A = constraint_matrix(layout)
    if coef is None:
        return A
    m = layout.n_components
    full = ParameterLayout(m, layout.n_coef, layout.noise)
    big, small = GateLayout(full, coef.shape[1]), GateLayout(layout, coef.shape[1])
    out = np.zeros((big.size, small.size))
    k = m - 1
    out[:full.size - k, :layout.size - k] = A[:full.size - k, :layout.size - k]
    out[big.gate_index.ravel(), small.gate_index.ravel()] = 1.0
    return out


def _zeros(m, p):
    from streammix.core.grouped_estep import GroupedStats
    return GroupedStats.zeros(m, p)


def group_posteriors(model, X, y, groups, concomitant=None) -> np.ndarray:
    """P(j | the group's rows) of each row (n, m), in the caller's row order; a model
    with a gate needs the rows' ``concomitant`` variables (constant within a group)."""
    Xd, y = base.design_xy(model, X, y)
    codes = check_groups(groups, Xd.shape[0])
    log_prior = None
    if hasattr(model, "concomitant_coef_") or concomitant is not None:
        log_pi = np.log(row_weights(model, Xd.shape[0], concomitant))
        _, first = group_index(codes)
        log_prior = log_pi[first]
    L, ll = group_log_posteriors(Xd, y, codes, model.params_, log_prior)
    return np.exp(L - ll[:, None])[codes]
