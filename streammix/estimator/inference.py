"""Standard errors on the estimator: one information pass, then the inference attributes.

The mathematics is in :mod:`streammix.algorithms.information`;
:meth:`streammix.MixtureOfLinearRegressions.compute_se` calls :func:`compute_se`.
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.concomitant_information import GateInformationTask, GateLayout
from streammix.algorithms.information import (
    InformationTask,
    InfoStats,
    constrain,
    covariance,
    infer,
    standard_errors,
)
from streammix.algorithms.parameter_layout import ParameterLayout, constraint_matrix
from streammix.estimator.constraints import model_layout
from streammix.reports.summary import coefficient_names

__all__ = ["compute_se", "set_inference", "gate_layout"]


def compute_se(model, source, engine, method: str) -> None:
    """Standard errors of ``model``'s fit on ``source`` by ``method``, in one pass."""
    if hasattr(model, "n_groups_"):  # rows taken one by one would give other (wrong) SEs
        raise ValueError("the model was fitted with grouped classes: its standard errors "
                         "need the groups, fit(..., groups=..., se=True) (or fit(source, "
                         "se=True) with ParquetSource(..., groups=...))")
    params = model.params_
    if hasattr(model, "concomitant_coef_"):
        layout = gate_layout(model)
        task = GateInformationTask(params, model.concomitant_coef_, model.fit_intercept, layout)
        stats = engine.map_reduce(source, task, InfoStats.zeros(layout.size))
        info_inv = covariance(stats, "louis")
        gap = 0.5 * float(stats.score @ info_inv @ stats.score)
        set_inference(model, covariance(stats, method), method, gap)
        return
    full = ParameterLayout(params.n_components, params.n_coef, model.noise)
    layout = model_layout(model)
    stats = engine.map_reduce(source, InformationTask(params, model.fit_intercept, model.noise),
                              InfoStats.zeros(full.size))
    if layout.shared:
        stats = constrain(stats, constraint_matrix(layout))
    result = infer(stats, layout, method)
    set_inference(model, result.vcov, method, result.loglik_gap)


def set_inference(model, vcov: np.ndarray, method: str, gap: float) -> None:
    """Set the inference attributes from a working covariance (fit, load, permute)."""
    params = model.params_
    if hasattr(model, "concomitant_coef_"):
        return _set_gate_inference(model, vcov, method, gap)
    layout = model_layout(model)
    if vcov.shape != (layout.size, layout.size):
        raise ValueError(f"vcov has shape {vcov.shape}; the model has {layout.size} "
                         "free parameters")
    model.vcov_ = vcov
    model.vcov_names_ = layout.names(coefficient_names(model))
    model.se_method_ = method
    model.score_gap_ = float(gap)
    model.bse_ = standard_errors(vcov, layout, params)


def gate_layout(model) -> GateLayout:
    """The working-parameter layout of a fit with concomitant variables."""
    return GateLayout(model_layout(model), model.concomitant_coef_.shape[1])


def _set_gate_inference(model, vcov: np.ndarray, method: str, gap: float) -> None:
    layout = gate_layout(model)
    if vcov.shape != (layout.size, layout.size):
        raise ValueError(f"vcov has shape {vcov.shape}; the model has {layout.size} "
                         "free parameters")
    with np.errstate(invalid="ignore"):
        var = np.diag(vcov)
        se = np.sqrt(np.where(var >= 0, var, np.nan))
    m = model.params_.n_components
    base = layout.base
    log_sigma = np.full(m, np.nan) if base.eta_index is None else se[base.eta_index]
    gate = np.full(model.concomitant_coef_.shape, np.nan)
    gate[1:] = se[layout.gate_index]
    model.vcov_ = vcov
    model.vcov_names_ = layout.names(coefficient_names(model), model.concomitant_names_)
    model.se_method_ = method
    model.score_gap_ = float(gap)
    model.bse_ = {"coef": se[base.beta_index], "log_sigma": log_sigma,
                  "sigma": np.sqrt(model.params_.sigma2) * log_sigma,
                  "logit_weight": np.full(m, np.nan), "weight": np.full(m, np.nan),
                  "concomitant": gate}
