"""Label alignment: match the components of two fits (label switching).

A fitted model lists its components in the canonical order of decreasing
weight, which is stable only when the weights are well apart.  To compare two
fits (bootstrap replicates, fits on different data, a fit and the truth),
:func:`align` finds the permutation of one fit's components that best matches
another's, by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``)
on the squared distances between coefficient vectors.
"""

from __future__ import annotations

import copy

import numpy as np

from streammix.algorithms.parameter_layout import transform_matrix
from streammix.core.params import MixtureParams
from streammix.estimator.base import set_public_arrays
from streammix.estimator.constraints import model_layout
from streammix.estimator.inference import set_inference

__all__ = ["align", "permute_model"]


def _params_of(obj) -> MixtureParams:
    if isinstance(obj, MixtureParams):
        return obj
    params = getattr(obj, "params_", None)
    if params is None:
        raise TypeError(f"expected a fitted model or MixtureParams, got {type(obj).__name__} "
                        "(is the model fitted?)")
    return params


def align(reference, other, *, scale=None) -> np.ndarray:
    """The permutation of ``other``'s components that best matches ``reference``.

    Parameters
    ----------
    reference, other : MixtureOfLinearRegressions or MixtureParams
        Fitted models or parameter sets with the same number of components
        and of coefficients (design space: intercept first when fitted).
    scale : array-like of shape (p,), optional
        Divide coefficient differences by these (e.g. the coefficient SEs or
        feature scales) before matching; default 1.

    Returns
    -------
    order : ndarray of int, shape (m,)
        ``other.permute(order)`` (or ``other.aligned_to(reference)``) has
        component ``k`` matched to ``reference``'s component ``k``:
        ``order[k]`` is the index in ``other`` of the match of reference
        component ``k``.  The total squared (scaled) coefficient distance is
        minimal over all permutations.
    """
    from scipy.optimize import linear_sum_assignment

    ref, oth = _params_of(reference), _params_of(other)
    if ref.beta.shape != oth.beta.shape:
        raise ValueError(f"cannot align a fit with coefficients of shape {oth.beta.shape} "
                         f"to one of shape {ref.beta.shape}: the numbers of components and "
                         "of coefficients must agree")
    s = np.ones(ref.n_coef) if scale is None else np.asarray(scale, dtype=np.float64)
    if s.shape != (ref.n_coef,) or not np.all(s > 0):
        raise ValueError(f"scale must hold {ref.n_coef} positive values, got {scale!r}")
    diff = (ref.beta[:, None, :] - oth.beta[None, :, :]) / s
    cost = np.einsum("abk,abk->ab", diff, diff)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(ref.n_components, dtype=np.intp)
    order[rows] = cols
    return order


def permute_model(model, order):
    """A copy of a fitted model with its components in ``order``.

    Every per-component attribute follows, including ``vcov_`` and ``bse_``
    (through :func:`streammix.algorithms.parameter_layout.transform_matrix`, because the
    logits log(π_j/π_1) change baseline).
    """
    order = np.asarray(order, dtype=np.intp)
    if hasattr(model, "concomitant_coef_"):
        raise ValueError("relabelling a fit with concomitant variables is not available yet")
    params = model.params_
    if sorted(order.tolist()) != list(range(params.n_components)):
        raise ValueError(f"{order.tolist()} is not a permutation of "
                         f"{params.n_components} components")
    out = copy.copy(model)  # shallow: an engine (e.g. a Dask client) is kept, not copied
    out.history_ = [dict(record) for record in model.history_]
    if model.noise == "fixed" and np.ndim(model.sigma) == 1:
        out.sigma = np.asarray(model.sigma)[order]
    out.params_ = params.permute(order)
    set_public_arrays(out)
    if hasattr(model, "vcov_"):
        layout = model_layout(model)
        T = transform_matrix(layout, order)
        set_inference(out, T @ model.vcov_ @ T.T, model.se_method_, model.score_gap_)
    return out
