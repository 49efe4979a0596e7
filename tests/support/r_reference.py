"""The fits recorded with R's flexmix and mixtools (``tests/fixtures/r``), and their data.

The reference values were recorded by ``Rscript tests/fixtures/r/make_fixtures.R``;
the exact R call of each fit is stored beside its numbers in
``reference_fits.json``.
"""

from __future__ import annotations

import json

import numpy as np

from support import FIXTURES

__all__ = ["R_FIXTURES", "REFERENCE", "CASES", "load_case"]

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
