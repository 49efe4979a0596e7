"""Draws and quantiles of the fitted conditional distribution (sample, predict_interval)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions
from streammix.core.params import MixtureParams
from streammix.estimator.distribution import mixture_quantiles

TRUTH = dict(weights=[0.3, 0.5, 0.2], intercepts=[-4.0, 0.0, 5.0],
             coefs=[[2.0, -1.0], [-1.0, 0.5], [0.5, 1.5]], sigmas=[0.6, 1.0, 0.4])


def _true_model():
    """A model holding the generating parameters, as if fitted exactly."""
    beta = np.column_stack([TRUTH["intercepts"], TRUTH["coefs"]])
    model = MixtureOfLinearRegressions(3)
    model.params_ = MixtureParams(np.array(TRUTH["weights"]), beta,
                                  np.array(TRUTH["sigmas"]) ** 2)
    model.n_features_in_ = 2
    return model


def _brute_force_quantile(means, sigma, weights, p):
    """Bisection in plain Python on F(q) = Σ π Φ, Φ from math.erfc: no scipy, no numpy."""
    def F(q):
        return sum(w * 0.5 * math.erfc(-(q - m) / (s * math.sqrt(2)))
                   for m, s, w in zip(means, sigma, weights, strict=True))
    lo, hi = min(means) - 50 * max(sigma), max(means) + 50 * max(sigma)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if F(mid) < p else (lo, mid)
    return 0.5 * (lo + hi)


def test_one_component_is_the_normal_quantile():
    rng = np.random.default_rng(0)
    means = rng.normal(scale=10, size=(50, 1))
    sigma = np.array([2.5])
    probs = [0.001, 0.05, 0.5, 0.9, 0.999]
    q = mixture_quantiles(means, sigma, np.array([1.0]), probs)
    exact = np.array([[m + 2.5 * NormalDist().inv_cdf(p) for p in probs] for m in means[:, 0]])
    np.testing.assert_allclose(q, exact, rtol=0, atol=1e-10)


def test_mixture_quantiles_match_brute_force_bisection():
    rng = np.random.default_rng(1)
    means = rng.normal(scale=5, size=(20, 3))
    sigma, weights = np.array([0.3, 1.0, 2.0]), np.array([0.2, 0.5, 0.3])
    probs = [0.01, 0.05, 0.25, 0.5, 0.95, 0.99]
    q = mixture_quantiles(means, sigma, weights, probs)
    for i in range(means.shape[0]):
        for k, p in enumerate(probs):
            assert q[i, k] == pytest.approx(
                _brute_force_quantile(means[i], sigma, weights, p), abs=1e-10)


def test_well_separated_components_and_bad_probabilities():
    # Modes 1000 standard deviations apart: the CDF is flat between them.
    q = mixture_quantiles(np.array([[0.0, 1000.0]]), np.array([1.0, 1.0]),
                          np.array([0.5, 0.5]), [0.25, 0.75])
    np.testing.assert_allclose(q, [[NormalDist().inv_cdf(0.5), 1000 + NormalDist().inv_cdf(0.5)]],
                               atol=1e-10)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        mixture_quantiles(np.zeros((1, 1)), np.ones(1), np.ones(1), [1.0])
    with pytest.raises(ValueError, match="level must be strictly between"):
        _true_model().predict_interval(np.zeros((1, 2)), level=1.5)


def test_interval_coverage_on_simulated_data():
    X, y, _ = make_mixture(6000, **TRUTH, seed=11)
    model = MixtureOfLinearRegressions(3, random_state=0, n_init=3).fit(X, y)
    X_new, y_new, _ = make_mixture(20000, **TRUTH, seed=12)
    for level in (0.5, 0.9):
        lower, upper = model.predict_interval(X_new, level=level).T
        assert np.all(lower < upper)
        covered = np.mean((y_new >= lower) & (y_new <= upper))
        assert covered == pytest.approx(level, abs=0.015)  # binomial sd about 0.0035


def test_sample_draws_from_the_mixture():
    model = _true_model()
    X = np.tile([[0.5, -1.0]], (40000, 1))
    y, z = model.sample(X, random_state=3, return_component=True)
    np.testing.assert_array_equal(y, model.sample(X, random_state=3))  # reproducible
    assert not np.array_equal(y, model.sample(X, random_state=4))
    np.testing.assert_allclose(np.bincount(z, minlength=3) / len(z), TRUTH["weights"], atol=0.01)
    assert y.mean() == pytest.approx(model.predict(X[:1])[0], abs=0.05)
    lower, upper = model.predict_interval(X[:1], level=0.9)[0]
    assert np.mean((y >= lower) & (y <= upper)) == pytest.approx(0.9, abs=0.01)
    # Within a component the draws are normal with its mean and sigma.
    means = model.predict_components(X[:1])[0]
    for j in range(3):
        assert y[z == j].mean() == pytest.approx(means[j], abs=0.05)
        assert y[z == j].std() == pytest.approx(TRUTH["sigmas"][j], rel=0.05)
