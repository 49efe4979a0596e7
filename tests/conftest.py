from __future__ import annotations

import numpy as np
import pytest


def make_mixture(n, weights, intercepts, coefs, sigmas, seed=0, x_scale=1.0):
    """Rows from a known mixture of linear regressions: X ~ N(0, x_scale²)."""
    rng = np.random.default_rng(seed)
    coefs = np.asarray(coefs, float)
    X = rng.normal(scale=x_scale, size=(n, coefs.shape[1]))
    z = rng.choice(len(weights), size=n, p=weights)
    noise = rng.normal(size=n) * np.asarray(sigmas)[z]
    y = (X * coefs[z]).sum(1) + np.asarray(intercepts)[z] + noise
    return X, y, z


@pytest.fixture
def small_mixture():
    return make_mixture(3000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]], [1.0, 0.7],
                        seed=3)
