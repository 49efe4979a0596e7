"""The start pool sees the sample weights: with every row in the sample, a fit with
integer frequency weights is the fit of the data with each row repeated that often."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streammix import MixtureOfLinearRegressions


def _data(seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, 40)
    y = np.where(rng.random(40) < 0.5, 1 + 2 * x, -1 - x) + rng.normal(0, 0.6, 40)
    return x[:, None], y, rng.integers(1, 6, 40)


@pytest.mark.parametrize("seed", [0, 5, 9])
def test_weighted_fit_equals_the_fit_of_repeated_rows(seed):
    X, y, counts = _data(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = MixtureOfLinearRegressions(2, random_state=0).fit(
            X, y, sample_weight=counts.astype(float))
        repeated = MixtureOfLinearRegressions(2, random_state=0).fit(
            np.repeat(X, counts, axis=0), np.repeat(y, counts))
    # Unweighted starts stopped 1e-6..5e-5 below, after 5-8 passes instead of 2.
    assert weighted.loglik_ == pytest.approx(repeated.loglik_, rel=1e-10, abs=0)
    assert weighted.n_passes_ <= 3
    for name in ("weights_", "intercept_", "coef_", "sigma_"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name),
                                   rtol=1e-6, atol=1e-8)
