"""A gate given by a formula, ``concomitant="~ z1 + C(segment)"``: the same fit as the
hand-built treatment-coded z columns (levels sorted, the first the baseline), levels
kept in the model file and applied to new tables, unseen levels refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streammix import DataError, MixtureOfLinearRegressions

GATE = "~ z1 + C(segment)"
SEGMENTS = ["p", "q", "r"]
INIT = {"weights": [0.5, 0.5], "intercept": [2.0, -2.0], "coef": [[1.0], [-1.0]],
        "sigma": [1.0, 1.0]}


def _frame(n: int, seed: int, segments=SEGMENTS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "z1": rng.normal(size=n),
                       "segment": rng.choice(segments, n)})
    shift = df.segment.map({"p": 0.0, "q": 1.0, "r": -1.2}).to_numpy()
    second = rng.random(n) < 1.0 / (1.0 + np.exp(-(0.2 + 1.2 * df.z1 + shift)))
    df["y"] = np.where(second, -2.0 - df.x1, 2.0 + df.x1) + rng.normal(scale=0.7, size=n)
    return df


def _z(df: pd.DataFrame) -> np.ndarray:
    return np.column_stack([df.z1, df.segment == "q", df.segment == "r"]).astype(float)


def _model() -> MixtureOfLinearRegressions:
    return MixtureOfLinearRegressions(2, init=INIT, tol=1e-10, max_iter=3000)


@pytest.fixture(scope="module")
def fits():
    df = _frame(1500, 1)
    by_formula = _model().fit(df, formula="y ~ x1", concomitant=GATE)
    by_hand = _model().fit(df[["x1"]], df.y.to_numpy(), concomitant=_z(df))
    return by_formula, by_hand


def test_a_gate_formula_fits_like_hand_built_dummy_columns(fits):
    by_formula, by_hand = fits
    assert by_formula.concomitant_names_ == ["z1", "C(segment)[T.q]", "C(segment)[T.r]"]
    assert by_formula.concomitant_formula_.levels == {"segment": SEGMENTS}
    assert list(by_formula.feature_names_in_) == ["x1"]
    np.testing.assert_allclose(by_formula.concomitant_coef_, by_hand.concomitant_coef_,
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(by_formula.coef_, by_hand.coef_, rtol=0, atol=1e-10)
    assert by_formula.loglik_ == pytest.approx(by_hand.loglik_, rel=1e-12)
    # the gate found the generating effects (in the second component's row)
    gate = by_formula.concomitant_coef_
    second = int(np.argmax(gate[:, 1]))
    np.testing.assert_allclose(gate[second] - gate[1 - second], [0.2, 1.2, 1.0, -1.2],
                               atol=0.35)


def test_saved_gate_levels_predict_new_tables_with_some_levels(fits, tmp_path):
    by_formula, by_hand = fits
    by_formula.save(tmp_path / "model.json")
    loaded = MixtureOfLinearRegressions.load(tmp_path / "model.json")
    assert loaded.concomitant_formula_ == by_formula.concomitant_formula_
    new = _frame(80, 2, segments=["q", "r"])
    Z = _z(new)
    np.testing.assert_allclose(loaded.predict_weights(new), by_hand.predict_weights(Z),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(loaded.predict(new, concomitant=new),
                               by_hand.predict(new[["x1"]], concomitant=Z), rtol=0, atol=1e-10)
    np.testing.assert_allclose(loaded.predict_proba(new, new.y, concomitant=new),
                               by_hand.predict_proba(new[["x1"]], new.y, concomitant=Z),
                               rtol=0, atol=1e-10)
    with pytest.raises(DataError, match=r"column 'segment' has level 'zz'"):
        loaded.predict_weights(new.assign(segment="zz"))


def test_without_formula_the_gate_columns_are_not_features():
    df = _frame(600, 3)
    by_target = _model().fit(df, target="y", concomitant=GATE)
    assert list(by_target.feature_names_in_) == ["x1"]
    by_hand = _model().fit(df[["x1"]], df.y.to_numpy(), concomitant=_z(df))
    np.testing.assert_allclose(by_target.concomitant_coef_, by_hand.concomitant_coef_,
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("gate, message", [
    ("y ~ z1", "left-hand side"),
    ("~ z1 + C(segment) - 1", "removes the intercept"),
])
def test_bad_gate_formulas_are_refused(gate, message):
    with pytest.raises(ValueError, match=message):
        _model().fit(_frame(100, 4), formula="y ~ x1", concomitant=gate)


def _lake(df: pd.DataFrame, folder) -> pd.DataFrame:
    """Two files, segments p, q in one and r in the other; the rows in lake order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [df[df.segment != "r"], df[df.segment == "r"]]
    for i, part in enumerate(parts):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=400)
    return pd.concat(parts)


def test_a_lake_with_a_gate_formula_fits_like_the_table_and_predicts_from_the_cli(tmp_path):
    import pyarrow.parquet as pq

    from streammix import ParquetSource
    from streammix.cli.main import main

    (tmp_path / "lake").mkdir()
    ordered = _lake(_frame(1500, 1), tmp_path / "lake")
    memory = _model().fit(ordered, formula="y ~ x1", concomitant=GATE)
    source = ParquetSource(tmp_path / "lake", target="y", features=["x1"], concomitant=GATE,
                           chunk_rows=500)
    lake = _model().fit(source)
    assert lake.concomitant_names_ == memory.concomitant_names_
    assert lake.concomitant_formula_.levels == {"segment": SEGMENTS}
    np.testing.assert_allclose(lake.concomitant_coef_, memory.concomitant_coef_, rtol=0,
                               atol=1e-10)
    np.testing.assert_allclose(lake.coef_, memory.coef_, rtol=0, atol=1e-10)
    lake.save(tmp_path / "model.json")
    (tmp_path / "new").mkdir()
    new = _frame(60, 2, segments=["p", "r"]).drop(columns="y")
    new.to_parquet(tmp_path / "new" / "part.parquet")
    code = main(["predict", str(tmp_path / "model.json"), str(tmp_path / "new"), "--out",
                 str(tmp_path / "pred"), "-q"])
    assert code == 0
    pred = pq.read_table(tmp_path / "pred" / "part.parquet").to_pandas()
    by_hand = _model().fit(ordered[["x1"]], ordered.y.to_numpy(), concomitant=_z(ordered))
    np.testing.assert_allclose(pred[["prior_1", "prior_2"]].to_numpy(),
                               by_hand.predict_weights(_z(new)), rtol=0, atol=1e-10)


def test_count_invalid_and_errors_cover_the_gate_formula_columns(tmp_path):
    from streammix import ParquetSource

    (tmp_path / "lake").mkdir()
    df = _frame(400, 3)
    segment = df.segment.astype(object)
    segment.iloc[5] = None
    _lake(df.assign(segment=segment), tmp_path / "lake")
    source = ParquetSource(tmp_path / "lake", target="y", features=["x1"], concomitant=GATE,
                           on_invalid="drop")
    counted = source.count_invalid()
    assert counted.n_rows == 1 and counted.by_column == {"segment": 1}
    assert _model().fit(source).n_rows_ == 399
    with pytest.raises(DataError, match=r"part-0\.parquet: column 'segment' has 1 null"):
        _model().fit(ParquetSource(tmp_path / "lake", target="y", features=["x1"],
                                   concomitant=GATE))


@pytest.mark.parametrize("gate", ["~ ", "~ 1"])
def test_a_lake_gate_formula_that_reads_no_column_is_refused(tmp_path, gate):
    """It used to give a 'fit' of 0 iterations; a table's fit refused it already."""
    from streammix import ParquetSource

    (tmp_path / "lake").mkdir()
    _lake(_frame(200, 3), tmp_path / "lake")
    with pytest.raises(ValueError, match=r"concomitant formula '~ ?1?' reads no column"):
        ParquetSource(tmp_path / "lake", target="y", features=["x1"], concomitant=gate)
    with pytest.raises(ValueError, match="reads no column"):
        _model().fit(_frame(100, 4), formula="y ~ x1", concomitant=gate)
