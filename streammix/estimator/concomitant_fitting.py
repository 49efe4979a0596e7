"""Batch fits with concomitant variables: weights π(z) that depend on covariates.

``fit(X, y, concomitant=Z)`` or a source made with ``concomitant=[...]`` (e.g.
``ParquetSource(..., concomitant=["z1", "z2"])``) runs here: pass 0 and the
starting values as for any fit (:mod:`streammix.estimator.fitting`), the gate
started at constant weights, then the generalised EM of
:mod:`streammix.algorithms.concomitant` (one Böhning step for the gate per pass,
monotone), accelerated by SQUAREM with ``accelerate="squarem"`` (the default;
:mod:`streammix.algorithms.concomitant_squarem`, its accepted points monotone).
Restarts (``n_init``) run in lock-step, sharing every scan of the data
(:func:`streammix.algorithms.restarts.run_lockstep`), culled as plain runs are
(``cull_restarts``) with a distance that includes the gate
(:mod:`streammix.algorithms.gate_distance`). The fitted
gate is ``concomitant_coef_`` (m, q + 1), intercept first, the first row zero
(component 1, the heaviest, is the baseline); ``weights_`` are the average
weights over the data. With ``checkpoint=DIR`` each pass record also holds the
gate Γ the pass was made at and the gate's statistics
(:mod:`streammix.estimator.gate_checkpoint`), and ``resume=True`` replays them
as for any batch fit.
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.concomitant import (
    ConcomitantMultiTask,
    ConcomitantStats,
    concomitant_steps,
    initial_gate,
    permute_gate,
)
from streammix.algorithms.concomitant_squarem import concomitant_squarem_steps
from streammix.algorithms.em import EMResult, warn_not_converged
from streammix.algorithms.gate_distance import gated_distance, gated_size
from streammix.algorithms.restarts import CullRule, StatsBundle, run_lockstep
from streammix.algorithms.start.initial import initial_params
from streammix.core.checks import check_fitted
from streammix.core.gating import gating_loglik, log_gate, with_intercept
from streammix.core.params import MixtureParams
from streammix.core.stats import log_responsibilities
from streammix.data.arrays import ArraySource
from streammix.data.frames import frame_matrix, frame_names
from streammix.data.resolve import as_source, is_source
from streammix.estimator import base, constraints, fitting, formulas
from streammix.estimator.checkpointed import open_checkpoint
from streammix.estimator.concomitant_formulas import (
    encode_gate,
    gate_formula_source,
    is_gate_formula,
)
from streammix.estimator.inference import compute_se

__all__ = ["CONCOMITANT_FITTED", "concomitant_source", "fit_if_concomitant", "fit_concomitant",
           "drop_concomitant", "gate_of", "row_loglik", "row_weights", "predict_weights",
           "extra_parameters", "mixture_mean", "ConcomitantMethods", "gated_fit"]

#: The fitted attributes of a fit with concomitant variables (beside base.FITTED).
CONCOMITANT_FITTED = ("concomitant_coef_", "concomitant_names_", "concomitant_formula_")


def concomitant_source(X, y, sample_weight, concomitant, chunk_rows: int, target=None,
                       model=None, formula=None):
    """The source of a fit with concomitant variables (None: the fit has none); a gate
    formula ``"~ z1 + C(segment)"`` reads them from the table ``X``
    (:mod:`streammix.estimator.concomitant_formulas`)."""
    if is_gate_formula(concomitant):
        return gate_formula_source(model, X, y, sample_weight, concomitant, formula, target)
    if concomitant is None:
        names = list(getattr(X, "concomitant_names", None) or getattr(X, "concomitant", None)
                     or [])
        return X if names and is_source(X) else None
    if is_source(X):
        raise ValueError("a source carries its own concomitant columns: make it with "
                         "concomitant=[...] instead of passing concomitant to fit")
    src = as_source(X, y, sample_weight, chunk_rows=chunk_rows, target=target)
    if not isinstance(src, ArraySource):
        raise ValueError("concomitant=Z goes with in-memory data (arrays or a DataFrame)")
    names = frame_names(concomitant)
    Z = frame_matrix(concomitant, names) if names is not None else concomitant
    return ArraySource(src.X, src.y, src.w, chunk_rows=chunk_rows,
                       feature_names=src.feature_names if src.feature_names_given else None,
                       concomitant=Z, concomitant_names=names)


def drop_concomitant(model) -> None:
    """Forget the gate of an earlier fit."""
    for name in CONCOMITANT_FITTED:
        model.__dict__.pop(name, None)


def fit_if_concomitant(model, X, y, sample_weight, concomitant, *, target=None, se, callback,
                       checkpoint, resume, formula=None) -> bool:
    """Fit ``model`` with concomitant variables if there are any (True), else do nothing."""
    drop_concomitant(model)
    source = concomitant_source(X, y, sample_weight, concomitant, model.chunk_rows, target,
                                model, formula)
    if source is None:
        return False
    fit_concomitant(model, source, se=se, callback=callback, checkpoint=checkpoint,
                    resume=resume)
    return True


def extra_parameters(model, m: int) -> int:
    """Parameters beyond the plain count: + (m − 1) q gate slopes of concomitant variables,
    − (m − 1) per coefficient shared by all components (flexmix's ``df``)."""
    coef = getattr(model, "concomitant_coef_", None)
    gate = 0 if coef is None else (m - 1) * (coef.shape[1] - 1)
    return gate - (m - 1) * constraints.n_shared(model)


def mixture_mean(model, Xd: np.ndarray, Z) -> np.ndarray:
    """Σ_j π_j μ_ij of the design matrix ``Xd``: π_j(z_i) with a gate, else the weights.
    Overflow gives inf without a RuntimeWarning: the caller refuses non-finite means."""
    with np.errstate(over="ignore", invalid="ignore"):
        means = Xd @ model.params_.beta.T
        if Z is None and not hasattr(model, "concomitant_coef_"):
            return means @ model.params_.weights
        return np.sum(means * row_weights(model, means.shape[0], Z), axis=1)


def predict_weights(model, Z) -> np.ndarray:
    """π(z) of each row of ``Z``; a model fitted without a gate gives ``weights_`` on each."""
    if not hasattr(model, "concomitant_coef_"):
        return np.tile(model.weights_, (np.asarray(Z).shape[0], 1))
    return np.exp(log_gate(gate_of(model, Z), model.concomitant_coef_))


def row_weights(model, n: int, Z) -> np.ndarray:
    """The weights of ``n`` rows with concomitant variables ``Z`` (checked against the fit)."""
    if not hasattr(model, "concomitant_coef_"):
        if Z is not None:
            raise ValueError("the model was fitted without concomitant variables")
        return np.broadcast_to(model.params_.weights, (n, model.params_.n_components))
    if Z is None:
        raise ValueError(f"the model was fitted with concomitant variables "
                         f"{model.concomitant_names_}: pass concomitant=Z")
    weights = predict_weights(model, Z)
    if weights.shape[0] != n:
        raise ValueError(f"X has {n} rows but concomitant has {weights.shape[0]}")
    return weights


class ConcomitantMethods:
    """The estimator's methods of concomitant variables (a mix-in of the estimator)."""

    def predict_weights(self, concomitant) -> np.ndarray:
        """The weights π(z), shape (n, m), of concomitant variables ``concomitant`` (n, q);
        without a fitted gate, ``weights_`` on every row."""
        check_fitted(self)
        return predict_weights(self, concomitant)


def fit_concomitant(model, source, *, se=False, callback=None, checkpoint=None,
                    resume: bool = False) -> None:
    """Fit ``model`` on ``source`` (which has concomitant columns) by generalised EM; with
    ``checkpoint``, saved pass by pass (each pass with its gate Γ and gate statistics) and
    resumable (``resume=True``) as any batch fit (:mod:`streammix.estimator.checkpoint`)."""
    method = fitting.check_se_method(se)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=FOLDER")
    if model.standardize:
        raise ValueError("standardize=True is not available with concomitant variables")
    base.check_hyperparameters(model)
    formulas.prepare(model, source)  # ParquetSource(formula=..., concomitant=[...])
    with open_checkpoint(model, source, checkpoint) as saver:
        if saver is not None:
            saver.n_gate = len(source.concomitant_names) + 1
        ctx = gated_fit(model, source, saver, resume, callback)
    if method is not None:
        compute_se(model, source, ctx.engine, method)


def gated_fit(model, source, saver, resume: bool, callback, scan=None,
              task_type=ConcomitantMultiTask):
    """The fit of :func:`fit_concomitant` once its checkpoint folder (if any) is open;
    returns the pass-0 context.  Pass 0 reads ``source``; the EM passes read
    ``scan(engine)`` (default ``source``: a grouped fit scans its tasks of whole groups) with
    map tasks ``task_type(points, fit_intercept)``."""
    ctx = fitting.seed_and_profile(model, source, saver, resume)
    m = model.n_components
    settings = fitting.em_settings(model, ctx, m)
    n_gate = len(source.concomitant_names) + 1
    start = base.start_params(model, ctx.d)
    explicit = isinstance(start, MixtureParams)
    gate_now: list = []  # the gates Γ of the pass being made, one per run

    def pass_sets(params_sets):
        task = task_type(tuple(zip(params_sets, gate_now, strict=True)), model.fit_intercept)
        zeros = StatsBundle(ConcomitantStats.zeros(m, ctx.p, n_gate) for _ in params_sets)
        return ctx.engine.map_reduce(source if scan is None else scan(ctx.engine), task,
                                     zeros)

    if saver is not None:
        pass_sets = saver.wrap(pass_sets, gates=lambda: list(gate_now))
        callback = saver.quiet(callback)

    def pass_many(points):  # (params, coef) of each live run: one scan for all
        gate_now[:] = [coef for _, coef in points]
        return pass_sets(tuple(params for params, _ in points))

    steps_of = concomitant_squarem_steps if model.accelerate == "squarem" else concomitant_steps
    runs = []
    for run in range(1 if explicit else model.n_init):
        sample = ctx.sample
        params0 = start if explicit else initial_params(
            sample.X, sample.y, m, method=start, fit_intercept=model.fit_intercept,
            settings=settings, rng=base.run_rng(ctx.seed, run), moments=sample.moments,
            all_rows=ctx.profile.n_positive <= ctx.profile.size)
        params0 = constraints.project(params0, ctx.shared)
        runs.append(steps_of(params0, initial_gate(params0, n_gate), settings.mstep,
                             tol=model.tol, max_iter=model.max_iter,
                             callback=_tagged(callback, run)))
    cull = CullRule(options=settings.mstep, distance=gated_distance,
                    size=gated_size) if model.cull_restarts else None
    lockstep = run_lockstep(runs, pass_many, cull=cull)
    best = None
    for result in lockstep.results:  # the first of equal log-likelihoods, as run by run
        if result is not None and (best is None or result.loglik > best.loglik):
            best = result
    n_passes = lockstep.n_passes
    order = np.lexsort((best.params.beta[:, 0], -best.params.weights))
    em = EMResult(best.params.permute(order), best.loglik, best.loglik, best.n_iter,
                  best.converged, best.history, best.stats.stats, settings)
    warn_not_converged(em, stacklevel=5)
    base.set_fitted(model, em, source, ctx.profile)
    model.concomitant_coef_ = permute_gate(best.coef, order)
    model.concomitant_names_ = list(source.concomitant_names)
    if getattr(source, "concomitant_design", None) is not None:  # a gate formula's levels
        model.concomitant_formula_ = source.concomitant_design
    model.n_passes_ = n_passes + 1
    return ctx


def _tagged(callback, run: int):
    """``callback`` with ``"run": run`` added to each record (runs are in lock-step,
    so their records interleave)."""
    if callback is None:
        return None
    return lambda record: callback({**record, "run": run})


def gate_of(model, Z) -> np.ndarray:
    """z̃ = [1, z] of ``Z`` for a model fitted with concomitant variables (else ValueError);
    a table is encoded by the gate's formula when it was fitted with one."""
    Z = np.asarray(encode_gate(model, Z), dtype=np.float64)
    if Z.ndim == 1:
        Z = Z[:, None]
    q = model.concomitant_coef_.shape[1] - 1
    if Z.ndim != 2 or Z.shape[1] != q:
        raise ValueError(f"concomitant has shape {Z.shape}; the model was fitted with {q} "
                         f"concomitant variables {model.concomitant_names_}")
    if not np.all(np.isfinite(Z)):
        raise ValueError("concomitant holds NaN or infinite values")
    return with_intercept(Z)


def row_loglik(model, X, y, Z):
    """Per-row log-likelihood and log-responsibilities (under the fitted gate, if any)."""
    Xd, y = base.design_xy(model, X, y)
    if Z is None and not hasattr(model, "concomitant_coef_"):
        ll, log_resp, _ = log_responsibilities(Xd, y, model.params_)
        return ll, log_resp
    row_weights(model, Xd.shape[0], Z)  # the checks
    Z1 = gate_of(model, Z)
    if Z1.shape[0] != Xd.shape[0]:
        raise ValueError(f"X has {Xd.shape[0]} rows but concomitant has {Z1.shape[0]}")
    return gating_loglik(Xd, y, Z1, model.params_, model.concomitant_coef_)
