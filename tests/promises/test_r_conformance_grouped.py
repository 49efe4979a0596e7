"""Grouped classes against flexmix's ``y ~ x | id``.

Recorded by ``Rscript tests/fixtures/r/make_grouped_fixture.R`` (R 4.2.2,
flexmix 2.3.18): 300 groups of 5–15 rows, k = 2; the R call is stored in
``tests/fixtures/r/grouped_fit.json``.  BIC and ICL use n = rows (flexmix's nobs).
Standard errors: refit() recorded by ``make_grouped_refit_fixture.R``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import FIXTURES

from streammix import MixtureOfLinearRegressions

REF = json.loads((FIXTURES / "r" / "grouped_fit.json").read_text())["grouped"]
DATA = np.genfromtxt(FIXTURES / "r" / "grouped.csv", delimiter=",", names=True)


def test_same_fit_as_flexmix():
    X, y, ids = DATA["x"][:, None], DATA["y"], DATA["id"].astype(int)
    model = MixtureOfLinearRegressions(2, df_correction=True, n_init=2, random_state=0,
                                       tol=1e-10, max_iter=5000).fit(X, y, groups=ids)
    assert model.loglik_ == pytest.approx(REF["loglik"], rel=1e-6)
    assert model.n_parameters() == REF["df"]
    crit = model.information_criteria()
    assert crit["n"] == REF["nobs"]
    assert crit["bic"] == pytest.approx(REF["bic"], rel=1e-6)
    assert crit["icl"] == pytest.approx(REF["icl"], rel=1e-6)
    assert model.n_groups_ == REF["n_groups"]
    order = np.argsort(model.intercept_)
    for j, comp in zip(order, REF["components"], strict=True):
        assert model.weights_[j] == pytest.approx(comp["prior"], abs=1e-4)
        np.testing.assert_allclose([model.intercept_[j], model.coef_[j, 0]], comp["coef"],
                                   atol=1e-4)
        assert model.sigma_[j] == pytest.approx(comp["sigma"], rel=1e-4)


REFIT = json.loads((FIXTURES / "r" / "grouped_refit.json").read_text())["grouped_refit"]


def test_standard_errors_match_flexmix_refit():
    """``Rscript tests/fixtures/r/make_grouped_refit_fixture.R``: refit()'s SEs (the
    Hessian of the grouped log-likelihood) against Louis' over whole groups, at the MLE."""
    X, y, ids = DATA["x"][:, None], DATA["y"], DATA["id"].astype(int)
    model = MixtureOfLinearRegressions(2, n_init=2, random_state=0, tol=1e-10,
                                       max_iter=5000).fit(X, y, groups=ids, se=True)
    order = np.argsort(model.intercept_)
    for j, comp in zip(order, REFIT["components"], strict=True):
        np.testing.assert_allclose([model.intercept_[j], model.coef_[j, 0]],
                                   list(comp["coef"].values()), atol=1e-3)
        np.testing.assert_allclose(model.bse_["coef"][j], list(comp["se"].values()), rtol=0.02)
