"""``model.summary()``: the numbers, and a golden text output."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from support import FIXTURES

from streammix import MixtureOfLinearRegressions, NotFittedError
from streammix.reports.summary import Summary

GOLDEN = FIXTURES / "summary_npreg.txt"


@pytest.fixture(scope="module")
def npreg_fit():
    """NPreg, started at the MLE recorded from R (mixtools, polished to 1.6e-8), so that
    the golden text depends on the optimum only, not on the path EM takes to it."""
    data = pd.read_csv(FIXTURES / "r" / "npreg.csv")
    X = pd.DataFrame({"x": data["x"], "x^2": data["x"] ** 2})
    reference = json.loads((FIXTURES / "r" / "reference_fits.json").read_text())
    comps = reference["npreg_mixtools_arbvar"]["polished"]["components"]
    init = {"weights": [c["prior"] for c in comps], "intercept": [c["coef"][0] for c in comps],
            "coef": [c["coef"][1:] for c in comps], "sigma": [c["sigma"] for c in comps]}
    model = MixtureOfLinearRegressions(2, init=init, tol=1e-10, max_iter=5000)
    return model.fit(X, data["yn"], se=True), X, data["yn"]


def test_summary_text_is_stable(npreg_fit):
    """Golden file, reviewed by eye; regenerate with STREAMMIX_UPDATE_GOLDEN=1."""
    model, _, _ = npreg_fit
    text = model.summary().as_text() + "\n"
    if os.environ.get("STREAMMIX_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert str(model.summary()) == text[:-1]


def test_summary_numbers(npreg_fit):
    model, _, _ = npreg_fit
    frame = model.summary().to_frame()
    assert list(frame.columns) == ["estimate", "std_err", "z", "p_value", "ci_low", "ci_high"]
    assert frame.shape == (10, 6)
    for j in range(2):
        part = frame.loc[j + 1]
        coef = part.loc[["(intercept)", "x", "x^2"]]
        np.testing.assert_array_equal(coef["estimate"], model.params_.beta[j])
        np.testing.assert_array_equal(coef["std_err"], model.bse_["coef"][j])
        np.testing.assert_allclose(coef["z"], coef["estimate"] / coef["std_err"], rtol=1e-14)
        np.testing.assert_allclose(coef["p_value"], 2 * st.norm.sf(np.abs(coef["z"])),
                                   rtol=1e-10)
        q = st.norm.ppf(0.975)
        np.testing.assert_allclose(coef["ci_low"], coef["estimate"] - q * coef["std_err"])
        np.testing.assert_allclose(coef["ci_high"], coef["estimate"] + q * coef["std_err"])
        sig = part.loc["sigma"]
        assert sig["estimate"] == model.sigma_[j]
        assert sig["std_err"] == pytest.approx(model.sigma_[j] * model.bse_["log_sigma"][j])
        assert sig["ci_low"] == pytest.approx(model.sigma_[j] * math.exp(
            -q * model.bse_["log_sigma"][j]))
        w = part.loc["weight"]
        assert w["estimate"] == model.weights_[j] and w["std_err"] == model.bse_["weight"][j]
        assert 0 < w["ci_low"] < w["estimate"] < w["ci_high"] < 1
        assert np.isnan(w["z"]) and np.isnan(sig["p_value"])
    # two components of a 2-mixture: the weights have the same SE
    assert frame.loc[(1, "weight"), "std_err"] == pytest.approx(
        frame.loc[(2, "weight"), "std_err"], rel=1e-12)


def test_summary_level_and_dict(npreg_fit):
    model, _, _ = npreg_fit
    narrow = model.summary(alpha=0.10)
    wide = model.summary()
    r90, r95 = narrow.coefficients[0], wide.coefficients[0]
    assert r90.ci_high - r90.ci_low == pytest.approx(
        (r95.ci_high - r95.ci_low) * st.norm.ppf(0.95) / st.norm.ppf(0.975))
    assert "90% Wald intervals" in narrow.as_text() and "[0.05" in narrow.as_text()
    record = json.loads(json.dumps(wide.to_dict(), allow_nan=False))
    assert record["stats"]["n_parameters"] == 9 and record["weights"][0]["z"] is None
    assert record["coefficients"][1]["term"] == "x"
    crit = model.information_criteria()
    assert record["stats"]["bic"] == crit["bic"] and record["stats"]["icl"] == crit["icl"]
    with pytest.raises(ValueError, match="alpha"):
        model.summary(alpha=1.5)


def test_summary_without_standard_errors_and_unfitted(npreg_fit):
    _, X, y = npreg_fit
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8, noise="shared")
    with pytest.raises(NotFittedError):
        model.summary()
    model.fit(X, y)
    summary = model.summary()
    assert isinstance(summary, Summary)
    text = summary.as_text()
    assert "not computed" in text and "(shared noise)" in text and "n/a" in text
    assert summary.to_frame()["std_err"].isna().all()
    model.compute_se(X, y, method="sandwich")
    text = model.summary().as_text()
    assert "sandwich (robust)" in text and "n/a" not in text
