"""Grouped classes with concomitant variables and with weights, against flexmix.

Recorded by ``Rscript tests/fixtures/r/make_grouped_gate_fixture.R`` (R 4.2.2,
flexmix 2.3.18): 300 groups of 5–15 rows, k = 2, ``y ~ x | id`` with the gate
``FLXPmultinom(~ z1 + z2)`` (z constant within a group), with integer group
weights ``w``, and with both; each R call is stored in
``tests/fixtures/r/grouped_gate_fit.json`` beside refit()'s covariance.  BIC uses
flexmix's nobs (rows, or Σw with weights).  flexmix's ICL of a weighted fit
counts each group's classification term once, not w_g times, so ICL is compared
without weights only.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import FIXTURES
from support.r_reference import assert_component_se_match_refit

from streammix import DataError, MixtureOfLinearRegressions

REF = json.loads((FIXTURES / "r" / "grouped_gate_fit.json").read_text())["grouped_gate"]
DATA = np.genfromtxt(FIXTURES / "r" / "grouped_gate.csv", delimiter=",", names=True)
X, Y, IDS, W = DATA["x"][:, None], DATA["y"], DATA["id"].astype(int), DATA["w"]
Z = np.column_stack([DATA["z1"], DATA["z2"]])
CASES = {"gated": (None, Z), "weighted": (W, None), "gated_weighted": (W, Z)}


def _fit(case: str, *, se=False, **kw) -> MixtureOfLinearRegressions:
    weights, gate = CASES[case]
    kw = {"n_init": 2, "random_state": 0, "tol": 1e-10, "max_iter": 5000, **kw}
    model = MixtureOfLinearRegressions(2, **kw)
    return model.fit(X, Y, weights, groups=IDS, concomitant=gate, se=se)


@pytest.mark.parametrize(("case", "standardize"), [("gated", False), ("weighted", False),
                                                   ("gated_weighted", False),
                                                   ("weighted", True)])
def test_same_fit_as_flexmix(case, standardize):
    ref = REF[case]
    model = _fit(case, df_correction=True, standardize=standardize)
    assert model.converged_
    assert model.loglik_ == pytest.approx(ref["loglik"], rel=1e-6)
    assert model.n_parameters() == ref["df"]
    assert model.n_groups_ == REF["n_groups"]
    crit = model.information_criteria()
    assert crit["n"] == ref["nobs"]
    assert crit["bic"] == pytest.approx(ref["bic"], rel=1e-6)
    if CASES[case][0] is None:
        assert crit["icl"] == pytest.approx(ref["icl"], rel=1e-6)
    order = np.argsort(model.intercept_)  # the fixture lists components by intercept
    gated = CASES[case][1] is not None
    if gated:
        gate = model.concomitant_coef_[order] - model.concomitant_coef_[order[0]]
    for pos, (j, comp) in enumerate(zip(order, ref["components"], strict=True)):
        assert model.weights_[j] == pytest.approx(comp["prior"], abs=1e-4)
        np.testing.assert_allclose([model.intercept_[j], model.coef_[j, 0]], comp["coef"],
                                   atol=1e-4)
        assert model.sigma_[j] == pytest.approx(comp["sigma"], rel=1e-4)
        if gated:
            np.testing.assert_allclose(gate[pos], comp["gate"], atol=1e-4)
    assert hasattr(model, "concomitant_coef_") == gated


@pytest.mark.parametrize("case", list(CASES))
def test_standard_errors_match_flexmix_refit(case):
    """refit()'s SEs (the numerical Hessian of flexmix's grouped log-likelihood) against
    Louis' formula over whole groups, with the gate and the weights."""
    refit = REF[case]["refit"]
    model = _fit(case, se=True)
    assert model.score_gap_ < 1e-6
    r_se, _ = assert_component_se_match_refit(model, refit)
    se = np.sqrt(np.diag(model.vcov_))
    if CASES[case][1] is None:  # the logit of component 2 (k = 2: the sign does not matter)
        assert se[-1] == pytest.approx(r_se["concomitant_Comp.2.alpha"], rel=0.02)
        return
    for c, term in enumerate(["(Intercept)", "z1", "z2"]):
        assert model.bse_["concomitant"][1, c] == pytest.approx(
            r_se[f"concomitant_Comp.2.{term}"], rel=0.02)


@pytest.mark.filterwarnings("ignore::streammix.exceptions.ConvergenceWarning")
def test_standardize_gives_the_same_grouped_fit():
    """EM is equivariant pass by pass: from the same starts, the standardized fit
    mapped back equals the plain one after the same number of passes (40 here).

    Not compared at convergence: at |ℓ| = 12441 one ulp of ℓ is 1.8e-12, so a
    tol of 1e-12 or below stops at the first pass whose Δℓ rounds to 0 --
    pass 250 in one run, 252 in the other -- while the intercepts still creep
    along a flat ridge, each about 6e-7 short of the fixed point (measured: at
    tol=0 both fits agree to 1e-14 from 30 to 3000 passes; at tol 1e-12 and
    1e-14 the intercepts differed by 6e-8 and 8e-8, once by 1.007e-7 on main).
    A tighter tol cannot be reached."""
    plain = _fit("weighted", tol=0.0, max_iter=40)
    scaled = _fit("weighted", tol=0.0, max_iter=40, standardize=True)
    assert plain.n_iter_ == scaled.n_iter_ == 40
    assert scaled.loglik_ == pytest.approx(plain.loglik_, rel=1e-13)
    np.testing.assert_allclose(scaled.coef_, plain.coef_, rtol=0, atol=1e-11)
    np.testing.assert_allclose(scaled.intercept_, plain.intercept_, rtol=0, atol=1e-11)
    np.testing.assert_allclose(scaled.sigma_, plain.sigma_, rtol=1e-11)
    np.testing.assert_allclose(scaled.weights_, plain.weights_, rtol=0, atol=1e-11)
    assert scaled.class_loglik_ == pytest.approx(plain.class_loglik_, rel=1e-11)
    # the converged standardized fit is checked against flexmix in test_same_fit_as_flexmix


def test_a_concomitant_variable_that_varies_within_a_group_is_refused_naming_it():
    labels = np.array([f"g{i:03d}" for i in IDS])
    bad = Z.copy()
    rows = np.flatnonzero(IDS == 7)
    bad[rows[2], 1] = 1.0 - bad[rows[2], 1]
    with pytest.raises(DataError, match=r"'z1' varies within group 'g007'"):
        MixtureOfLinearRegressions(2).fit(X, Y, groups=labels, concomitant=bad)
    weights = W.copy()
    weights[rows[-1]] += 1.0
    with pytest.raises(DataError, match=r"'sample_weight' varies within group 'g007'"):
        MixtureOfLinearRegressions(2).fit(X, Y, weights, groups=labels)


@pytest.mark.filterwarnings("ignore::streammix.exceptions.ConvergenceWarning")
def test_grouped_gated_generalised_em_is_monotone():
    """Plain GEM (one Böhning step of the gate per pass), 60 passes: never down."""
    weights, gate = CASES["gated_weighted"]
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-9, max_iter=60,
                                       accelerate=None).fit(X, Y, weights, groups=IDS,
                                                            concomitant=gate)
    ll = np.array([h["loglik"] for h in model.history_])
    assert ll.size > 20
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))


def test_groups_of_one_row_are_the_row_wise_fit_with_a_gate_and_a_shared_coefficient():
    """Every group a single row: the grouped gated fit with ``fixed`` is the row-wise one
    (another implementation of the E-step, the information and the constraint), SEs
    included."""
    conc = np.genfromtxt(FIXTURES / "r" / "concomitant.csv", delimiter=",", names=True)
    X1, y1 = conc["x"][:, None], conc["y"]
    Z1 = np.column_stack([conc["z1"], conc["z2"]])
    kw = dict(random_state=0, tol=1e-10, max_iter=3000, fixed=[0], n_init=1)
    rows = MixtureOfLinearRegressions(3, **kw).fit(X1, y1, concomitant=Z1, se=True)
    groups = MixtureOfLinearRegressions(3, **kw).fit(X1, y1, groups=np.arange(y1.size),
                                                     concomitant=Z1, se=True)
    assert groups.loglik_ == pytest.approx(rows.loglik_, rel=1e-9)
    assert groups.n_parameters() == rows.n_parameters()
    np.testing.assert_allclose(groups.concomitant_coef_, rows.concomitant_coef_, atol=1e-5)
    assert groups.vcov_names_ == rows.vcov_names_
    np.testing.assert_allclose(groups.vcov_, rows.vcov_, rtol=1e-4, atol=1e-9)
