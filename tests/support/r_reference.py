"""The fits recorded with R's flexmix and mixtools (``tests/fixtures/r``), and their data.

The reference values were recorded by ``Rscript tests/fixtures/r/make_fixtures.R``;
the exact R call of each fit is stored beside its numbers in
``reference_fits.json``.
"""

from __future__ import annotations

import json

import numpy as np

from support import FIXTURES

__all__ = ["R_FIXTURES", "REFERENCE", "CASES", "load_case", "refit_se",
           "assert_component_se_match_refit"]

R_FIXTURES = FIXTURES / "r"
REFERENCE = json.loads((R_FIXTURES / "reference_fits.json").read_text())


def load_case(name):
    """``(X, y)`` of the data of the recorded R fit ``name``."""
    data = np.genfromtxt(R_FIXTURES / REFERENCE[name]["data"], delimiter=",", names=True)
    if REFERENCE[name]["data"] == "npreg.csv":
        X = np.column_stack([data["x"], data["x"] ** 2])
        return X, data["yn"]
    return np.column_stack([data["x1"], data["x2"]]), data["y"]


CASES = {
    # fixture name: streammix settings reproducing the R model
    "npreg_flexmix": dict(df_correction=True),
    "npreg_mixtools_arbvar": dict(),
    "synth_flexmix": dict(df_correction=True),
    "synth_flexmix_shared": dict(noise="shared", df_correction=True),
    "synth_mixtools_arbvar": dict(),
    "synth_mixtools_shared": dict(noise="shared"),
}


def refit_se(refit) -> dict:
    """flexmix ``refit()``'s standard errors by parameter name."""
    return dict(zip(refit["vcov_names"], np.sqrt(np.diag(refit["vcov"])), strict=True))


def assert_component_se_match_refit(model, refit, terms=("(Intercept)", "x"), rel=0.02):
    """Each component's coefficient and log σ standard errors equal ``refit()``'s to
    ``rel``; flexmix's components 1..m are ours in increasing-intercept order at
    ``refit["refit_order"]``.  Returns the SEs by flexmix name and our component of
    each of flexmix's, for the gate's checks."""
    import pytest

    r_se = refit_se(refit)
    ours = np.argsort(model.intercept_)[np.argsort(refit["refit_order"])]
    for r_comp, j in enumerate(ours, start=1):
        for k, term in enumerate(terms):
            assert model.bse_["coef"][j, k] == pytest.approx(
                r_se[f"model.1_Comp.{r_comp}_coef.{term}"], rel=rel)
        assert model.bse_["log_sigma"][j] == pytest.approx(
            r_se[f"model.1_Comp.{r_comp}_log(sigma)"], rel=rel)
    return r_se, ours
