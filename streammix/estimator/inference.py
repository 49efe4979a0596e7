"""Standard errors on the estimator: one information pass, then the inference attributes.

The mathematics is in :mod:`streammix.algorithms.information`;
:meth:`streammix.MixtureOfLinearRegressions.compute_se` calls :func:`compute_se`.
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.information import (
    InformationTask,
    InfoStats,
    constrain,
    infer,
    standard_errors,
)
from streammix.algorithms.parameter_layout import ParameterLayout, constraint_matrix
from streammix.estimator.constraints import model_layout
from streammix.reports.summary import coefficient_names

__all__ = ["compute_se", "set_inference"]


def compute_se(model, source, engine, method: str) -> None:
    """Standard errors of ``model``'s fit on ``source`` by ``method``, in one pass."""
    params = model.params_
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
    layout = model_layout(model)
    if vcov.shape != (layout.size, layout.size):
        raise ValueError(f"vcov has shape {vcov.shape}; the model has {layout.size} "
                         "free parameters")
    model.vcov_ = vcov
    model.vcov_names_ = layout.names(coefficient_names(model))
    model.se_method_ = method
    model.score_gap_ = float(gap)
    model.bse_ = standard_errors(vcov, layout, params)
