"""Edited model files are refused by the one validated loader, naming the file and the field.

The model file is written by a real ``streammix fit`` run, then edited:
an extra coefficient column (it used to pass ``info`` and fail ``predict``
with a matmul message), ``loglik_: "high"`` (crashed ``info``),
``n_components: 7`` and ``noise: "bogus"`` (accepted), a coefficient of
1e308 (predicted ``inf`` with exit 0), and ANSI escapes in column names
(printed raw).  ``info``, ``predict`` and ``plot`` read model files through
:func:`streammix.estimator.persistence.read_model_file` only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import ROOT
from support.mixtures import make_mixture

from streammix import DataError, MixtureOfLinearRegressions, ModelFileError, RecordError
from streammix.cli.main import main as cli_main

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "streammix", *map(str, args)], env=ENV,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_files")
    X, y, _ = make_mixture(400, [0.5, 0.5], [-2.0, 2.0], [[1.0, 0.5], [-1.0, 0.2]],
                           [0.5, 0.5], seed=4)
    lake = root / "lake"
    lake.mkdir()
    pq.write_table(pa.table({"x1": X[:, 0], "x2": X[:, 1], "y": y}),
                   str(lake / "part-0.parquet"))
    out = root / "model.json"
    run = _cli("fit", lake, "--target", "y", "--features", "x1,x2", "-k", "2", "--seed", "0",
               "--in-process", "--se", "--out", out)
    assert run.returncode == 0, run.stderr
    return {"root": root, "lake": lake, "text": out.read_text()}


def _edited(model_file, edit, name="edited.json"):
    record = json.loads(model_file["text"])
    edit(record)
    path = model_file["root"] / name
    path.write_text(json.dumps(record))
    return path


def _extra_column(r):
    r["fitted"]["params"]["beta"] = [row + [0.5] for row in r["fitted"]["params"]["beta"]]


def _set(*keys, value):
    def edit(r):
        node = r
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return edit


EDITS = [
    ("extra_column", _extra_column,
     "field 'fitted.params.beta[0]': has 4 entries, expected 3"),
    ("loglik_high", _set("fitted", "loglik_", value="high"),
     "field 'fitted.loglik_': expected a number, got 'high'"),
    ("n_components_7", _set("hyperparameters", "n_components", value=7),
     "field 'hyperparameters.n_components': is 7, but the fit started with 2 components"),
    ("noise_bogus", _set("hyperparameters", "noise", value="bogus"),
     "field 'hyperparameters.noise': noise must be one of"),
    ("unknown_hyper", _set("hyperparameters", "rm_rf", value=True),
     "field 'hyperparameters.rm_rf': is not a known field"),
    ("weights_sum", _set("fitted", "params", "weights", value=[0.9, 0.9]),
     "field 'fitted.params.weights': must sum to 1"),
    ("sigma2_negative", _set("fitted", "params", "sigma2", value=[1.0, -1.0]),
     "field 'fitted.params.sigma2': must be > 0"),
    ("names_count", _set("fitted", "feature_names_in_", value=["x1"]),
     "field 'fitted.feature_names_in_': has 1 entries, expected 2"),
    ("names_type", _set("fitted", "feature_names_in_", value=["x1", 2]),
     "field 'fitted.feature_names_in_[1]': expected a string, got 2"),
    ("n_rows_float", _set("fitted", "n_rows_", value=1.5),
     "field 'fitted.n_rows_': expected an integer, got 1.5"),
    ("vcov_shape", _set("fitted", "inference", "vcov", value=[[1.0]]),
     "field 'fitted.inference.vcov': has 1 entries, expected"),
    ("data_features", _set("data", "features", value=["x1", "x2", "x3"]),
     "field 'data.features': has 3 entries, expected 2"),
    ("params_missing", lambda r: r["fitted"].pop("params"),
     "field 'fitted.params': is missing"),
    ("fitted_list", _set("fitted", value=[]),
     "field 'fitted': expected an object, got list"),
]


def test_the_program_refuses_an_edited_model_naming_file_and_field(model_file, tmp_path):
    """Subprocesses: info and predict on the extra column (it used to pass info), loglik_."""
    path = _edited(model_file, _extra_column)
    for command in (["info", path],
                    ["predict", path, model_file["lake"], "--out", tmp_path / "pred"]):
        run = _cli(*command)
        assert run.returncode == 1, run.stderr
        assert (f"error: {path}: field 'fitted.params.beta[0]': has 4 entries, expected 3"
                in run.stderr), run.stderr
        assert "matmul" not in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "pred").exists()
    run = _cli("info", _edited(model_file, _set("fitted", "loglik_", value="high")))
    assert run.returncode == 1
    assert "field 'fitted.loglik_': expected a number, got 'high'" in run.stderr


@pytest.mark.parametrize("name, edit, message", EDITS, ids=[e[0] for e in EDITS])
def test_every_kind_of_edited_model_file_names_its_field(model_file, name, edit, message,
                                                        capsys):
    path = _edited(model_file, edit, f"{name}.json")
    with pytest.raises(ModelFileError) as info:
        MixtureOfLinearRegressions.load(path)
    assert str(info.value).startswith(f"{path}: {message}"), str(info.value)
    assert isinstance(info.value, RecordError) and isinstance(info.value, ValueError)
    assert info.value.file == str(path) and info.value.field
    assert cli_main(["info", str(path)]) == 1
    assert f"streammix info: error: {path}: {message}" in capsys.readouterr().err


def test_a_model_that_predicts_inf_writes_no_predictions(model_file, tmp_path):
    path = _edited(model_file, lambda r: r["fitted"]["params"]["beta"][0].__setitem__(1, 1e308))
    model = MixtureOfLinearRegressions.load(path)
    assert model.coef_[0, 0] == 1e308  # finite: loadable
    # The Python API refuses to return inf too (it did), naming the row.
    X = pq.read_table(model_file["lake"] / "part-0.parquet").to_pandas()[
        list(model.feature_names_in_)]
    with pytest.raises(DataError, match=r"^X: the model predicts -?inf at row \d+ \(its "
                                        r"largest coefficient is 1e\+308\)"):
        model.predict(X)
    run = _cli("predict", path, model_file["lake"], "--out", tmp_path / "pred")
    assert run.returncode == 1
    assert "the model predicts -inf at row 8 (its largest coefficient is 1e+308)" in run.stderr
    assert f"error: {model_file['lake'] / 'part-0.parquet'}: the model predicts" in run.stderr
    assert "no predictions were written" in run.stderr
    assert not (tmp_path / "pred").exists() and not list(tmp_path.iterdir())


def test_control_characters_in_column_names_are_escaped_in_output(model_file, tmp_path):
    bad = "x1\x1b[2J\x1b[31m\r"

    def edit(r):
        r["fitted"]["feature_names_in_"][0] = bad
        r["data"]["features"][0] = bad
    path = _edited(model_file, edit)
    run = _cli("info", path)
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stdout and "\r" not in run.stdout
    assert "x1\\x1b[2J\\x1b[31m\\r" in run.stdout
    run = _cli("predict", path, model_file["lake"], "--out", tmp_path / "pred")
    assert run.returncode == 1 and "\x1b" not in run.stderr  # the lake has no such column
    assert "\\x1b[2J" in run.stderr


def test_the_written_model_loads_and_round_trips(model_file):
    model = MixtureOfLinearRegressions.load(_edited(model_file, lambda r: None))
    assert model.to_dict()["fitted"]["params"] == json.loads(model_file["text"])["fitted"][
        "params"]
    assert model.bse_ is not None
