"""Data that invites degenerate fits: the floor holds, nothing is NaN, the fit says so."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions, SpuriousOptimumWarning


def _notes(model):
    return [note for h in model.history_ for note in h.get("notes", {}).values()]


def _finite(model):
    arrays = (model.weights_, model.coef_, model.intercept_, model.sigma_)
    return all(np.all(np.isfinite(a)) for a in arrays) and np.isfinite(model.loglik_)


def test_repeated_points_cannot_collapse_a_component():
    X, y, _ = make_mixture(400, [0.5, 0.5], [-3, 3], [[1], [-1]], [1, 1], seed=1)
    X = np.vstack([X, np.full((40, 1), 0.5)])  # 40 copies of one point
    y = np.r_[y, np.full(40, 10.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixtureOfLinearRegressions(3, random_state=0, init="random", n_init=3,
                                           max_iter=300).fit(X, y)
    assert _finite(model)
    # The component sitting on the repeated point is held at the floor, and says so.
    assert model.sigma_.min() ** 2 == pytest.approx(model.variance_floor_, rel=1e-12)
    assert model.variance_floor_ > model.variance_floor * 0.5 * np.var(y)
    assert "variance at floor" in _notes(model)


def _line_data(n_line):
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, 300)
    y = rng.normal(scale=3, size=300)
    x_line = np.linspace(-1, 1, n_line)
    X = np.r_[x, x_line][:, None]
    y = np.r_[y, 2 + 5 * x_line]  # n_line points exactly on one line
    start = {"weights": [0.9, 0.1], "intercept": [0.0, 2.0], "coef": [[0.0], [5.0]],
             "sigma": [3.0, 0.1]}
    return X, y, start


def test_exact_line_through_twelve_points_is_a_component():
    # 12 rows are more than 3 (p + 1) = 9 effective rows: an identified component,
    # not a spike, although its sigma sits at the floor.
    X, y, start = _line_data(12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = MixtureOfLinearRegressions(2, init=start).fit(X, y)
    assert _finite(model)
    assert model.n_components_ == 2
    assert "variance at floor" in _notes(model)


def test_exact_line_through_a_few_points():
    # 6 rows on a line with sigma at the floor: a spike (6 < 9 effective rows and
    # sigma < 0.1 x the pooled OLS sigma), dropped with its reason.
    X, y, start = _line_data(6)
    with pytest.warns(RuntimeWarning, match=r"dropped collapsed component.*spike, [\d.]+ "
                                            r"effective rows < 3 \(p \+ 1\) = 9"):
        with pytest.warns(SpuriousOptimumWarning, match="a higher log-likelihood"):
            model = MixtureOfLinearRegressions(2, init=start, on_collapse="drop").fit(X, y)
    assert _finite(model)
    # The spike had the higher likelihood: named as the spurious optimum passed over.
    assert model.passed_over_["loglik"] > model.loglik_
    assert model.n_components_ == 1
    [event] = [h for h in model.history_ if h.get("event", "").startswith("dropped")]
    assert [r["reason"] for r in event["collapse"]] == ["spike"]
    with pytest.raises(Exception, match="collapsed"):
        MixtureOfLinearRegressions(2, init=start, on_collapse="error").fit(X, y)


@pytest.mark.parametrize("accelerate", [None, "squarem"])
def test_perfectly_collinear_features_are_reported(accelerate):
    X, y, _ = make_mixture(2000, [0.5, 0.5], [-3, 3], [[1], [-1]], [1, 1], seed=2)
    X = np.column_stack([X, 2 * X])
    model = MixtureOfLinearRegressions(2, random_state=0, init="random", tol=1e-9,
                                       accelerate=accelerate).fit(X, y)
    assert _finite(model)
    assert "rank-deficient design" in _notes(model)
    # The fitted lines are still the right ones: a + 2b along the shared direction.
    slopes = np.sort(model.coef_[:, 0] + 2 * model.coef_[:, 1])
    np.testing.assert_allclose(slopes, [-1, 1], atol=0.1)


@pytest.mark.parametrize("value", [0.0, 5.0])
def test_constant_target_gives_finite_parameters(value):
    X = np.random.default_rng(0).normal(size=(500, 2))
    y = np.full(500, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixtureOfLinearRegressions(2, random_state=0, max_iter=50).fit(X, y)
    assert _finite(model)
    assert np.all(model.sigma_ > 0)
    np.testing.assert_allclose(model.predict(X), value, atol=1e-6)


def test_duplicate_rows_equal_integer_weights():
    X, y, _ = make_mixture(500, [0.5, 0.5], [-3, 3], [[1], [-1]], [1, 1], seed=4)
    start = {"weights": [0.5, 0.5], "intercept": [-2.0, 2.0], "coef": [[0.5], [-0.5]],
             "sigma": [1.0, 1.0]}
    doubled = MixtureOfLinearRegressions(2, init=start, tol=1e-10).fit(np.r_[X, X], np.r_[y, y])
    weighted = MixtureOfLinearRegressions(2, init=start, tol=1e-10).fit(
        X, y, sample_weight=np.full(500, 2.0))
    assert doubled.params_.max_abs_diff(weighted.params_) < 1e-8
