"""Coefficients shared by all components (the option ``fixed``): EM, chunks, files, errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import assert_same_fit, make_mixture

from streammix import MixtureOfLinearRegressions, ParquetSource

INIT = {"weights": [0.5, 0.3, 0.2], "intercept": [2.0, -1.0, 0.5],
        "coef": [[1.5, 0.5], [-1.5, 0.5], [0.0, 0.5]], "sigma": [1.0, 1.0, 1.0]}


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(1500, [0.5, 0.3, 0.2], [2.0, -1.0, 0.5],
                           [[1.5, 0.7], [-1.5, 0.7], [0.0, 0.7]], [0.5, 1.0, 2.0], seed=3)
    return X, y


def _model(**kwargs):
    kwargs = {"fixed": [1], **kwargs}
    return MixtureOfLinearRegressions(3, init=INIT, tol=1e-10, max_iter=2000, **kwargs)


@pytest.mark.parametrize("settings", [dict(), dict(noise="shared"),
                                      dict(fixed=["(intercept)"], standardize=True)])
def test_plain_em_is_monotone_and_keeps_the_constraint(data, settings):
    model = _model(accelerate=None, **settings).fit(*data)
    ll = np.array([r["loglik"] for r in model.history_])
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))
    col = 0 if "fixed" in settings else 2
    assert np.ptp(model.params_.beta[:, col]) == 0.0
    assert model.n_parameters() == 3 * 5 - 1 - 2 - (2 if settings.get("noise") else 0)


def test_squarem_and_standardisation_reach_the_plain_em_optimum(data):
    plain = _model(accelerate=None).fit(*data)
    for other in (_model(), _model(standardize=True)):
        other.fit(*data)
        assert other.loglik_ == pytest.approx(plain.loglik_, rel=1e-9)
        np.testing.assert_allclose(other.params_.beta, plain.params_.beta, atol=1e-5)


def test_lake_in_chunks_equals_memory(data, tmp_path):
    X, y = data
    for k, rows in enumerate(np.array_split(np.arange(len(y)), 3)):
        pq.write_table(pa.table({"a": X[rows, 0], "x2": X[rows, 1], "y": y[rows]}),
                       tmp_path / f"part-{k}.parquet")
    memory = _model().fit(X, y, se=True)
    for chunk_rows in (97, 100_000):
        lake = MixtureOfLinearRegressions(3, fixed="x2", init=INIT, tol=1e-10, max_iter=2000)
        lake.fit(ParquetSource(tmp_path, target="y", features=["a", "x2"],
                               chunk_rows=chunk_rows), se=True)
        assert_same_fit(lake, memory, rtol=1e-10)
        np.testing.assert_allclose(lake.vcov_, memory.vcov_, rtol=1e-8)
        assert lake.vcov_names_[0] == "x2"


def test_model_file_keeps_the_constraint(data, tmp_path):
    model = _model().fit(*data, se=True)
    model.save(tmp_path / "m.json")
    loaded = MixtureOfLinearRegressions.load(tmp_path / "m.json")
    assert loaded.fixed == [1] and loaded.n_parameters() == model.n_parameters()
    np.testing.assert_array_equal(loaded.vcov_, model.vcov_)
    assert loaded.summary().as_text() == model.summary().as_text()
    assert "shared by all components" in model.summary().as_text()


@pytest.mark.parametrize("fixed, message", [
    (["nope"], "not a feature"), ([0, 1, "(intercept)"], "every coefficient"),
    ([5], "out of range"), ([1, 1], "twice"), ([1.5], "feature names"),
])
def test_bad_fixed_is_named(data, fixed, message):
    with pytest.raises(ValueError, match=message):
        MixtureOfLinearRegressions(2, fixed=fixed).fit(*data)


def test_fixed_intercept_needs_one_and_online_is_refused(data):
    with pytest.raises(ValueError, match="fit_intercept=False"):
        MixtureOfLinearRegressions(2, fixed="(intercept)", fit_intercept=False).fit(*data)
    with pytest.raises(ValueError, match="partial_fit"):
        MixtureOfLinearRegressions(2, fixed=[0]).partial_fit(*data)
