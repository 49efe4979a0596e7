"""Tables by name: Dask DataFrames of any partitioning, pandas and pyarrow tables, and the
columns a fitted model selects by name (issue 13, items 2 and 3)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import assert_same_fit, make_mixture

from streammix import DataError, FeatureNamesWarning, MixtureOfLinearRegressions, ParquetSource

N_FILES, N_FILE = 3, 1700
START = {"weights": [0.6, 0.4], "intercept": [-3.0, 3.0], "coef": [[2.0, -1.0, 0.5],
         [-1.0, 0.5, 1.5]], "sigma": [1.0, 1.0]}


def model(**kw):
    return MixtureOfLinearRegressions(2, init=START, tol=1e-12, max_iter=2000, **kw)


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(N_FILES * N_FILE, [0.6, 0.4], [-3.0, 3.0],
                           [[2.0, -1.0, 0.5], [-1.0, 0.5, 1.5]], [1.0, 0.7], seed=5)
    return X, y


@pytest.fixture(scope="module")
def frame(data):
    X, y = data
    return pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "y": y})


@pytest.fixture(scope="module")
def lake(tmp_path_factory, frame):
    """Three files whose row groups (of 400 rows) do not line up with the files."""
    folder = tmp_path_factory.mktemp("frames") / "lake"
    folder.mkdir()
    for i in range(N_FILES):
        part = frame.iloc[i * N_FILE:(i + 1) * N_FILE]
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=400)
    return folder


@pytest.fixture(scope="module")
def reference(data):
    X, y = data
    return model().fit(X, y)


@pytest.mark.parametrize("split", [False, True])
def test_dask_frames_from_read_parquet_fit_like_memory(lake, reference, split):
    import dask.dataframe as dd
    ddf = dd.read_parquet(str(lake), split_row_groups=split)
    assert ddf.npartitions == (15 if split else 3)
    by_series = model().fit(ddf[["x1", "x2", "x3"]], ddf["y"])
    assert_same_fit(by_series, reference)
    by_target = model().fit(ddf, target="y")
    assert_same_fit(by_target, reference)
    assert list(by_target.feature_names_in_) == ["x1", "x2", "x3"]


def test_dask_frames_from_read_csv_and_pandas_with_target(tmp_path, frame, reference):
    import dask.dataframe as dd
    for i in range(N_FILES):
        frame.iloc[i * N_FILE:(i + 1) * N_FILE].to_csv(tmp_path / f"p{i}.csv", index=False)
    ddf = dd.read_csv(str(tmp_path / "p*.csv"), blocksize=40_000)
    assert ddf.npartitions > N_FILES
    assert_same_fit(model().fit(ddf[["x1", "x2", "x3"]], ddf["y"]), reference)
    assert_same_fit(model().fit(frame, target="y"), reference)
    assert_same_fit(model().fit(pa.Table.from_pandas(frame), target="y"), reference)


def test_columns_are_selected_by_name(frame, reference):
    fitted = model().fit(frame, target="y")
    X = frame[["x1", "x2", "x3"]]
    mean = fitted.predict(X)
    np.testing.assert_array_equal(fitted.predict(X[["x3", "x1", "x2"]]), mean)
    np.testing.assert_array_equal(fitted.predict(frame), mean)  # the target is ignored
    np.testing.assert_array_equal(fitted.predict(pa.Table.from_pandas(X[["x2", "x3", "x1"]])),
                                  mean)
    assert fitted.score(X[["x2", "x1", "x3"]], frame["y"]) == pytest.approx(
        fitted.score(X, frame["y"]), rel=1e-12)
    np.testing.assert_array_equal(fitted.predict_proba(X[["x3", "x2", "x1"]], frame["y"]),
                                  fitted.predict_proba(X, frame["y"]))


def test_missing_or_renamed_columns_are_refused(frame):
    fitted = model().fit(frame, target="y")
    renamed = frame[["x1", "x2", "x3"]].rename(columns={"x2": "dose"})
    with pytest.raises(DataError, match="(?s)should match those that were passed during fit"
                                        ".*missing:\n- x2\n.*not seen at fit time:\n- dose"):
        fitted.predict(renamed)
    with pytest.raises(DataError, match="missing:\n- x3"):
        fitted.score(frame[["x1", "x2"]], frame["y"])


def test_arrays_are_taken_by_position_with_a_warning_when_fitted_on_names(frame, data):
    X, y = data
    fitted = model().fit(frame, target="y")
    for method in (fitted.predict, fitted.predict_components):
        with pytest.warns(FeatureNamesWarning, match="does not have valid feature names") as seen:
            by_position = method(X)
        assert seen[0].filename == __file__  # the caller's line, not the library's
        np.testing.assert_array_equal(by_position, method(frame))
    for method in (fitted.predict_proba, fitted.score_samples):
        with pytest.warns(FeatureNamesWarning, match="does not have valid feature names") as seen:
            by_position = method(X, y)
        assert seen[0].filename == __file__
        np.testing.assert_array_equal(by_position, method(frame[["x1", "x2", "x3"]], y))
    on_arrays = model().fit(X, y)
    assert not hasattr(on_arrays, "feature_names_in_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        on_arrays.predict(X)
    with pytest.warns(FeatureNamesWarning, match="fitted without feature names"):
        on_arrays.predict(frame[["x1", "x2", "x3"]])


def test_model_files_keep_the_names(tmp_path, frame, data):
    X, y = data
    fitted = model().fit(frame, target="y")
    fitted.save(tmp_path / "m.json")
    loaded = MixtureOfLinearRegressions.load(tmp_path / "m.json")
    assert loaded.feature_names_in_.dtype == object
    assert list(loaded.feature_names_in_) == ["x1", "x2", "x3"]
    np.testing.assert_array_equal(loaded.predict(frame[["x3", "x2", "x1"]]),
                                  fitted.predict(frame))
    model().fit(X, y).save(tmp_path / "a.json")
    assert not hasattr(MixtureOfLinearRegressions.load(tmp_path / "a.json"),
                       "feature_names_in_")


def test_a_source_in_another_order_is_refused(lake, frame):
    fitted = model().fit(ParquetSource(lake, target="y", features=["x1", "x2", "x3"]))
    assert fitted.score(ParquetSource(lake, target="y", features=["x1", "x2", "x3"])) < 0
    with pytest.raises(DataError, match="in another order"):
        fitted.score(ParquetSource(lake, target="y", features=["x2", "x1", "x3"]))


def test_predict_takes_a_source_with_or_without_the_target(lake, frame, tmp_path):
    fitted = model().fit(frame, target="y")
    with_y = ParquetSource(lake, target="y", features=["x1", "x2", "x3"])
    np.testing.assert_allclose(fitted.predict(with_y), fitted.predict(frame), rtol=1e-12)
    without = ParquetSource(lake, target=None, features=["x1", "x2", "x3"])
    np.testing.assert_allclose(fitted.predict(without), fitted.predict(frame), rtol=1e-12)
    with pytest.raises(DataError, match="needs the target"):
        fitted.score(without)
    with pytest.raises(DataError, match="needs the target"):
        model().fit(without)


def test_dask_frames_are_predicted_by_name_like_pandas(frame):
    """predict & co. on a Dask DataFrame take its columns by name, as for pandas
    (not by position with a warning that it has no names), and ignore the target."""
    import dask.dataframe as dd
    fitted = model().fit(frame, target="y")
    ddf = dd.from_pandas(frame, npartitions=3)
    reordered = ddf[["x3", "y", "x1", "x2"]]
    X = frame[["x1", "x2", "x3"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(fitted.predict(reordered), fitted.predict(X))
        np.testing.assert_array_equal(fitted.predict_components(reordered),
                                      fitted.predict_components(X))
        np.testing.assert_array_equal(fitted.predict_proba(reordered, ddf["y"]),
                                      fitted.predict_proba(X, frame["y"]))
        np.testing.assert_array_equal(fitted.score_samples(reordered, ddf["y"]),
                                      fitted.score_samples(X, frame["y"]))
    with pytest.raises(DataError, match="missing:\n- x2"):
        fitted.predict(ddf[["x1", "x3"]])


def test_a_formula_model_predicts_a_dask_frame_like_pandas(frame):
    import dask.dataframe as dd
    cat = frame.assign(region=np.where(frame["x1"] > 0, "a", "b"))
    fitted = model().fit(cat, formula="y ~ x1 + x2 + C(region)")
    ddf = dd.from_pandas(cat[["region", "x2", "x1"]], npartitions=2)
    np.testing.assert_array_equal(fitted.predict(ddf), fitted.predict(cat))


def test_scoring_a_table_without_y_says_to_pass_its_target_column(frame):
    """fit(frame, target="y") then score(frame): the message names the table and the
    way out, not "when X is an array"."""
    fitted = model().fit(frame, target="y")
    for method in (fitted.score, fitted.bic, fitted.aic, fitted.compute_se):
        with pytest.raises(DataError, match=r"X is a table.*pass its target column as y"):
            method(frame)
    assert fitted.score(frame, frame["y"]) == pytest.approx(fitted.loglik_ / len(frame),
                                                            rel=1e-12)


def test_score_and_standard_errors_of_arrays_warn_when_fitted_on_names(frame, data):
    """As predict does: an array's columns are taken by position, which a model
    fitted on names says (the reversed columns would score otherwise silently)."""
    X, y = data
    fitted = model().fit(frame, target="y")
    for method in (fitted.score, fitted.bic, fitted.aic):
        with pytest.warns(FeatureNamesWarning, match="does not have valid feature names") as seen:
            by_position = method(X, y)
        assert seen[0].filename == __file__
        assert by_position == method(frame[["x1", "x2", "x3"]], frame["y"])
    with pytest.warns(FeatureNamesWarning, match="does not have valid feature names"):
        fitted.compute_se(X, y)
    on_arrays = model().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        on_arrays.score(X, y)
