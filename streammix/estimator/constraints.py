"""Coefficients shared by all components: the estimator option ``fixed``.

``MixtureOfLinearRegressions(fixed=["x2"])`` is flexmix's
``FLXMRglmfix(fixed = ~ x2)``: the coefficient of ``x2`` is one parameter
common to every component, the others vary.  ``"(intercept)"`` shares the
intercept.  This module turns the option into design columns (for the
M-step, :mod:`streammix.core.constrained_mstep`), counts the parameters as
flexmix's ``df`` does, and gives the parameter layout of the standard errors.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from streammix.algorithms.parameter_layout import ParameterLayout
from streammix.core.checks import feature_names_of
from streammix.core.constrained_mstep import (
    INTERCEPT_NAMES,
    fixed_entries,
    project_shared,
    resolve_shared,
)
from streammix.core.params import MixtureParams

__all__ = ["INTERCEPT_NAMES", "check_fixed", "n_shared", "shared_columns", "model_layout",
           "project", "shared_scaling", "refuse_online"]


def check_fixed(model) -> None:
    """Raise ``ValueError`` when ``model.fixed`` is not None, a name, an index or a list of them."""
    entries = fixed_entries(model.fixed)
    for entry in entries:
        if isinstance(entry, bool) or not isinstance(entry, (str, int, np.integer)):
            raise ValueError(f"fixed must list feature names, column indices or "
                             f"'(intercept)', got {model.fixed!r}")
        if entry in INTERCEPT_NAMES and not model.fit_intercept:
            raise ValueError("fixed names the intercept but fit_intercept=False")
    keys = [str(e) if not isinstance(e, str) or e not in INTERCEPT_NAMES else INTERCEPT_NAMES[0]
            for e in entries]
    if len(set(keys)) != len(keys):
        raise ValueError(f"fixed lists a coefficient twice: {model.fixed!r}")


def n_shared(model) -> int:
    """Number of shared coefficients (known before the feature names are)."""
    return len(fixed_entries(model.fixed))


def shared_columns(model, feature_names) -> tuple[int, ...]:
    """The design columns of ``model.fixed`` for features ``feature_names`` (sorted;
    :func:`streammix.core.constrained_mstep.resolve_shared`)."""
    return resolve_shared(model.fixed, feature_names, model.fit_intercept)


def model_layout(model) -> ParameterLayout:
    """The working-parameter layout of a fitted ``model`` (shared coefficients once)."""
    params = model.params_
    shared = shared_columns(model, _feature_names(model))
    return ParameterLayout(params.n_components, params.n_coef, model.noise, shared)


def _feature_names(model) -> list[str]:
    return feature_names_of(model)


def project(params: MixtureParams, shared: tuple[int, ...]) -> MixtureParams:
    """Starting values that satisfy the constraint: each shared coefficient set to its
    weighted mean over the components."""
    if not shared:
        return params
    return MixtureParams(params.weights, project_shared(params.beta, params.weights, shared),
                         params.sigma2)


def shared_scaling(scaling, shared: tuple[int, ...]):
    """The standardisation of a fit with a shared intercept: x is scaled, not centred.

    Centring x would turn a common intercept b into b + a_jᵀμ_x, different
    for each component; scaling keeps every sharing intact.
    """
    if scaling is None or not (scaling.intercept and 0 in shared):
        return scaling
    return dataclasses.replace(scaling, mu_x=np.zeros_like(scaling.mu_x))


def refuse_online(model, concomitant: bool = False) -> None:
    """Online EM does not take shared coefficients (yet), nor continues a fit with concomitant
    variables without them (``concomitant``: the first batch has them): say so."""
    if n_shared(model):
        raise ValueError("fixed (coefficients shared by all components) is supported by fit, "
                         "not by partial_fit; fit in batch or drop fixed")
    if hasattr(model, "concomitant_coef_") and not concomitant:
        raise ValueError(f"the model was fitted with concomitant variables "
                         f"{model.concomitant_names_}: pass concomitant=Z to partial_fit")
