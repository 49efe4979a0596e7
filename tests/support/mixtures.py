"""Data from known mixtures, and independent references to compare fits with."""

from __future__ import annotations

import numpy as np
import pytest

from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep_features_many, log_responsibilities


def make_mixture(n, weights, intercepts, coefs, sigmas, seed=0, x_scale=1.0):
    """Rows from a known mixture of linear regressions: X ~ N(0, x_scale²)."""
    rng = np.random.default_rng(seed)
    coefs = np.asarray(coefs, float)
    X = rng.normal(scale=x_scale, size=(n, coefs.shape[1]))
    z = rng.choice(len(weights), size=n, p=weights)
    noise = rng.normal(size=n) * np.asarray(sigmas)[z]
    y = (X * coefs[z]).sum(1) + np.asarray(intercepts)[z] + noise
    return X, y, z


def opg_coef_se(params, chunks):
    """Coefficient SEs from the empirical information Σ s_i s_iᵀ (valid at the MLE),
    written independently of the library and accumulated over ``chunks`` of
    ``(X, y)``.  The score is ordered per component (coefficients, σ²), then the
    logits log(π_j/π_m) for j < m; returns the (m, p) coefficient block."""
    m, p = params.n_components, params.n_coef
    J = 0.0
    for X, y in chunks:
        Xd = design_matrix(X, True)
        _, log_resp, R = log_responsibilities(Xd, y, params)
        G = np.exp(log_resp)
        blocks = []
        for j in range(m):
            s2 = params.sigma2[j]
            blocks.append(G[:, j:j + 1] * Xd * (R[:, j:j + 1] / s2))
            blocks.append(G[:, j:j + 1] * ((R[:, j:j + 1] ** 2 - s2) / (2 * s2**2)))
        blocks.append(G[:, :m - 1] - params.weights[:m - 1])  # score of the logits
        S = np.hstack(blocks)
        J = J + S.T @ S
    se = np.sqrt(np.diag(np.linalg.inv(J)))
    return np.array([se[j * (p + 1):j * (p + 1) + p] for j in range(m)])


def assert_same_fit(a, b, rtol=1e-10):
    """Two fitted models agree in parameters and log-likelihood to ``rtol``."""
    np.testing.assert_allclose(a.params_.beta, b.params_.beta, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(a.params_.sigma2, b.params_.sigma2, rtol=rtol)
    np.testing.assert_allclose(a.params_.weights, b.params_.weights, rtol=rtol)
    assert a.loglik_ == pytest.approx(b.loglik_, rel=rtol)


def information_problem(rng, n, p, m, noise, intercept=True):
    """``(X, y, w, params)`` for checks of the standard-error pass: columns of very
    different scales (the first all ones with ``intercept``), weights with every 7th
    row at 0, and parameters that are not a fit of the data."""
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 10, size=p)
    if intercept:
        X[:, 0] = 1.0
    y = rng.normal(size=n) * 4
    w = rng.uniform(0.0, 3.0, size=n)
    w[::7] = 0.0
    sigma2 = np.full(m, 1.7) if noise == "shared" else rng.uniform(0.3, 3.0, size=m)
    params = MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, p)), sigma2)
    return X, y, w, params


def kernel_and_numpy(kernel_switch, FT, y, w, params_seq, intercept):
    """``estep_features_many`` on the compiled kernel and on the numpy path, in that
    order (``kernel_switch``: the conftest fixture that turns the kernel on and off)."""
    kernel_switch(True)
    fast = estep_features_many(FT, y, w, params_seq, intercept)
    kernel_switch(False)
    slow = estep_features_many(FT, y, w, params_seq, intercept)
    return fast, slow
