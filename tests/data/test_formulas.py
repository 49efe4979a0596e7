"""Formulas with categorical features: the design is the same for every chunk.

References: the fit on the hand-built design matrix (treatment coding, levels
sorted, the first level the baseline; main effects before interactions, as
formulaic orders them), and the in-memory formula fit for a
Parquet lake whose files each hold only some levels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streammix import MixtureOfLinearRegressions, ParquetSource
from streammix.exceptions import DataError

FORMULA = "y ~ x1 + C(region) + x2:x3 + np.log(x4)"
LEVELS = ["a", "b", "c", "d"]


def _frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x1": rng.normal(size=n), "region": rng.choice(LEVELS, n),
        "x2": rng.normal(size=n), "x3": rng.normal(size=n), "x4": rng.uniform(1, 3, n),
    })
    effect = df.region.map({"a": 0.0, "b": 1.0, "c": -1.0, "d": 0.5}).to_numpy()
    first = rng.random(n) < 0.4
    df["y"] = (np.where(first, 1 + 2 * df.x1 + effect, -2 - df.x1 + 0.5 * effect)
               + 0.5 * df.x2 * df.x3 + np.log(df.x4) + rng.normal(scale=0.3, size=n))
    return df


def _design(df: pd.DataFrame) -> np.ndarray:
    dummies = [(df.region == level).to_numpy(float) for level in LEVELS[1:]]
    return np.column_stack([df.x1, *dummies, np.log(df.x4), df.x2 * df.x3])


INIT = dict(weights=[0.5, 0.5],
            coef=[[1.5, 0.5, -0.5, 0.3, 1.0, 0.4], [-0.5, 0.3, -0.3, 0.2, 1.0, 0.6]],
            intercept=[0.5, -1.5], sigma=[1.0, 1.0])


def _model(**kw) -> MixtureOfLinearRegressions:
    return MixtureOfLinearRegressions(2, init=INIT, tol=1e-10, random_state=1, **kw)


def test_formula_fit_equals_the_hand_built_design():
    df = _frame()
    by_formula = _model().fit(df, formula=FORMULA)
    by_hand = _model().fit(_design(df), df.y.to_numpy())
    assert list(by_formula.feature_names_in_) == [
        "x1", "C(region)[T.b]", "C(region)[T.c]", "C(region)[T.d]", "np.log(x4)", "x2:x3"]
    np.testing.assert_allclose(by_formula.coef_, by_hand.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(by_formula.intercept_, by_hand.intercept_, rtol=0, atol=1e-10)
    assert by_formula.loglik_ == pytest.approx(by_hand.loglik_, rel=1e-12)
    assert "C(region)[T.b]" in str(by_formula.summary())


def _lake(df: pd.DataFrame, folder) -> pd.DataFrame:
    """Three files, each with only some regions; returns the rows in lake order."""
    parts = [df[df.region.isin(["a", "b"])], df[df.region == "c"], df[df.region == "d"]]
    for i, part in enumerate(parts):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=300)
    return pd.concat(parts)


def test_lake_whose_files_lack_levels_equals_the_in_memory_fit(tmp_path):
    ordered = _lake(_frame(), tmp_path)
    memory = _model().fit(ordered, formula=FORMULA)
    lake = _model().fit(ParquetSource(tmp_path, formula=FORMULA, chunk_rows=500))
    assert list(lake.feature_names_in_) == list(memory.feature_names_in_)
    np.testing.assert_allclose(lake.coef_, memory.coef_, rtol=0, atol=1e-10)
    assert lake.loglik_ == pytest.approx(memory.loglik_, rel=1e-10)


def test_lake_on_a_two_worker_cluster_equals_the_in_memory_fit(tmp_path, two_worker_client):
    from distributed import get_task_stream

    ordered = _lake(_frame(), tmp_path)
    memory = _model().fit(ordered, formula=FORMULA)
    client = two_worker_client
    with get_task_stream(client) as stream:
        fitted = _model(engine=client).fit(
            ParquetSource(tmp_path, formula=FORMULA, chunk_rows=500))
    assert len(stream.data) > 0
    np.testing.assert_allclose(fitted.coef_, memory.coef_, rtol=0, atol=1e-10)
    assert fitted.loglik_ == pytest.approx(memory.loglik_, rel=1e-10)


def test_saved_model_predicts_new_data_and_refuses_an_unseen_level(tmp_path):
    df = _frame()
    model = _model().fit(df, formula=FORMULA)
    model.save(tmp_path / "model.json")
    loaded = MixtureOfLinearRegressions.load(tmp_path / "model.json")
    new = _frame(n=60, seed=5)
    new = new[new.region.isin(["a", "c"])]          # only some levels present
    np.testing.assert_array_equal(loaded.predict(new), model.predict(new))
    by_hand = _model().fit(_design(df), df.y.to_numpy())
    np.testing.assert_allclose(model.predict(new), by_hand.predict(_design(new)), atol=1e-10)
    with pytest.raises(DataError, match=r"region.*zz|zz.*region"):
        loaded.predict(new.assign(region="zz"))


def test_a_missing_column_is_named():
    df = _frame(n=200).drop(columns="x4")
    with pytest.raises(DataError, match="x4"):
        _model().fit(df, formula=FORMULA)


@pytest.mark.parametrize("holdout", [None, 0.3])
def test_model_selection_keeps_the_formula_with_and_without_a_holdout(tmp_path, holdout):
    from streammix.estimator.selection import select_components

    df = _frame()
    _lake(df, tmp_path)
    source = ParquetSource(tmp_path, formula=FORMULA, chunk_rows=500)
    result = select_components(source, k=[1, 2], holdout=holdout, random_state=0)
    names = ["x1", "C(region)[T.b]", "C(region)[T.c]", "C(region)[T.d]", "np.log(x4)", "x2:x3"]
    for model in result.models.values():
        assert model.formula_.levels == {"region": LEVELS}
        assert list(model.feature_names_in_) == names
    chosen = result.model
    assert chosen.n_components_ == 2
    new = _frame(n=40, seed=7)
    new = new[new.region.isin(["b", "d"])]
    by_hand = design_mean(chosen, _design(new))
    np.testing.assert_allclose(chosen.predict(new), by_hand, rtol=0, atol=1e-10)
    model_file = tmp_path.parent / f"chosen-{holdout}.json"
    chosen.save(model_file)
    loaded = MixtureOfLinearRegressions.load(model_file)
    np.testing.assert_array_equal(loaded.predict(new), chosen.predict(new))
    assert "C(region)[T.d]" in str(loaded.summary())


def test_model_selection_of_a_table_with_a_formula_equals_the_lake(tmp_path):
    from streammix.estimator.selection import select_components

    ordered = _lake(_frame(), tmp_path)
    memory = select_components(ordered, k=[2], formula=FORMULA, random_state=0, chunk_rows=500)
    lake = select_components(ParquetSource(tmp_path, formula=FORMULA, chunk_rows=500), k=[2],
                             random_state=0, chunk_rows=500)
    assert memory.model.formula_ == lake.model.formula_
    np.testing.assert_allclose(memory.model.coef_, lake.model.coef_, rtol=0, atol=1e-10)


def design_mean(model, X: np.ndarray) -> np.ndarray:
    """Σ_j π_j (b_j + x a_j) of a hand-built design ``X``."""
    return (model.intercept_ + X @ model.coef_.T) @ model.weights_


def _lake_with_bad_values(folder):
    """Two files: a null region (file 0, row 3); a NaN x2, used only in x2:x3 (file 1,
    row 10); x4 = 0, so np.log(x4) = -inf (file 1, row 20)."""
    df = _frame(n=1000)
    first, second = df.iloc[:500].copy(), df.iloc[500:].copy()
    region = first.region.astype(object)
    region.iloc[3] = None
    first["region"] = region
    second.iloc[10, second.columns.get_loc("x2")] = np.nan
    second.iloc[20, second.columns.get_loc("x4")] = 0.0
    paths = [folder / "part-0.parquet", folder / "part-1.parquet"]
    for part, path in zip([first, second], paths, strict=True):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), path,
                       row_group_size=200)
    return [str(p) for p in paths]


def test_count_invalid_counts_the_formula_columns_by_file_and_column(tmp_path):
    paths = _lake_with_bad_values(tmp_path)
    source = ParquetSource(tmp_path, formula=FORMULA, on_invalid="drop", chunk_rows=200)
    counted = source.count_invalid()
    assert counted.by_column == {"region": 1, "x2": 1, "np.log(x4)": 1}
    assert counted.by_file == {paths[0]: 1, paths[1]: 2}
    assert counted.n_rows == 3
    fitted = _model().fit(source)
    assert fitted.n_rows_ == 1000 - counted.n_rows


@pytest.mark.parametrize("drop_first, message", [
    (False, r"part-0\.parquet: column 'region' has 1 null.*row 3"),
    (True, r"part-1\.parquet: column 'x2' has 1 null, NaN or infinite values, first at row 10"),
])
def test_a_bad_value_in_a_formula_column_is_an_error_naming_file_and_column(
        tmp_path, drop_first, message):
    _lake_with_bad_values(tmp_path)
    if drop_first:  # without file 0, the first bad value is x2's in file 1
        (tmp_path / "part-0.parquet").unlink()
    source = ParquetSource(tmp_path, formula=FORMULA, chunk_rows=200)
    with pytest.raises(DataError, match=message):
        _model().fit(source)


def test_partial_fit_continues_a_formula_fit_on_tables_like_the_hand_built_design():
    df = _frame()
    by_formula = _model().fit(df, formula=FORMULA)
    by_hand = _model().fit(_design(df), df.y.to_numpy())
    for seed in (11, 12):
        batch = _frame(n=300, seed=seed)
        batch = batch[batch.region != "a"] if seed == 11 else batch  # some levels only
        by_formula.partial_fit(batch)
        by_hand.partial_fit(_design(batch), batch.y.to_numpy())
    assert by_formula.formula_.levels == {"region": LEVELS}
    np.testing.assert_allclose(by_formula.coef_, by_hand.coef_, rtol=0, atol=1e-10)
    new = _frame(n=20, seed=13)
    np.testing.assert_allclose(by_formula.predict(new), by_hand.predict(_design(new)),
                               rtol=0, atol=1e-10)
    with pytest.raises(DataError, match=r"column 'region' has level 'zz'"):
        by_formula.partial_fit(new.assign(region="zz"))
