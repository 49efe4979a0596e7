"""Batch EM: monotone, chunk-invariant, equal to an independent textbook EM."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from support.mixtures import make_mixture

from streammix import ComponentCollapseError, ConvergenceWarning, MixtureOfLinearRegressions
from streammix.algorithms.em import EMSettings, run_em
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep


def plain_em(X, y, weights, beta, sigma2, n_iter):
    """A textbook in-memory EM (dense responsibilities, lstsq per component)."""
    Xd = np.column_stack([np.ones(len(y)), X])
    lls = []
    for _ in range(n_iter):
        dens = np.stack([
            weights[j] * np.exp(-(y - Xd @ beta[j]) ** 2 / (2 * sigma2[j]))
            / np.sqrt(2 * np.pi * sigma2[j]) for j in range(len(weights))], axis=1)
        lls.append(np.log(dens.sum(1)).sum())
        G = dens / dens.sum(1, keepdims=True)
        weights = G.mean(0)
        beta = np.array([np.linalg.lstsq(Xd * np.sqrt(G[:, j:j + 1]), y * np.sqrt(G[:, j]),
                                         rcond=None)[0] for j in range(len(weights))])
        sigma2 = np.array([(G[:, j] * (y - Xd @ beta[j]) ** 2).sum() / G[:, j].sum()
                           for j in range(len(weights))])
    return weights, beta, sigma2, lls


def test_agrees_with_a_plain_in_memory_em(small_mixture):
    X, y, _ = small_mixture
    start = {"weights": [0.5, 0.5], "intercept": [-1.0, 1.0], "coef": [[1.0, 0.0], [0.0, 1.0]],
             "sigma": [1.5, 1.5]}
    model = MixtureOfLinearRegressions(2, init=start, tol=0, max_iter=30, chunk_rows=700,
                                       accelerate=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    w, b, s2, lls = plain_em(X, y, np.array([0.5, 0.5]),
                             np.array([[-1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]),
                             np.array([2.25, 2.25]), 30)
    order = np.argsort(-w)
    np.testing.assert_allclose(model.weights_, w[order], rtol=1e-9)
    np.testing.assert_allclose(model.intercept_, b[order, 0], rtol=1e-9)
    np.testing.assert_allclose(model.coef_, b[order, 1:], rtol=1e-9)
    np.testing.assert_allclose(model.sigma_ ** 2, s2[order], rtol=1e-9)
    np.testing.assert_allclose([h["loglik"] for h in model.history_[:30]], lls, rtol=1e-11)


@pytest.mark.parametrize("noise", ["per_component", "shared", "fixed"])
def test_log_likelihood_never_decreases(noise):
    X, y, _ = make_mixture(4000, [0.3, 0.3, 0.4], [0, 1, 2], [[1, 0], [0, 1], [1, 1]],
                           [1, 1, 1], seed=11)  # overlapping: many iterations
    model = MixtureOfLinearRegressions(3, noise=noise, sigma=1.0 if noise == "fixed" else None,
                                       tol=1e-10, max_iter=300, random_state=0, init="random",
                                       accelerate=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    ll = np.array([h["loglik"] for h in model.history_])
    assert len(ll) > 10
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))


def test_log_posterior_never_decreases_under_priors():
    X, y, _ = make_mixture(2000, [0.5, 0.5], [0, 2], [[1], [-1]], [1, 1], seed=4)
    model = MixtureOfLinearRegressions(2, ridge=5.0, prior_dof=3.0, prior_scale=0.5,
                                       dirichlet_alpha=2.0, tol=1e-9, max_iter=500,
                                       random_state=1, init="random",
                                       accelerate=None).fit(X, y)
    obj = np.array([h["objective"] for h in model.history_])
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[1:]))
    assert model.objective_ != model.loglik_


@pytest.mark.parametrize("chunk_rows", [1, 97, 1000, 10_000])
def test_fit_does_not_depend_on_chunk_size(small_mixture, chunk_rows):
    X, y, _ = small_mixture
    ref = MixtureOfLinearRegressions(2, random_state=5, tol=1e-8, chunk_rows=3000).fit(X, y)
    model = MixtureOfLinearRegressions(2, random_state=5, tol=1e-8, chunk_rows=chunk_rows)
    model.fit(X, y)
    assert model.n_iter_ == ref.n_iter_
    assert model.params_.max_abs_diff(ref.params_) < 1e-10
    assert abs(model.loglik_ - ref.loglik_) < 1e-10 * abs(ref.loglik_)


def test_max_iter_warns_and_loglik_belongs_to_the_returned_parameters(small_mixture):
    X, y, _ = small_mixture
    model = MixtureOfLinearRegressions(2, max_iter=2, tol=0, random_state=0, init="random")
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        model.fit(X, y)
    assert not model.converged_ and model.n_iter_ == 2
    assert model.score_samples(X, y).sum() == pytest.approx(model.loglik_, rel=1e-12)


def test_collapse_policies():
    # Three components asked of data with two: the third collapses.
    X, y, _ = make_mixture(2000, [0.5, 0.5], [-10, 10], [[1], [-1]], [0.5, 0.5], seed=1)
    Xd = design_matrix(X, True)
    start = MixtureParams([0.499, 0.499, 0.002], [[-10, 1], [10, -1], [40, 0]], [0.25, 0.25, 0.25])
    w = np.ones(len(y))

    def pass_fn(prm):
        return estep(Xd, y, w, prm)

    settings = EMSettings(MStepOptions(variance_floor=1e-4), tol=1e-8, on_collapse="drop")
    with pytest.warns(RuntimeWarning, match="dropped collapsed component"):
        res = run_em(pass_fn, start, settings)
    assert res.params.n_components == 2
    assert any("dropped" in h.get("event", "") for h in res.history)
    assert np.isfinite(res.loglik)

    with pytest.raises(ComponentCollapseError, match="collapsed at iteration 0"):
        run_em(pass_fn, start, EMSettings(MStepOptions(), on_collapse="error"))

    calls = []

    def reseed(prm, j):
        calls.append(j)
        beta = prm.beta.copy()
        beta[j] = [0.0, 0.0]
        return MixtureParams([0.4, 0.4, 0.2], beta, prm.sigma2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = run_em(pass_fn, start, EMSettings(MStepOptions(variance_floor=1e-4),
                                                 on_collapse="reseed", max_reseeds=2),
                     reseed=reseed)
    assert calls[:1] == [2]
    assert any("reseeded" in h.get("event", "") for h in res.history)
    assert np.isfinite(res.loglik)


def test_min_weight_removes_small_components_like_flexmix_minprior():
    X, y, _ = make_mixture(3000, [0.47, 0.47, 0.06], [-5, 5, 0], [[1], [-1], [0]],
                           [0.5, 0.5, 0.5], seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model = MixtureOfLinearRegressions(3, min_weight=0.1, random_state=0).fit(X, y)
    assert model.n_components_ == 2
    assert model.weights_.shape == (2,) and model.coef_.shape == (2, 1)
