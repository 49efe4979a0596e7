"""Pass-0 moments and the spectral start (the mathematics page (docs/mathematics.rst), §4)."""

from __future__ import annotations

import numpy as np
import pytest
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions
from streammix.algorithms.start.profile import Profile, ProfileTask
from streammix.algorithms.start.spectral import spectral_subspace
from streammix.core.moments import Moments
from streammix.data.arrays import ArraySource


def test_moments_merge_to_the_weighted_moments_of_all_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[1.0, -2.0, 0.5], scale=[1.0, 3.0, 0.2], size=(5000, 3))
    y = X @ [1.0, 0.5, -2.0] + rng.normal(size=5000)
    w = rng.integers(0, 4, size=5000).astype(float)
    parts = [slice(0, 1), slice(1, 1777), slice(1777, 1777), slice(1777, None)]
    merged = Moments.zeros(3)
    for s in parts:
        merged = merged + Moments.of(X[s], y[s], w[s])
    whole = Moments.of(X, y, w)
    np.testing.assert_allclose(merged.sxx, whole.sxx, rtol=1e-12)
    assert merged.sum_w == w.sum()
    np.testing.assert_allclose(merged.mean_x(), np.average(X, axis=0, weights=w), rtol=1e-12)
    np.testing.assert_allclose(merged.cov_x(), np.cov(X.T, aweights=w, bias=True), rtol=1e-9)
    np.testing.assert_allclose(merged.var_y(), np.cov(y, aweights=w, bias=True), rtol=1e-9)
    # The profiling pass gathers them, whatever the chunking.
    for rows in (100, 4999):
        source = ArraySource(X, y, w, chunk_rows=rows)
        task = ProfileTask(seed=1, size=50)
        prof = sum((task(source.read(d)) for d in source.plan()), Profile.empty(3, 50))
        np.testing.assert_allclose(prof.moments.sxx, whole.sxx, rtol=1e-12)


@pytest.mark.parametrize("m", [2, 3])
def test_spectral_subspace_contains_the_slopes(m):
    slopes = np.array([[2.0, -1.0, 0.0, 0.0, 1.0, 0.0], [-1.5, 0.0, 1.0, 0.0, 0.0, 1.0],
                       [0.0, 1.5, 0.0, -2.0, 0.0, 0.0]])[:m]
    rng = np.random.default_rng(5)
    A = rng.normal(size=(6, 6)) / 2 + np.eye(6)  # correlated features: whitening matters
    n = 60_000
    z = rng.choice(m, size=n)
    X = rng.normal(size=(n, 6)) @ A.T + 3.0
    y = 1.0 + np.einsum("ij,ij->i", X - 3.0, slopes[z]) + rng.normal(size=n)
    U, W = spectral_subspace(Moments.of(X, y, np.ones(n)), m)
    assert U.shape == (6, m)
    np.testing.assert_allclose(U.T @ U, np.eye(m), atol=1e-12)
    for beta in slopes:
        bz = np.linalg.solve(W, beta)  # the slope in whitened coordinates: Σ^{1/2} β
        bz /= np.linalg.norm(bz)
        assert np.linalg.norm(U.T @ bz) > 0.98  # cosine of its angle to the subspace


def test_spectral_start_fits_the_true_mixture():
    slopes = [[2.0, -1.0, 0.0, 0.0, 1.0], [-2.0, 1.0, 0.0, 0.0, -1.0]]
    X, y, _ = make_mixture(20_000, [0.5, 0.5], [0.5, 0.5], slopes, [1.0, 1.0], seed=2)
    model = MixtureOfLinearRegressions(2, init="spectral", random_state=0, tol=1e-6).fit(X, y)
    order = np.argsort(-model.coef_[:, 0])
    np.testing.assert_allclose(model.coef_[order], slopes, atol=0.05)
    np.testing.assert_allclose(model.intercept_, [0.5, 0.5], atol=0.05)
    many = MixtureOfLinearRegressions(2, n_init=4, init="random", random_state=1,
                                      tol=1e-6).fit(X, y)
    assert model.loglik_ == pytest.approx(many.loglik_, abs=1e-3)
    with pytest.raises(ValueError, match="needs fit_intercept=True"):
        MixtureOfLinearRegressions(2, init="spectral", fit_intercept=False).fit(X, y)
