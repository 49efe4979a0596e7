"""``streammix fit --formula`` and ``streammix predict`` of a formula model.

Real Parquet lakes whose files each hold only some levels of a categorical
column, and the real program (in this process through
:func:`streammix.cli.main.main`).  The reference for
predictions is the hand-built treatment-coded design (levels sorted, the
first the baseline) times the coefficients in the model file.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.cli import run_main

from streammix import MixtureOfLinearRegressions
from streammix.cli.main import main

FORMULA = "y ~ x1 + C(region) + x2:x3"
COLUMNS = ["x1", "C(region)[T.b]", "C(region)[T.c]", "x2:x3"]
EFFECT = {"a": 0.0, "b": 1.5, "c": -1.0}


def _frame(n: int, seed: int, levels=("a", "b", "c")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "region": rng.choice(levels, n),
                       "x2": rng.normal(size=n), "x3": rng.normal(size=n)})
    effect = df.region.map(EFFECT).to_numpy()
    first = rng.random(n) < 0.5
    df["y"] = (np.where(first, 3 + 2 * df.x1 + effect, -3 - df.x1 - effect)
               + 0.5 * df.x2 * df.x3 + rng.normal(scale=0.3, size=n))
    return df


def _hand_design(df: pd.DataFrame) -> np.ndarray:
    return np.column_stack([df.x1, df.region == "b", df.region == "c",
                            df.x2 * df.x3]).astype(float)


def _write(df: pd.DataFrame, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=500)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A lake of two files (regions a, b in one, c in the other) fitted by the CLI."""
    root = tmp_path_factory.mktemp("formula")
    df = _frame(3000, 1)
    _write(df[df.region != "c"], root / "lake" / "p0.parquet")
    _write(df[df.region == "c"], root / "lake" / "p1.parquet")
    out = root / "model.json"
    code = main(["fit", str(root / "lake"), "--formula", FORMULA, "-k", "2", "--seed", "0",
                 "--chunk-rows", "1000", "-q", "--out", str(out)])
    assert code == 0
    return root, out


def _mixture_mean(record: dict, X: np.ndarray) -> np.ndarray:
    """Σ_j π_j (b_j + x β_j) from the model file's parameters."""
    params = record["fitted"]["params"]
    beta = np.asarray(params["beta"])
    return (np.column_stack([np.ones(len(X)), X]) @ beta.T) @ np.asarray(params["weights"])


def test_fit_with_a_formula_learns_every_level_and_saves_the_formula(fitted):
    _, out = fitted
    record = json.loads(out.read_text())
    assert record["data"]["formula"] == FORMULA
    assert record["data"]["features"] == COLUMNS
    assert record["fitted"]["formula"]["levels"] == {"region": ["a", "b", "c"]}
    model = MixtureOfLinearRegressions.load(out)
    assert list(model.feature_names_in_) == COLUMNS
    steep = int(np.argmax(model.coef_[:, 0]))  # the component with x1's slope 2
    np.testing.assert_allclose(model.coef_[steep], [2.0, 1.5, -1.0, 0.5], atol=0.1)
    np.testing.assert_allclose(model.coef_[1 - steep], [-1.0, -1.5, 1.0, 0.5], atol=0.1)


def test_predict_new_data_with_some_levels_and_without_the_target(fitted, capsys):
    root, out = fitted
    new = _frame(300, 2, levels=("a", "c")).drop(columns="y")
    _write(new, root / "new" / "n.parquet")
    code = main(["predict", str(out), str(root / "new"), "--out", str(root / "pred"), "-q"])
    assert code == 0, capsys.readouterr().err
    pred = pq.read_table(root / "pred" / "n.parquet").to_pandas()
    assert list(pred.columns) == ["row_id", "mean", "sd", "q05", "q50", "q95",
                                  "prior_1", "prior_2"]
    record = json.loads(out.read_text())
    np.testing.assert_allclose(pred["mean"], _mixture_mean(record, _hand_design(new)),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(pred[["prior_1", "prior_2"]].to_numpy(),
                               np.broadcast_to(record["fitted"]["params"]["weights"], (300, 2)))
    assert (pred.q05 < pred.q50).all() and (pred.q50 < pred.q95).all()


def test_predict_with_the_target_writes_posteriors_like_the_library(fitted, capsys):
    root, out = fitted
    new = _frame(200, 3)
    _write(new, root / "with_y" / "n.parquet")
    code = main(["predict", str(out), str(root / "with_y"), "--out", str(root / "pred_y"),
                 "-q"])
    assert code == 0, capsys.readouterr().err
    pred = pq.read_table(root / "pred_y" / "n.parquet").to_pandas()
    model = MixtureOfLinearRegressions.load(out)
    by_hand = model.predict_proba(new, new.y.to_numpy())
    np.testing.assert_allclose(pred[["prob_1", "prob_2"]].to_numpy(), by_hand, atol=1e-12)
    np.testing.assert_allclose(pred["mean"], model.predict(new), rtol=0, atol=1e-12)
    assert np.isfinite(pred["loglik"]).all()


def test_an_unseen_level_exits_1_with_one_line_naming_column_and_level(fitted):
    root, out = fitted
    new = _frame(50, 4).drop(columns="y")
    new.loc[7, "region"] = "zz"
    _write(new, root / "unseen" / "n.parquet")
    proc = run_main("predict", out, root / "unseen", "--out", root / "pred_unseen")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "column 'region' has level 'zz' (first at row 7)" in lines[0]
    assert not (root / "pred_unseen").exists()


def test_predict_refuses_features_for_a_formula_model(fitted, capsys):
    root, out = fitted
    code = main(["predict", str(out), str(root / "lake"), "--features", "x1,x2",
                 "--out", str(root / "pred_f")])
    assert code == 1
    assert "fitted with formula" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--formula", FORMULA, "--target", "y"], "do not give --target with it"),
    (["--formula", FORMULA, "--features", "x1"], "do not give --features with it"),
    ([], "required: --target, --features (or --formula)"),
    (["--target", "y"], "required: --features (or --formula)"),
    (["--formula", "x1 + x2"], "has no left-hand side"),
    (["--formula", "y ~ x1 +"], "cannot parse formula"),
])
def test_formula_usage_errors_exit_2(fitted, capsys, args, message):
    root, _ = fitted
    code = main(["fit", str(root / "lake"), "-k", "2", "--out", str(root / "x.json"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (root / "x.json").exists()


def test_no_intercept_with_a_formula_says_to_write_minus_one(fitted, capsys):
    root, _ = fitted
    code = main(["fit", str(root / "lake"), "--formula", FORMULA, "-k", "2",
                 "--no-intercept", "--out", str(root / "x.json")])
    assert code == 1
    assert "'- 1'" in capsys.readouterr().err


def test_model_selection_with_a_formula_keeps_the_formula(fitted, capsys):
    root, _ = fitted
    out = root / "chosen.json"
    code = main(["fit", str(root / "lake"), "--formula", FORMULA, "-k", "1..3", "--seed", "0",
                 "-q", "--out", str(out)])
    assert code == 0
    assert "chosen by bic: k = 2" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["fitted"]["formula"]["columns"] == ["Intercept", *COLUMNS]
    assert MixtureOfLinearRegressions.load(out).n_components_ == 2


def test_plot_reads_the_data_through_the_model_formula(fitted, capsys):
    from streammix.reports.sample import read_sample

    root, out = fitted
    model = MixtureOfLinearRegressions.load(out)
    X, y = read_sample(root / "lake", "y", COLUMNS, size=10_000, formula=model.formula_)
    lake = pd.concat([pq.read_table(root / "lake" / f"p{i}.parquet").to_pandas()
                      for i in range(2)])
    order, expected = np.argsort(y), np.argsort(lake.y.to_numpy())
    np.testing.assert_array_equal(X[order], _hand_design(lake)[expected])
    code = main(["plot", str(out), str(root / "lake"), "--feature", "x1", "--out",
                 str(root / "fit.png"), "-q"])
    assert code == 0, capsys.readouterr().err
    assert (root / "fit.png").stat().st_size > 1000
    code = main(["plot", str(out), str(root / "lake"), "--features", "x1,x2", "--out",
                 str(root / "fit2.png")])
    assert code == 1
    assert "fitted with formula" in capsys.readouterr().err
