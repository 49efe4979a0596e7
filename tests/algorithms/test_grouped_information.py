"""The information pass of grouped classes against finite differences of the grouped
log-likelihood Σ_g log Σ_j π_j Π_{i∈g} φ_ij (per-component and shared noise).

Louis' matrix is the exact negative Hessian at any θ and the score its
gradient, so both are checked at a point away from the optimum; chunking
by whole groups does not change them.
"""

from __future__ import annotations

import numpy as np
import pytest

from streammix.algorithms.grouped_information import grouped_information_stats
from streammix.algorithms.parameter_layout import ParameterLayout
from streammix.core.grouped_estep import group_codes, group_log_posteriors


def _data(seed=2, n_groups=40):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_groups), rng.integers(2, 7, n_groups))
    x = rng.uniform(-2, 2, ids.size)
    cls = rng.integers(0, 2, n_groups)[ids]
    y = np.where(cls == 0, 1 + x, -0.5 - 0.8 * x) + rng.normal(0, 0.7, ids.size)
    X = np.column_stack([np.ones_like(x), x])
    return X, y, ids


def _theta(layout, beta, log_sigma, logits):
    theta = np.zeros(layout.size)
    theta[layout.beta_index] = beta
    theta[layout.eta_index] = log_sigma
    theta[layout.alpha_index] = logits
    return theta


@pytest.mark.parametrize("noise", ["per_component", "shared"])
def test_louis_is_the_negative_hessian_of_the_grouped_loglik(noise):
    X, y, ids = _data()
    layout = ParameterLayout(2, 2, noise)
    log_sigma = [-0.2, 0.1] if noise == "per_component" else [-0.1, -0.1]
    theta = _theta(layout, [[0.8, 0.9], [-0.3, -0.6]], log_sigma, [0.2])
    codes = group_codes(ids)

    def loglik(t):
        return group_log_posteriors(X, y, codes, layout.params(t))[1].sum()

    stats = grouped_information_stats(X, y, ids, layout.params(theta), noise)
    assert stats.loglik == pytest.approx(loglik(theta), rel=1e-12)
    h = 1e-5
    eye = np.eye(layout.size) * h
    grad = np.array([(loglik(theta + e) - loglik(theta - e)) / (2 * h) for e in eye])
    np.testing.assert_allclose(stats.score, grad, rtol=1e-6, atol=1e-6)
    hess = np.array([[(loglik(theta + a + b) - loglik(theta + a - b) - loglik(theta - a + b)
                       + loglik(theta - a - b)) / (4 * h * h) for b in eye] for a in eye])
    np.testing.assert_allclose(stats.observed, -hess, rtol=1e-4, atol=1e-3)
    assert np.abs(stats.observed).max() > 10  # not a trivial match
    # chunks of whole groups add up to the whole
    cut = int(np.flatnonzero(np.diff(ids))[len(np.unique(ids)) // 2]) + 1
    params = layout.params(theta)
    parts = (grouped_information_stats(X[:cut], y[:cut], ids[:cut], params, noise)
             + grouped_information_stats(X[cut:], y[cut:], ids[cut:], params, noise))
    np.testing.assert_allclose(parts.observed, stats.observed, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(parts.opg, stats.opg, rtol=1e-12, atol=1e-9)
