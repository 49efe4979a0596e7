"""Parameter recovery on a known mixture: n = 200k, d = 5 (with intercept), m = 3."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from support.mixtures import make_mixture, opg_coef_se

from streammix import MixtureOfLinearRegressions

TRUE_W = np.array([0.5, 0.3, 0.2])
TRUE_B = np.array([-2.0, 0.5, 3.0])
TRUE_A = np.array([[1.0, -1.0, 0.5, 2.0], [-1.5, 0.5, 1.0, 0.0], [0.5, 2.0, -1.0, -1.0]])
TRUE_S = np.array([1.0, 0.6, 1.5])


def test_recovers_the_truth_within_four_standard_errors():
    X, y, _ = make_mixture(200_000, TRUE_W, TRUE_B, TRUE_A, TRUE_S, seed=2026)
    model = MixtureOfLinearRegressions(3, random_state=0, n_init=2).fit(X, y)
    assert model.converged_
    est = np.column_stack([model.intercept_, model.coef_])
    truth = np.column_stack([TRUE_B, TRUE_A])
    cost = np.abs(est[:, None, :] - truth[None, :, :]).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    se = opg_coef_se(model.params_, [(X, y)])
    z = np.abs(est[rows] - truth[cols]) / se[rows]
    assert z.max() < 4, z
    np.testing.assert_allclose(model.weights_[rows], TRUE_W[cols], atol=0.01)
    np.testing.assert_allclose(model.sigma_[rows], TRUE_S[cols], rtol=0.02)
    # The SEs are sane: of the order σ/√(nπ).
    assert np.all(se < 0.05) and np.all(se > 1e-4)
