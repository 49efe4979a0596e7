"""Label alignment by Hungarian matching (streammix.estimator.align)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions, MixtureParams
from streammix.estimator.align import align


def _random_params(rng, m, p):
    w = rng.dirichlet(np.ones(m))
    return MixtureParams(w, rng.normal(scale=3.0, size=(m, p)), rng.uniform(0.5, 2.0, m))


def test_align_recovers_a_permutation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        params = _random_params(rng, 5, 3)
        perm = rng.permutation(5)
        shuffled = params.permute(perm)
        order = align(params, shuffled)
        assert shuffled.permute(order) == params
        np.testing.assert_array_equal(perm[order], np.arange(5))


def test_align_minimises_total_distance_like_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(30):
        ref = _random_params(rng, 4, 2)
        noisy = MixtureParams(ref.weights, ref.beta + rng.normal(scale=2.0, size=(4, 2)),
                              ref.sigma2).permute(rng.permutation(4))

        def cost(order, noisy=noisy, ref=ref):
            return float(np.sum((ref.beta - noisy.beta[list(order)]) ** 2))

        best = min(itertools.permutations(range(4)), key=cost)
        assert cost(align(ref, noisy)) == pytest.approx(cost(best), rel=1e-12)
    # scaling the coefficients changes which match is best
    ref = MixtureParams([0.5, 0.5], [[0.0, 0.0], [1.0, 10.0]], [1.0, 1.0])
    other = MixtureParams([0.5, 0.5], [[0.0, 10.0], [1.0, 0.0]], [1.0, 1.0])
    assert align(ref, other).tolist() == [1, 0]
    assert align(ref, other, scale=[1e-3, 1.0]).tolist() == [0, 1]


def test_aligned_to_between_two_fits():
    X, y, z = make_mixture(3000, [0.45, 0.55], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=5)
    a = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8).fit(X[:1500], y[:1500], se=True)
    b = MixtureOfLinearRegressions(2, random_state=1, tol=1e-8).fit(X[1500:], y[1500:], se=True)
    flipped = b.aligned_to(b.params_.permute([1, 0]))
    assert flipped is not b and flipped.weights_[0] < flipped.weights_[1]
    back = flipped.aligned_to(a)
    assert np.all(np.abs(back.intercept_ - a.intercept_) < 0.5)
    # everything per component moved together, predictions did not change
    np.testing.assert_allclose(back.predict(X), b.predict(X), rtol=1e-12, atol=1e-12)
    proba = flipped.predict_proba(X, y)
    np.testing.assert_allclose(proba, b.predict_proba(X, y)[:, [1, 0]], atol=1e-15)
    np.testing.assert_array_equal(flipped.bse_["coef"], b.bse_["coef"][[1, 0]])
    np.testing.assert_array_equal(flipped.bse_["log_sigma"], b.bse_["log_sigma"][[1, 0]])
    assert flipped.bse_["logit_weight"][1] == pytest.approx(b.bse_["logit_weight"][1])
    assert flipped.vcov_names_ == b.vcov_names_
    # the original is untouched
    assert b.weights_[0] >= b.weights_[1] and b.params_.beta[0, 0] != flipped.params_.beta[0, 0]


def test_align_errors():
    ref = MixtureParams([0.5, 0.5], [[0.0, 1.0], [1.0, 2.0]], [1.0, 1.0])
    three = MixtureParams([0.2, 0.3, 0.5], np.zeros((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="numbers of components"):
        align(ref, three)
    with pytest.raises(ValueError, match="scale"):
        align(ref, ref, scale=[1.0, -1.0])
    with pytest.raises(TypeError, match="is the model fitted"):
        align(ref, MixtureOfLinearRegressions(2))
    with pytest.raises(ValueError, match="not fitted"):
        MixtureOfLinearRegressions(2).aligned_to(ref)
