"""Promise: model files and checkpoints written by earlier versions still load and resume.

The files in ``tests/fixtures/compat/`` were written by the streammix of
commit caca482, before the package was split into subpackages
(``tests/fixtures/compat/make_fixtures.py``), together with what that
version computed from them (``expected.json``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from support import FIXTURES

from streammix import MixtureOfLinearRegressions
from streammix.cli.main import main as cli_main

COMPAT = FIXTURES / "compat"
EXPECTED = json.loads((COMPAT / "expected.json").read_text())


def load_data():
    data = np.loadtxt(COMPAT / "data.csv", delimiter=",", skiprows=1)
    return data[:, :2], data[:, 2]


@pytest.mark.parametrize("name", ["model_per_component", "model_shared"])
def test_a_model_file_of_an_earlier_version_loads_and_predicts_the_same(name):
    X, y = load_data()
    model = MixtureOfLinearRegressions.load(COMPAT / f"{name}.json")
    expected = EXPECTED[name]
    # the file names its columns (x0, x1 or x1, x2): give them by name, without a
    # FeatureNamesWarning for an array
    X = pd.DataFrame(X, columns=list(model.feature_names_in_))
    np.testing.assert_allclose(model.predict(X[:20]), expected["predict"], rtol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X[:20], y[:20]), expected["predict_proba"],
                               rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model.score_samples(X[:20], y[:20]), expected["score_samples"],
                               rtol=1e-12)
    assert hasattr(model, "vcov_") and model.bse_["coef"].shape == (2, 3)
    assert str(model.summary()) == expected["summary"]
    assert model.report() == expected["report"]


def test_info_prints_an_earlier_model_file_as_it_did(capsys):
    assert cli_main(["info", str(COMPAT / "model_per_component.json")]) == 0
    assert capsys.readouterr().out == EXPECTED["model_per_component"]["info"]


def test_a_batch_checkpoint_of_an_earlier_version_resumes_to_the_uninterrupted_fit(tmp_path):
    X, y = load_data()
    folder = tmp_path / "checkpoint"
    shutil.copytree(COMPAT / "fit_checkpoint", folder)
    saved = len(list((folder / "passes").glob("*.json")))
    expected = EXPECTED["fit_checkpoint"]
    # the earlier version's collapse rule: on_collapse="drop" (its default, recorded in
    # the checkpoint) and 5 (p + 1) = 20 effective rows, no spike rule; under today's
    # default rule the starting values refined on the 50-row sample differ; and its
    # default variance_floor, 1e-3 (recorded in the checkpoint; today's is 1e-4)
    old_rule = {"on_collapse": "drop", "min_eff_rows": 20, "min_sigma_ratio": 0.0,
                "variance_floor": 1e-3}
    model = MixtureOfLinearRegressions(2, **{**old_rule, **expected["settings"]})
    model.fit(X, y, checkpoint=folder, resume=True)
    assert model.n_passes_ == expected["n_passes"] > saved + 1  # it went on after the replay
    assert model.n_iter_ == expected["n_iter"]
    for key in ("weights", "beta", "sigma2"):
        np.testing.assert_allclose(getattr(model.params_, key), expected["params"][key],
                                   rtol=1e-10)
    assert model.loglik_ == pytest.approx(expected["loglik"], rel=1e-12)


def test_a_stream_checkpoint_of_an_earlier_version_resumes_to_the_uninterrupted_stream(
        tmp_path):
    folder = tmp_path / "ck"
    shutil.copytree(COMPAT / "stream_checkpoint", folder)
    expected = EXPECTED["stream_checkpoint"]
    with open(COMPAT / "stream.arrows", "rb") as stdin:  # the stream again, from its start
        proc = subprocess.run([sys.executable, "-m", "streammix", *expected["args"],
                               "--checkpoint", str(folder)],
                              check=True, capture_output=True, text=True, stdin=stdin)
    lines = proc.stdout.splitlines()  # one per batch consumed: the 5 after the checkpoint's 3
    assert len(lines) == 5 and lines[0].startswith("batch 4 rows 200 ")
    model = MixtureOfLinearRegressions.load(folder / "model.json")
    whole = MixtureOfLinearRegressions.from_dict(expected["model"])
    assert model.n_rows_ == whole.n_rows_ == 400
    assert model.n_iter_ == whole.n_iter_
    for key in ("weights_", "intercept_", "coef_", "sigma_"):
        np.testing.assert_allclose(getattr(model, key), getattr(whole, key), rtol=1e-10)
