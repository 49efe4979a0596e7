"""The estimator's public face: scikit-learn conventions, predictions, save/load."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from support.mixtures import make_mixture

from streammix import DataError, MixtureOfLinearRegressions, NotFittedError


@pytest.fixture(scope="module")
def fitted():
    X, y, z = make_mixture(4000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=3)
    return MixtureOfLinearRegressions(2, random_state=0, tol=1e-8).fit(X, y), X, y, z


def test_init_only_stores_and_params_round_trip():
    model = MixtureOfLinearRegressions(3, noise="shared", tol=1e-3)
    assert not hasattr(model, "weights_")
    params = model.get_params()
    assert params["n_components"] == 3 and params["noise"] == "shared"
    clone = type(model)(**params)
    assert clone.get_params() == params
    model.set_params(n_components=4, ridge=1.0)
    assert model.n_components == 4 and model.ridge == 1.0
    with pytest.raises(ValueError, match="Invalid parameter .colour."):
        model.set_params(colour="red")
    assert "n_components=4" in repr(model) and "ridge=1.0" in repr(model)


def test_sklearn_clone():
    from sklearn.base import clone
    model = MixtureOfLinearRegressions(3, tol=1e-5, random_state=7)
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()


def test_fit_returns_self_with_fitted_attributes(fitted):
    model, X, y, _ = fitted
    assert model.converged_ and model.n_iter_ > 0
    assert model.weights_.shape == (2,) and model.coef_.shape == (2, 2)
    assert model.intercept_.shape == (2,) and model.sigma_.shape == (2,)
    assert np.all(np.diff(model.weights_) <= 0)  # canonical order: decreasing weight
    assert model.history_[-1]["loglik"] == model.loglik_
    assert model.n_features_in_ == 2 and model.n_rows_ == len(y)


def test_predictions(fitted):
    model, X, y, z = fitted
    means = model.predict_components(X)
    np.testing.assert_allclose(model.predict(X), means @ model.weights_)
    proba = model.predict_proba(X, y)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # Well separated: the most probable component recovers the true labels.
    truth_of_comp0 = np.bincount(z[proba.argmax(1) == 0]).argmax()
    agree = np.mean((proba.argmax(1) == 0) == (z == truth_of_comp0))
    assert agree > 0.95
    ll = model.score_samples(X, y)
    assert ll.sum() == pytest.approx(model.loglik_, rel=1e-10)
    assert model.score(X, y) == pytest.approx(model.loglik_ / len(y), rel=1e-10)
    P = model.n_parameters()
    assert P == 2 * (3 + 2) - 1
    assert model.bic(X, y) == pytest.approx(-2 * model.loglik_ + P * math.log(len(y)))
    assert model.aic(X, y) == pytest.approx(-2 * model.loglik_ + 2 * P)


def test_integer_weights_equal_repeated_rows():
    X, y, _ = make_mixture(600, [0.5, 0.5], [-4, 4], [[1], [-1]], [1, 1], seed=8)
    counts = np.random.default_rng(0).integers(0, 4, size=len(y))
    start = {"weights": [0.5, 0.5], "intercept": [-3.0, 3.0], "coef": [[0.5], [-0.5]],
             "sigma": [1.0, 1.0]}
    a = MixtureOfLinearRegressions(2, init=start, tol=1e-10).fit(X, y, sample_weight=counts)
    b = MixtureOfLinearRegressions(2, init=start, tol=1e-10).fit(
        np.repeat(X, counts, axis=0), np.repeat(y, counts))
    assert a.params_.max_abs_diff(b.params_) < 1e-8
    assert a.loglik_ == pytest.approx(b.loglik_, rel=1e-10)


def test_save_and_load_round_trip_exactly(fitted, tmp_path):
    model, X, y, _ = fitted
    path = tmp_path / "model.json"
    model.save(path)
    loaded = MixtureOfLinearRegressions.load(path)
    assert loaded.params_ == model.params_  # bit for bit
    for name in ("weights_", "coef_", "intercept_", "sigma_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.loglik_ == model.loglik_ and loaded.history_ == model.history_
    assert loaded.get_params() == {**model.get_params(), "engine": None}
    np.testing.assert_array_equal(loaded.predict_proba(X, y), model.predict_proba(X, y))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary behind
    json.loads(path.read_text())  # plain JSON


def test_load_refuses_other_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a streammix model"):
        MixtureOfLinearRegressions.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid model file"):
        MixtureOfLinearRegressions.load(bad)


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        MixtureOfLinearRegressions().predict(np.zeros((3, 1)))


def test_fixed_noise_and_no_intercept():
    X, y, _ = make_mixture(3000, [0.5, 0.5], [0, 0], [[3], [-3]], [0.5, 0.5], seed=5)
    model = MixtureOfLinearRegressions(2, noise="fixed", sigma=0.5, fit_intercept=False,
                                       random_state=0).fit(X, y)
    np.testing.assert_array_equal(model.sigma_, [0.5, 0.5])
    np.testing.assert_array_equal(model.intercept_, [0, 0])
    np.testing.assert_allclose(np.sort(model.coef_[:, 0]), [-3, 3], atol=0.05)
    assert model.n_parameters() == 2 * 1 + 1


def test_explicit_start_must_fit_the_data():
    X, y, _ = make_mixture(300, [0.5, 0.5], [0, 1], [[1], [2]], [1, 1])
    bad = {"weights": [0.5, 0.5], "intercept": [0, 0], "coef": [[1, 2], [3, 4]], "sigma": 1}
    with pytest.raises(ValueError):
        MixtureOfLinearRegressions(2, init=bad).fit(X, y)
    with pytest.raises(ValueError, match="missing 'sigma'"):
        MixtureOfLinearRegressions(2, init={"weights": [0.5, 0.5], "coef": [[1], [2]]}).fit(X, y)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_components=0), "n_components must be an integer >= 1"),
    (dict(n_components=2.5), "n_components must be an integer >= 1"),
    (dict(noise="fixed"), "needs sigma"),
    (dict(noise="fixed", sigma=-1.0), "sigma must be a positive"),
    (dict(sigma=1.0), "only used with noise='fixed'"),
    (dict(noise="gaussian"), "noise must be one of"),
    (dict(init="kmeans"), "init must be one of"),
    (dict(on_collapse="ignore"), "on_collapse must be one of"),
    (dict(max_iter=-1), "max_iter must be an integer"),
    (dict(tol=-1.0), "tol must be"),
])
def test_bad_hyperparameters(kwargs, message):
    X, y, _ = make_mixture(200, [0.5, 0.5], [0, 1], [[1], [2]], [1, 1])
    with pytest.raises(ValueError, match=message):
        MixtureOfLinearRegressions(**kwargs).fit(X, y)


def _clean():
    X, y, _ = make_mixture(200, [0.5, 0.5], [0, 1], [[1, 0], [2, 1]], [1, 1])
    return X, y


@pytest.mark.parametrize("mutate, message", [
    (lambda X, y, w: (X, np.where(np.arange(200) % 50 == 17, np.nan, y), w),
     r"y has 4 NaN values, first at row 17"),
    (lambda X, y, w: (X, np.where(np.arange(200) == 5, np.inf, y), w),
     r"y has 1 infinite value, first at row 5"),
    (lambda X, y, w: (np.where((np.arange(200) == 9)[:, None] & [False, True], np.nan, X), y, w),
     r"X column 1 has 1 NaN value, first at row 9"),
    (lambda X, y, w: (X, y, np.where(np.arange(200) == 3, -1.0, 1.0)),
     r"sample_weight has 1 negative value, first at row 3"),
    (lambda X, y, w: (X, y, np.where(np.arange(200) == 4, np.nan, 1.0)),
     r"sample_weight has 1 NaN value, first at row 4"),
    (lambda X, y, w: (X, y[:-1], w), r"X has 200 rows but y has 199"),
    (lambda X, y, w: (X, y, np.ones(10)), r"sample_weight must have shape \(200,\)"),
    (lambda X, y, w: (X[:5], y[:5], None), r"5 rows with positive weight are too few for 9"),
    (lambda X, y, w: (X, y, np.zeros(200)), r"no rows with positive weight"),
    (lambda X, y, w: (np.array([["a", "b"]] * 200), y, w), r"X must be numeric"),
])
def test_bad_input_says_what_and_where(mutate, message):
    X, y = _clean()
    X, y, w = mutate(X, y, None)
    with pytest.raises(DataError, match=message):
        MixtureOfLinearRegressions(2).fit(X, y, sample_weight=w)


def test_dataframe_input_keeps_feature_names():
    import pandas as pd
    X, y = _clean()
    df = pd.DataFrame(X, columns=["age", "dose"])
    model = MixtureOfLinearRegressions(2, random_state=0).fit(df, y)
    assert list(model.feature_names_in_) == ["age", "dose"]


def test_explicit_parameters_must_have_n_components():
    from streammix import MixtureParams
    X, y, _ = make_mixture(300, [0.5, 0.5], [0, 1], [[1], [2]], [1, 1])
    three = MixtureParams([0.3, 0.3, 0.4], np.zeros((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="init has 3 components, n_components is 2"):
        MixtureOfLinearRegressions(2, init=three).fit(X, y)


def test_standardised_fit_reports_the_floor_in_the_units_of_y():
    X, y, _ = make_mixture(2000, [0.5, 0.5], [-3, 3], [[1], [-1]], [1, 1], seed=6)
    y = 1000.0 * y
    plain = MixtureOfLinearRegressions(2, random_state=0).fit(X, y)
    scaled = MixtureOfLinearRegressions(2, random_state=0, standardize=True).fit(X, y)
    assert scaled.variance_floor_ == pytest.approx(plain.variance_floor_, rel=1e-9)


def test_partial_fit_after_fit_drops_the_old_standard_errors():
    X, y, _ = make_mixture(3000, [0.5, 0.5], [-3, 3], [[1], [-1]], [1, 1], seed=7)
    model = MixtureOfLinearRegressions(2, random_state=0).fit(X, y, se=True)
    assert hasattr(model, "bse_") and hasattr(model, "n_passes_")
    model.partial_fit(X[:1000], y[:1000] + 0.5)
    assert not hasattr(model, "bse_") and not hasattr(model, "vcov_")
    assert not hasattr(model, "n_passes_")
