"""The command line's doors: plots of stream checkpoints, predictions without the target,
features chosen by name.

The program runs in this process (``run_main``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.cli import run_main
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions


def read_files(folder: Path) -> pa.Table:
    """The files of a folder one after the other, in name order."""
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))])


def write_lake(folder: Path, n_files: int = 2, n_rows: int = 1500, seed: int = 3):
    X, y, _ = make_mixture(n_files * n_rows, [0.6, 0.4], [-3.0, 3.0],
                           [[2.0, -1.0, 0.5], [-1.0, 0.5, 1.5]], [1.0, 0.7], seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        s = slice(i * n_rows, (i + 1) * n_rows)
        pq.write_table(pa.table({"x1": X[s, 0], "x2": X[s, 1], "x3": X[s, 2], "y": y[s]}),
                       folder / f"part-{i}.parquet", row_group_size=500)
    return X, y


def test_plot_loglik_of_a_stream_checkpoint(tmp_path):
    lake = tmp_path / "lake"
    write_lake(lake)
    ck = tmp_path / "ck"
    proc = run_main("stream", lake, "--target", "y", "--components", 2, "--batch-rows", 500,
                    "--checkpoint", ck)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "trace.png"
    proc = run_main("plot", ck / "model.json", "--kind", "loglik", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1000


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("doors")
    write_lake(folder / "lake")
    out = folder / "model.json"
    proc = run_main("fit", folder / "lake", "--target", "y", "--features", "x1,x2,x3",
                    "--components", 2, "--seed", 0, "--in-process", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return folder / "lake", out


def test_predict_features_are_taken_by_name(fitted, tmp_path):
    lake, model = fitted
    outs = []
    for order in ("x1,x2,x3", "x2,x1,x3"):
        out = tmp_path / order.replace(",", "")
        proc = run_main("predict", model, lake, "--features", order, "--out", out)
        assert proc.returncode == 0, proc.stderr
        outs.append(read_files(out).column("mean").to_numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    proc = run_main("predict", model, lake, "--features", "x1,x2,y", "--out", tmp_path / "bad")
    assert proc.returncode == 1
    assert "are not the columns the model was fitted on (x1,x2,x3)" in proc.stderr
    assert "missing: - x3" in proc.stderr and not (tmp_path / "bad").exists()


def test_predict_on_data_without_the_target(fitted, tmp_path):
    from scipy.stats import norm
    lake, model_file = fitted
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in sorted(lake.iterdir()):
        pq.write_table(pq.read_table(path).drop(["y"]), bare / path.name, row_group_size=500)
    out = tmp_path / "pred"
    proc = run_main("predict", model_file, bare, "--out", out)
    assert proc.returncode == 0, proc.stderr
    got = read_files(out)
    assert got.column_names == ["row_id", "mean", "sd", "q05", "q50", "q95", "prior_1",
                                "prior_2"]
    model = MixtureOfLinearRegressions.load(model_file)
    X = read_files(bare).select(["x1", "x2", "x3"]).to_pandas()
    means = model.predict_components(X)
    np.testing.assert_allclose(got.column("mean").to_numpy(), model.predict(X), rtol=1e-12)
    np.testing.assert_array_equal(got.column("prior_2").to_numpy(),
                                  np.full(len(X), model.weights_[1]))
    for name, q in (("q05", 0.05), ("q50", 0.5), ("q95", 0.95)):  # F(quantile) = q
        F = norm.cdf((got.column(name).to_numpy()[:, None] - means) / model.sigma_) \
            @ model.weights_
        np.testing.assert_allclose(F, q, atol=1e-9)
    var = ((means**2 + model.sigma_**2) @ model.weights_) - model.predict(X) ** 2
    np.testing.assert_allclose(got.column("sd").to_numpy(), np.sqrt(var), rtol=1e-10)
    # with the target: posteriors and log-likelihood, as before
    proc = run_main("predict", model_file, lake, "--out", tmp_path / "full")
    assert proc.returncode == 0, proc.stderr
    full = pq.read_table(tmp_path / "full")
    assert full.column_names == ["row_id", "mean", "component", "loglik", "prob_1", "prob_2"]
    # asking for a target the data lacks is an error naming it
    proc = run_main("predict", model_file, bare, "--target", "y", "--out", tmp_path / "no")
    assert proc.returncode == 1 and "column 'y' is missing" in proc.stderr
