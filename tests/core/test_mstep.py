"""M-step: closed forms, MAP against a generic optimiser, degeneracy rules."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from streammix import MixtureParams
from streammix.core.mstep import MStepOptions, log_prior, mstep
from streammix.core.stats import accumulate, design_matrix, estep


def _data(n=500, seed=0):
    rng = np.random.default_rng(seed)
    X = design_matrix(rng.normal(size=(n, 2)), True)
    y = X @ np.array([1.0, 2.0, -1.0]) + rng.normal(size=n)
    w = rng.uniform(0.5, 1.5, n)
    return X, y, w


def test_hard_labels_give_weighted_least_squares():
    X, y, w = _data()
    labels = (X[:, 1] > 0).astype(int)
    st = accumulate(X, y, w, np.eye(2)[labels], np.zeros((2, 3)))
    start = MixtureParams([0.5, 0.5], np.zeros((2, 3)), [1.0, 1.0])
    params, flags = mstep(st, start, MStepOptions())
    assert flags == {}
    for j in range(2):
        sel = labels == j
        sw = np.sqrt(w[sel])
        coef, *_ = np.linalg.lstsq(X[sel] * sw[:, None], y[sel] * sw, rcond=None)
        rss = np.sum(w[sel] * (y[sel] - X[sel] @ coef) ** 2)
        np.testing.assert_allclose(params.beta[j], coef, rtol=1e-10)
        np.testing.assert_allclose(params.sigma2[j], rss / w[sel].sum(), rtol=1e-10)
        np.testing.assert_allclose(params.weights[j], w[sel].sum() / w.sum(), rtol=1e-12)


def test_residual_form_keeps_digits_where_raw_sums_cancel():
    # the mathematics page (docs/mathematics.rst), §1.4: y = 1000 + 50x + N(0, 1e-6);
    # raw Syy - a'Sxy loses ~12 digits.
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 20000)
    X = design_matrix(x[:, None], True)
    y = 1000 + 50 * x + rng.normal(scale=1e-6, size=x.size)
    w = np.ones_like(y)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    true_var = np.mean((y - X @ coef) ** 2)
    start = MixtureParams([1.0], [[999.0, 49.0]], [1.0])
    params = start
    for _ in range(2):  # the second step starts from a centre at the optimum
        params, _ = mstep(estep(X, y, w, params), params, MStepOptions())
    assert abs(params.sigma2[0] / true_var - 1) < 1e-6


def test_shared_and_fixed_noise():
    X, y, w = _data()
    resp = np.random.default_rng(2).dirichlet([1, 1], size=len(y))
    st = accumulate(X, y, w, resp, np.zeros((2, 3)))
    start = MixtureParams([0.5, 0.5], np.zeros((2, 3)), [1.0, 1.0])
    per, _ = mstep(st, start, MStepOptions())
    shared, _ = mstep(st, start, MStepOptions(noise="shared"))
    np.testing.assert_allclose(shared.beta, per.beta)
    pooled = np.sum(per.sigma2 * st.s0) / st.sum_w
    np.testing.assert_allclose(shared.sigma2, [pooled, pooled], rtol=1e-12)
    fixed, _ = mstep(st, start, MStepOptions(noise="fixed", fixed_sigma2=np.array([0.3, 0.4])))
    np.testing.assert_array_equal(fixed.sigma2, [0.3, 0.4])


def _penalised_q(theta, st, opts, p):
    """Q(θ) + log prior for one component, computed from the definitions."""
    a, log_s2 = theta[:p], theta[p]
    s2 = np.exp(log_s2)
    delta = a - st.center[0]
    rss = st.r0[0] - 2 * delta @ st.rx[0] + delta @ st.s2[0] @ delta
    q = -0.5 * st.s0[0] * log_s2 - rss / (2 * s2)
    prm = MixtureParams([1.0], [a], [s2])
    return -(q + log_prior(prm, opts))


def test_map_update_maximises_the_penalised_q():
    X, y, w = _data(n=60)
    p = X.shape[1]
    start = MixtureParams([1.0], [[0.5, 0.5, 0.5]], [2.0])
    st = estep(X, y, w, start)
    opts = MStepOptions(ridge=3.0, prior_dof=4.0, prior_scale=2.0)
    params, _ = mstep(st, start, opts)
    theta = np.concatenate([params.beta[0], np.log(params.sigma2)])
    best = minimize(_penalised_q, theta + 0.3, args=(st, opts, p), method="BFGS",
                    options={"gtol": 1e-10})
    np.testing.assert_allclose(best.x, theta, atol=1e-5)
    assert _penalised_q(theta, st, opts, p) <= best.fun + 1e-9


def test_dirichlet_prior_on_weights():
    X, y, w = _data(n=100)
    resp = np.zeros((100, 2))
    resp[:10, 0] = 1
    resp[10:, 1] = 1
    st = accumulate(X, y, np.ones(100), resp, np.zeros((2, 3)))
    start = MixtureParams([0.5, 0.5], np.zeros((2, 3)), [1.0, 1.0])
    params, _ = mstep(st, start, MStepOptions(dirichlet_alpha=3.0))
    np.testing.assert_allclose(params.weights, [(10 + 2) / (100 + 4), (90 + 2) / (100 + 4)])


def test_rank_deficient_component_gives_finite_parameters():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    X = design_matrix(np.column_stack([x, 2 * x]), True)  # perfectly collinear
    y = 1 + x + rng.normal(size=200)
    start = MixtureParams([1.0], np.zeros((1, 3)), [1.0])
    params, flags = mstep(estep(X, y, np.ones(200), start), start, MStepOptions())
    assert flags == {0: "rank-deficient design"}
    assert np.all(np.isfinite(params.beta)) and np.all(params.sigma2 > 0)
    np.testing.assert_allclose(X @ params.beta[0], X @ np.linalg.lstsq(X, y, rcond=None)[0],
                               atol=1e-8)


def test_variance_floor_holds_on_an_exact_fit():
    X = design_matrix(np.arange(4.0)[:, None], True)
    y = 2 + 3 * np.arange(4.0)  # exactly on a line
    start = MixtureParams([1.0], [[0.0, 0.0]], [1.0])
    params, flags = mstep(estep(X, y, np.ones(4), start), start,
                          MStepOptions(variance_floor=1e-4))
    assert params.sigma2[0] == 1e-4 and flags[0] == "variance at floor"
    # No floor at all: still strictly positive and finite.
    params, _ = mstep(estep(X, y, np.ones(4), start), start, MStepOptions())
    assert 0 < params.sigma2[0] < 1e-100


def test_empty_component_keeps_its_parameters():
    X, y, w = _data(n=50)
    resp = np.column_stack([np.ones(50), np.zeros(50)])
    st = accumulate(X, y, w, resp, np.zeros((2, 3)))
    start = MixtureParams([0.5, 0.5], np.ones((2, 3)), [1.0, 2.0])
    params, flags = mstep(st, start, MStepOptions())
    assert flags[1] == "empty"
    assert params.weights[1] == 0 and params.sigma2[1] == 2.0
    np.testing.assert_array_equal(params.beta[1], [1, 1, 1])


@pytest.mark.parametrize("bad", [
    dict(noise="wobbly"), dict(noise="fixed"), dict(ridge=-1.0), dict(dirichlet_alpha=0.5),
])
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError):
        MStepOptions(**bad)
