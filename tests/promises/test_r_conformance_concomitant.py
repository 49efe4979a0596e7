"""Concomitant variables (weights π(z)) against flexmix's ``FLXPmultinom``.

The reference fit was recorded by ``Rscript tests/fixtures/r/make_concomitant_fixture.R``
(R 4.2.2, flexmix 2.3.18): 600 simulated rows, k = 3, ``y ~ x`` with the gate
``~ z1 + z2``; the R call is stored beside the numbers in
``tests/fixtures/r/concomitant_fit.json``.  flexmix maximises the gate fully
at each iteration (nnet's multinom); streammix takes one Böhning step per pass,
so it needs more passes to reach the same fixed point.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import FIXTURES
from support.r_reference import assert_component_se_match_refit

from streammix import MixtureOfLinearRegressions

REF = json.loads((FIXTURES / "r" / "concomitant_fit.json").read_text())["concomitant"]
DATA = np.genfromtxt(FIXTURES / "r" / "concomitant.csv", delimiter=",", names=True)


def test_same_fit_as_flexmix():
    X, y = DATA["x"][:, None], DATA["y"]
    Z = np.column_stack([DATA["z1"], DATA["z2"]])
    model = MixtureOfLinearRegressions(3, df_correction=True, n_init=2, random_state=0,
                                       tol=1e-10, max_iter=5000).fit(X, y, concomitant=Z)
    assert model.converged_
    assert model.loglik_ == pytest.approx(REF["loglik"], rel=1e-6)
    assert model.loglik_ == pytest.approx(REF["polished"]["loglik"], rel=1e-8)
    assert model.n_parameters() == REF["df"]
    order = np.argsort(model.intercept_)  # the fixture lists components by intercept
    gate = model.concomitant_coef_[order] - model.concomitant_coef_[order[0]]
    for j, g, comp in zip(order, gate, REF["components"], strict=True):
        assert model.weights_[j] == pytest.approx(comp["prior"], abs=1e-4)
        np.testing.assert_allclose([model.intercept_[j], model.coef_[j, 0]], comp["coef"],
                                   atol=1e-4)
        assert model.sigma_[j] == pytest.approx(comp["sigma"], rel=1e-4)
        np.testing.assert_allclose(g, comp["gate"], atol=1e-4)
    assert np.all(model.concomitant_coef_[0] == 0.0)
    crit = model.information_criteria()
    assert crit["n_parameters"] == 15


def test_standard_errors_match_flexmix_refit():
    refit = REF["refit"]
    X, y = DATA["x"][:, None], DATA["y"]
    Z = np.column_stack([DATA["z1"], DATA["z2"]])
    model = MixtureOfLinearRegressions(3, n_init=2, random_state=0, tol=1e-10,
                                       max_iter=5000).fit(X, y, concomitant=Z, se=True)
    assert model.score_gap_ < 1e-6
    r_se, ours = assert_component_se_match_refit(model, refit)
    # the gate against flexmix's baseline (its component 1): Var(γ_j − γ_b)
    m, q1 = model.concomitant_coef_.shape
    pos = {name: i for i, name in enumerate(model.vcov_names_)}
    terms = ["(intercept)", *model.concomitant_names_]
    b = ours[0]
    for r_comp, j in enumerate(ours[1:], start=2):
        for c, r_term in enumerate(["(Intercept)", "z1", "z2"]):
            a = np.zeros(len(pos))
            for comp, sign in ((j, 1.0), (b, -1.0)):
                if comp > 0:
                    a[pos[f"comp{comp + 1}:gate:{terms[c]}"]] += sign
            se = float(np.sqrt(a @ model.vcov_ @ a))
            assert se == pytest.approx(r_se[f"concomitant_Comp.{r_comp}.{r_term}"], rel=0.02)
