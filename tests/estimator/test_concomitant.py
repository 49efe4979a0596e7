"""Concomitant variables: monotone generalised EM, lake == memory, prediction, files, errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import assert_same_fit

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource

INIT = {"weights": [0.5, 0.5], "intercept": [2.0, -2.0], "coef": [[1.0], [-1.0]],
        "sigma": [1.0, 1.0]}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    n = 1200
    Z = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    p2 = 1.0 / (1.0 + np.exp(-(0.2 + 1.2 * Z[:, 0] - 0.8 * Z[:, 1])))
    comp = (rng.random(n) < p2).astype(int)
    x = rng.normal(size=n)
    y = np.where(comp == 1, -2.0 - x, 2.0 + x) + rng.normal(scale=0.7, size=n)
    return x[:, None], y, Z


def _model(**kwargs):
    return MixtureOfLinearRegressions(2, init=INIT, tol=1e-10, max_iter=3000, **kwargs)


def test_generalised_em_is_monotone(data):
    X, y, Z = data
    model = _model().fit(X, y, concomitant=Z)
    ll = np.array([r["loglik"] for r in model.history_ if not r.get("rejected")])
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))  # SQUAREM's accepted points
    assert model.converged_ and model.concomitant_coef_.shape == (2, 3)
    assert np.all(model.concomitant_coef_[0] == 0.0)
    assert model.n_parameters() == 2 * 4 - 1 + 2
    assert model.information_criteria()["n_parameters"] == 9
    pi = model.predict_weights(Z)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0)
    np.testing.assert_allclose(pi.mean(axis=0), model.weights_, rtol=1e-12)
    post = model.predict_proba(X, y, concomitant=Z)
    np.testing.assert_allclose(post.mean(axis=0), model.weights_, atol=1e-6)  # at the MLE
    assert model.score_samples(X, y, concomitant=Z).sum() == pytest.approx(model.loglik_,
                                                                           rel=1e-12)
    assert model.predict(X, concomitant=Z).shape == (len(y),)
    with pytest.raises(ValueError, match="pass concomitant"):
        model.predict(X)
    with pytest.raises(ValueError, match="partial_fit"):
        model.partial_fit(X, y)


def test_lake_in_chunks_equals_memory_and_model_file(data, tmp_path):
    X, y, Z = data
    for k, rows in enumerate(np.array_split(np.arange(len(y)), 3)):
        pq.write_table(pa.table({"x": X[rows, 0], "y": y[rows], "z1": Z[rows, 0],
                                 "z2": Z[rows, 1]}), tmp_path / f"part-{k}.parquet")
    memory = _model().fit(X, y, concomitant=Z, se=True)
    for chunk_rows in (101, 100_000):
        lake = _model().fit(ParquetSource(tmp_path, target="y", features=["x"],
                                          concomitant=["z1", "z2"], chunk_rows=chunk_rows),
                            se=True)
        np.testing.assert_allclose(lake.vcov_, memory.vcov_, rtol=1e-8)
        assert_same_fit(lake, memory, rtol=1e-10)
        np.testing.assert_allclose(lake.concomitant_coef_, memory.concomitant_coef_,
                                   rtol=1e-10, atol=1e-10)
        assert lake.concomitant_names_ == ["z1", "z2"]
    memory.save(tmp_path / "m.json")
    loaded = MixtureOfLinearRegressions.load(tmp_path / "m.json")
    np.testing.assert_array_equal(loaded.concomitant_coef_, memory.concomitant_coef_)
    assert loaded.n_parameters() == memory.n_parameters()
    np.testing.assert_array_equal(loaded.predict_weights(Z), memory.predict_weights(Z))
    np.testing.assert_array_equal(loaded.vcov_, memory.vcov_)
    assert loaded.bse_["concomitant"].shape == (2, 3) and loaded.vcov_names_[-1] == "comp2:gate:z1"
    assert "comp2 gate:z1" in loaded.summary().as_text()


def test_bad_concomitant_values_and_columns_are_named(data, tmp_path):
    X, y, Z = data
    bad = Z.copy()
    bad[7, 1] = np.nan
    with pytest.raises(DataError, match="concomitant column 'z1'.*NaN"):
        _model().fit(X, y, concomitant=bad)
    for k in range(2):
        cols = {"x": X[:10, 0], "y": y[:10], "z1": Z[:10, 0]}
        if k == 1:
            cols["z2"] = Z[:10, 1]
        pq.write_table(pa.table(cols), tmp_path / f"part-{k}.parquet")
    with pytest.raises(DataError, match=r"part-0\.parquet: column 'z2' is missing"):
        ParquetSource(tmp_path, target="y", features=["x"], concomitant=["z1", "z2"])
    z1 = Z[:10, 0].copy()
    z1[3] = np.nan
    pq.write_table(pa.table({"x": X[:10, 0], "y": y[:10], "z1": z1, "z2": Z[:10, 1]}),
                   tmp_path / "part-0.parquet")
    src = ParquetSource(tmp_path, target="y", features=["x"], concomitant=["z1", "z2"])
    with pytest.raises(DataError, match=r"part-0\.parquet.*'z1'"):
        _model().fit(src)


def test_predictions_of_a_gated_model_use_pi_of_z(data, tmp_path):
    """Written predictions use π(z) of each row: priors, mean, sd, quantiles, posteriors."""
    from streammix.estimator.prediction import write_predictions

    X, y, Z = data
    lake = tmp_path / "lake"
    lake.mkdir()
    rows = np.arange(300)
    pq.write_table(pa.table({"x": X[rows, 0], "y": y[rows], "z1": Z[rows, 0],
                             "z2": Z[rows, 1]}), lake / "part-0.parquet")
    model = _model().fit(X, y, concomitant=Z)
    pi = model.predict_weights(Z[rows])
    assert np.ptp(pi[:, 0]) > 0.5  # the gate matters on these rows
    new = ParquetSource(lake, target=None, features=["x"], concomitant=["z1", "z2"],
                        chunk_rows=70)
    out = write_predictions(model, new, tmp_path / "pred").out_dir
    got = pq.read_table(out / "part-0.parquet")
    for j in range(2):
        np.testing.assert_allclose(got[f"prior_{j + 1}"].to_numpy(), pi[:, j], rtol=1e-12)
    mean = model.predict(X[rows], concomitant=Z[rows])
    np.testing.assert_allclose(got["mean"].to_numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.predict(new), mean, rtol=1e-12, atol=1e-12)
    mu = model.predict_components(X[rows])
    var = np.sum(pi * (mu**2 + model.sigma_**2), axis=1) - mean**2
    np.testing.assert_allclose(got["sd"].to_numpy(), np.sqrt(var), rtol=1e-10)
    from scipy.special import ndtr
    cdf = np.sum(pi * ndtr((got["q95"].to_numpy()[:, None] - mu) / model.sigma_), axis=1)
    np.testing.assert_allclose(cdf, 0.95, atol=1e-10)
    with_y = ParquetSource(lake, target="y", features=["x"], concomitant=["z1", "z2"])
    got = pq.read_table(write_predictions(model, with_y, tmp_path / "post").out_dir
                        / "part-0.parquet")
    post = model.predict_proba(X[rows], y[rows], concomitant=Z[rows])
    np.testing.assert_allclose(got["prob_2"].to_numpy(), post[:, 1], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got["loglik"].to_numpy(),
                               model.score_samples(X[rows], y[rows], concomitant=Z[rows]),
                               rtol=1e-12)
    plain = ParquetSource(lake, target=None, features=["x"])
    with pytest.raises(DataError, match=r"concomitant variables \[.z0., .z1.\].*pi\(z\)"):
        write_predictions(model, plain, tmp_path / "nope")
    with pytest.raises(DataError, match="concomitant"):
        model.predict(plain)
    assert not (tmp_path / "nope").exists()
