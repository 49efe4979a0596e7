"""Coefficients shared by all components (``fixed=``) against flexmix's ``FLXMRglmfix``.

The reference fits were recorded by ``Rscript tests/fixtures/r/make_glmfix_fixture.R``
(R 4.2.2, flexmix 2.3.18) on flexmix's NregFix data; the exact R call of
each fit is stored beside its numbers in ``tests/fixtures/r/glmfix_fits.json``.
With ``df_correction=True`` streammix runs flexmix's M-step (posterior-weighted
pooled fit, σ_j² with n − p_j), so it reaches flexmix's fixed point; without it,
the maximum-likelihood fit, whose standard errors are compared with ``refit()``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import FIXTURES

from streammix import MixtureOfLinearRegressions

GLMFIX = json.loads((FIXTURES / "r" / "glmfix_fits.json").read_text())
DATA = np.genfromtxt(FIXTURES / "real_data" / "nregfix.csv", delimiter=",", names=True)
X = np.column_stack([DATA["x1"], DATA["x2"]])
Y = DATA["y"]
R_NAMES = {"(Intercept)": 0, "x1": 1, "x2": 2}  # R's terms -> design columns


def _fit(fixed, se=False, **kwargs):
    return MixtureOfLinearRegressions(3, fixed=fixed, n_init=5, random_state=0, tol=1e-11,
                                      max_iter=5000, **kwargs).fit(X, Y, se=se)


def _by_x1(model):
    return np.argsort(model.coef_[:, 0])  # the fixture lists components by their x1 slope


@pytest.mark.parametrize("name, fixed", [("nregfix_fixed_x2", [1]),
                                         ("nregfix_fixed_intercept", ["(intercept)"])])
def test_same_fixed_point_as_flexmix(name, fixed):
    ref = GLMFIX[name]
    model = _fit(fixed, df_correction=True)
    assert model.converged_
    assert model.loglik_ == pytest.approx(ref["loglik"], rel=1e-6)
    assert model.loglik_ == pytest.approx(ref["polished_loglik"], rel=1e-9)
    assert model.n_parameters() == ref["df"]
    for j, comp in zip(_by_x1(model), ref["components"], strict=True):
        assert model.weights_[j] == pytest.approx(comp["prior"], abs=1e-4)
        for term, value in comp["coef"].items():
            assert model.params_.beta[j, R_NAMES[term]] == pytest.approx(value, abs=1e-4)
        assert model.sigma_[j] == pytest.approx(comp["sigma"], rel=1e-4)
    shared = 0 if fixed == ["(intercept)"] else 2
    assert np.ptp(model.params_.beta[:, shared]) == 0.0


def test_standard_errors_match_flexmix_refit():
    ref = GLMFIX["nregfix_fixed_x2"]["refit"]
    model = _fit([1], se=True)  # the MLE, which refit() re-maximises to
    assert model.vcov_.shape == (12, 12)
    assert model.vcov_names_[0] == "x1"  # the shared coefficient, once (X's second column)
    for j, se in zip(_by_x1(model), ref["se"], strict=True):
        for term, value in se.items():
            assert model.bse_["coef"][j, R_NAMES[term]] == pytest.approx(value, rel=0.02)
    assert model.params_.beta[0, 2] == pytest.approx(ref["coef"]["model.1_x2"], abs=1e-4)
    summary = model.summary()
    assert [r.term for r in summary.shared] == ["x1"]
    assert len(summary.coefficients) == 3 * 2  # the shared one is not repeated
