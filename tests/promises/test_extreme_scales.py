"""Columns at extreme scales are fitted correctly, or refused naming the column.

Features ×1e200 and ×1e-300 used to give a "fitted" model with every slope
0, y ×1e154 a ``sigma2 contains non-finite values`` naming no column.  Now
pass 0 records each column's largest magnitude; beyond 1e-60..1e60 the fit
runs on standardised data (one more pass), and a model that float64 cannot
hold is refused before EM.  In this process, and through ``streammix fit``
on real Parquet files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import make_mixture

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-7


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(3000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=3)
    reference = MixtureOfLinearRegressions(2, random_state=0, standardize=True).fit(X, y)
    return X, y, reference


def _fit(X, y, **kw):
    return MixtureOfLinearRegressions(2, random_state=0, **kw).fit(X, y)


def _assert_scaled(model, reference, cx, cy=1.0):
    """``model`` is ``reference`` on features multiplied by ``cx`` and y by ``cy``."""
    cx = np.broadcast_to(np.asarray(cx, float), reference.coef_.shape[1:])
    np.testing.assert_allclose(model.weights_, reference.weights_, rtol=RTOL)
    np.testing.assert_allclose(model.coef_ * cx / cy, reference.coef_, rtol=RTOL)
    np.testing.assert_allclose(model.intercept_ / cy, reference.intercept_, rtol=RTOL)
    np.testing.assert_allclose(model.sigma_ / cy, reference.sigma_, rtol=RTOL)
    shift = -reference.sum_weights_ * math.log(cy)
    np.testing.assert_allclose(model.loglik_, reference.loglik_ + shift, rtol=1e-9)
    assert model.n_components == 2 and np.all(model.weights_ > 0.3)


@pytest.mark.parametrize("cx", [1e200, 1e-300, [1e200, 1e-200]], ids=str)
def test_features_at_extreme_scales_give_the_fit_of_the_unscaled_data(data, cx, caplog):
    X, y, reference = data
    with caplog.at_level(logging.INFO, logger="streammix"):
        model = _fit(X * np.asarray(cx), y)  # standardize=False: done anyway, and said so
    _assert_scaled(model, reference, cx)
    assert "column 'x0' reaches" in caplog.text and "fitting on standardised data" in caplog.text
    # with standardize=True the same
    _assert_scaled(_fit(X * np.asarray(cx), y, standardize=True), reference, cx)


def test_a_target_at_a_large_but_representable_scale_is_fitted(data):
    X, y, reference = data
    _assert_scaled(_fit(X, y * 1e100), reference, 1.0, 1e100)
    _assert_scaled(_fit(X * 1e-100, y * 1e-150), reference, 1e-100, 1e-150)


def test_a_model_float64_cannot_hold_is_refused_naming_the_column_and_its_range(data):
    X, y, _ = data
    # σ² of y ×1e154 is ~1e309: beyond float64
    with pytest.raises(DataError, match=r"column 'y' has values up to 1\.09e\+155 in "
                                        r"magnitude .*its variance .* rescale 'y'"):
        _fit(X, y * 1e154)
    with pytest.raises(DataError, match=r"column 'y' has values up to .*e-30"):
        _fit(X, y * 1e-305)
    # coefficients of order 1e310: beyond float64
    with pytest.raises(DataError, match=r"column 'x1' \(values up to .*e-30.*coefficient of "
                                        r"'x1' \(of order"):
        _fit(np.column_stack([X[:, 0], X[:, 1] * 1e-306]), y * 1e4)
    # standard errors on such a scale: refused before EM, not NaN
    with pytest.raises(DataError, match=r"standard errors cannot be computed .*column 'x0' "
                                        r"reaches .*e\+200"):
        MixtureOfLinearRegressions(2, random_state=0).fit(X * 1e200, y, se=True)


def _lake(folder: Path, X, y) -> Path:
    folder.mkdir()
    half = len(y) // 2
    for k, sl in enumerate((slice(0, half), slice(half, None))):
        pq.write_table(pa.table({"big x": X[sl, 0], "x2": X[sl, 1], "y": y[sl]}),
                       str(folder / f"part-{k}.parquet"))
    return folder


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "streammix", "-q", *map(str, args)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_streammix_fit_on_a_lake_at_extreme_scales(data, tmp_path):
    X, y, reference = data
    lake = _lake(tmp_path / "big", X * np.array([1e200, 1.0]), y)
    common = ["--target", "y", "--features", "big x,x2", "-k", "2", "--in-process",
              "--seed", "0"]
    for flags, out in (([], tmp_path / "m.json"), (["--standardize"], tmp_path / "s.json")):
        done = _cli("fit", lake, *common, "--out", out, *flags)
        assert done.returncode == 0, done.stderr
        model = MixtureOfLinearRegressions.load(out)
        source = ParquetSource(str(lake), target="y", features=["big x", "x2"])
        direct = _fit(source, None)
        np.testing.assert_allclose(model.coef_, direct.coef_, rtol=1e-9)
        _assert_scaled(model, reference, [1e200, 1.0])
        assert json.loads(out.read_text())  # a plain model file

    lake = _lake(tmp_path / "huge_y", X, y * 1e154)
    done = _cli("fit", lake, *common, "--out", tmp_path / "y.json")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("streammix fit: error: column 'y' has values up to 1.09e+155")
    assert not (tmp_path / "y.json").exists()
