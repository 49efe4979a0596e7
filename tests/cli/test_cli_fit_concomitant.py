"""``streammix fit --concomitant``: concomitant variables z from the command line, as columns
(``z1,z2``) or a gate formula (``"~ z + C(seg)"``); the fit equals the library's, the model
file holds the gate, ``info`` shows it, ``predict`` reads new data's z, a checkpointed fit
stopped after pass 3 resumes to the uninterrupted result; with --groups (and --weight) the
grouped gated fit of the library."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streammix import MixtureOfLinearRegressions, ParquetSource
from streammix.cli import progress
from streammix.cli.main import main


def _table(n: int, seed: int, with_y: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    seg = rng.choice(np.array(["a", "b", "c"]), size=n)
    second = rng.random(n) < 1 / (1 + np.exp(-1.5 * z - (seg == "b")))
    y = np.where(second, -2 - x, 2 + x) + rng.normal(scale=0.5, size=n)
    return pa.table({"x": x, "z1": z, "seg": seg, **({"y": y} if with_y else {})})


@pytest.fixture
def lake(tmp_path):
    (tmp_path / "lake").mkdir()
    table = _table(1200, 1)
    pq.write_table(table.slice(0, 700), tmp_path / "lake" / "part-0.parquet")
    pq.write_table(table.slice(700), tmp_path / "lake" / "part-1.parquet")
    return tmp_path / "lake"


def _argv(lake, out, *extra):
    return ["fit", str(lake), "--target", "y", "--features", "x", "-k", "2", "--seed", "0",
            "--chunk-rows", "300", "--in-process", "--out", str(out), *extra]


@pytest.mark.parametrize("gate, library_gate", [('"z1"', ["z1"]),
                                                ("~ z1 + C(seg)", "~ z1 + C(seg)")])
def test_cli_fit_with_concomitant_equals_the_library_and_predicts_new_data(
        lake, tmp_path, capsys, gate, library_gate):
    out = tmp_path / "model.json"
    assert main(_argv(lake, out, "--concomitant", gate, "-q")) == 0, capsys.readouterr().err
    fitted = MixtureOfLinearRegressions.load(out)
    library = MixtureOfLinearRegressions(2, random_state=0, chunk_rows=300).fit(
        ParquetSource(lake, target="y", features=["x"], concomitant=library_gate,
                      chunk_rows=300))
    for name in ("concomitant_coef_", "weights_"):
        np.testing.assert_allclose(getattr(fitted, name), getattr(library, name),
                                   rtol=0, atol=1e-12)
    np.testing.assert_allclose(fitted.params_.beta, library.params_.beta, rtol=0, atol=1e-12)
    assert abs(fitted.loglik_ - library.loglik_) < 1e-9
    record = json.loads(out.read_text())
    assert record["data"]["concomitant"] == library_gate
    assert np.shape(record["fitted"]["concomitant"]["coef"]) == library.concomitant_coef_.shape
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "concomitant variables (the gate" in shown and "comp2 gate:" in shown
    assert f"{library.concomitant_coef_[1, 1]:.4g}"[:5] in shown
    (tmp_path / "new").mkdir()
    new = _table(80, 2, with_y=False)
    pq.write_table(new, tmp_path / "new" / "part.parquet")
    assert main(["predict", str(out), str(tmp_path / "new"), "--out", str(tmp_path / "pred"),
                 "-q"]) == 0, capsys.readouterr().err
    pred = pq.read_table(tmp_path / "pred" / "part.parquet")
    priors = np.column_stack([pred.column("prior_1"), pred.column("prior_2")])
    assert np.ptp(priors[:, 0]) > 0.3  # π(z) of each row, not one weight for all
    columns = ["z1", "seg"] if isinstance(library_gate, str) else ["z1"]
    expected = library.predict_weights(new.select(columns).to_pandas())  # π(z) of the library
    np.testing.assert_allclose(priors, expected, rtol=0, atol=1e-10)


def test_missing_z_column_and_z_varying_in_a_group_are_refused(lake, tmp_path, capsys):
    out = tmp_path / "model.json"
    assert main(_argv(lake, out, "--concomitant", "z2")) == 1
    err = capsys.readouterr().err
    assert "part-0.parquet" in err and "'z2'" in err and not out.exists()
    # z1 is not constant within the groups of seg: exit 1 naming file, column and group
    assert main(_argv(lake, out, "--concomitant", "z1", "--groups", "seg")) == 1
    err = capsys.readouterr().err
    assert "part-0.parquet: column 'z1' varies within group 'a'" in err, err
    assert main(_argv(lake, out, "--concomitant", "~ ")) == 2


def test_selection_over_k_keeps_the_gate(lake, tmp_path, capsys):
    out = tmp_path / "model.json"
    argv = _argv(lake, out, "--concomitant", "z1", "-q")
    argv[argv.index("-k") + 1] = "1,2"
    assert main(argv) == 0, capsys.readouterr().err
    table = capsys.readouterr().out
    fitted = MixtureOfLinearRegressions.load(out)
    assert fitted.n_components == 2 and "chosen by bic: k = 2" in table
    assert fitted.concomitant_coef_.shape == (2, 2)
    library = MixtureOfLinearRegressions(2, random_state=0, chunk_rows=300).fit(
        ParquetSource(lake, target="y", features=["x"], concomitant=["z1"], chunk_rows=300))
    np.testing.assert_allclose(fitted.concomitant_coef_, library.concomitant_coef_,
                               rtol=0, atol=1e-12)


def test_checkpointed_fit_stopped_after_pass_3_resumes_to_the_uninterrupted_result(
        lake, tmp_path, capsys, monkeypatch):
    out, folder = tmp_path / "model.json", tmp_path / "ckpt"
    argv = _argv(lake, out, "--concomitant", "~ z1 + C(seg)", "--tol", "1e-8",
                 "--checkpoint", str(folder))
    reference = tmp_path / "reference.json"
    assert main(_argv(lake, reference, "--concomitant", "~ z1 + C(seg)", "--tol",
                      "1e-8", "-q")) == 0
    calls = []
    original = progress.FitProgress.__call__

    def stop_after_three(self, record):  # the 4th pass's record: as if killed (Ctrl-C)
        calls.append(record)
        if len(calls) > 3:
            raise KeyboardInterrupt
        original(self, record)

    monkeypatch.setattr(progress.FitProgress, "__call__", stop_after_three)
    assert main(argv) == 130
    assert not out.exists() and (folder / "checkpoint.json").exists()
    n_saved = len(list((folder / "passes").glob("*.json")))
    monkeypatch.setattr(progress.FitProgress, "__call__", original)
    assert main(argv + ["--resume", "-q"]) == 0, capsys.readouterr().err
    resumed, whole = MixtureOfLinearRegressions.load(out), MixtureOfLinearRegressions.load(
        reference)
    assert 3 <= n_saved < whole.n_iter_  # stopped part way, then resumed from the saved passes
    np.testing.assert_array_equal(resumed.concomitant_coef_, whole.concomitant_coef_)
    np.testing.assert_array_equal(resumed.params_.beta, whole.params_.beta)
    assert resumed.loglik_ == whole.loglik_ and resumed.n_iter_ == whole.n_iter_


def test_with_a_formula_and_a_bad_data_record(lake, tmp_path, capsys):
    out = tmp_path / "model.json"
    argv = ["fit", str(lake), "--formula", "y ~ x", "-k", "2", "--seed", "0", "--chunk-rows",
            "300", "--in-process", "--out", str(out), "--concomitant", "z1", "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    fitted = MixtureOfLinearRegressions.load(out)
    library = MixtureOfLinearRegressions(2, random_state=0, chunk_rows=300).fit(
        ParquetSource(lake, formula="y ~ x", concomitant=["z1"], chunk_rows=300))
    np.testing.assert_allclose(fitted.concomitant_coef_, library.concomitant_coef_,
                               rtol=0, atol=1e-12)
    record = json.loads(out.read_text())
    record["data"]["concomitant"] = 3  # neither a formula nor a list of columns
    out.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["info", str(out)]) == 1
    assert "data.concomitant" in capsys.readouterr().err


def test_groups_with_a_gate_and_weights_from_the_command_line(tmp_path, capsys):
    """``--groups id --concomitant z1,z2 --weight w`` on the lake of
    ``tests/fixtures/r/grouped_gate.csv``: the library's grouped gated fit (1e-12)."""
    import pandas as pd
    from support import FIXTURES

    frame = pd.read_csv(FIXTURES / "r" / "grouped_gate.csv")
    (tmp_path / "panel").mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 2)):
        pq.write_table(pa.Table.from_pandas(frame.iloc[rows], preserve_index=False),
                       tmp_path / "panel" / f"part-{i}.parquet", row_group_size=300)
    out = tmp_path / "model.json"
    argv = _argv(tmp_path / "panel", out, "--groups", "id", "--concomitant", "z1,z2",
                 "--weight", "w", "-q")
    assert main(argv) == 0, capsys.readouterr().err
    fitted = MixtureOfLinearRegressions.load(out)
    library = MixtureOfLinearRegressions(2, random_state=0, chunk_rows=300).fit(
        ParquetSource(tmp_path / "panel", target="y", features=["x"], groups="id",
                      concomitant=["z1", "z2"], weight="w", chunk_rows=300))
    np.testing.assert_allclose(fitted.concomitant_coef_, library.concomitant_coef_,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(fitted.coef_, library.coef_, rtol=0, atol=1e-12)
    assert fitted.n_groups_ == library.n_groups_ == 300
