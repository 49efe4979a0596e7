"""scikit-learn's own estimator checks, and the tools users combine the estimator with."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions, NotFittedError

#: The checks that cannot pass, each with its reason (at most three).
EXPECTED_FAILURES = {
    "check_methods_sample_order_invariance":
        "score_samples(X, y) is log p(y | x): it needs y, which the check does not pass",
    "check_methods_subset_invariance":
        "score_samples(X, y) is log p(y | x): it needs y, which the check does not pass",
    "check_sample_weight_equivalence_on_dense_data":
        "15 rows of 30 features: the regression is not identifiable, and the fit refuses "
        "data with fewer rows of positive weight than free parameters (DataError)",
}


# One component and plain EM: scikit-learn's data sets hold 10 to 20 rows, fewer than the
# free parameters of two components on them (refused as not identifiable); plain EM makes
# at least one M-step, so n_iter_ >= 1 as check_non_transformer_estimators_n_iter asks.
# The whole set of checks takes about 1 s.
@parametrize_with_checks([MixtureOfLinearRegressions(1, accelerate=None, random_state=0)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_check(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(1500, [0.5, 0.5], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [0.7, 0.7], seed=5)
    return X, y


def test_cross_val_score_is_the_finite_mean_loglik(data):
    X, y = data
    model = MixtureOfLinearRegressions(2, random_state=0)
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    folds = KFold(3).split(X)
    train, test = next(folds)
    by_hand = clone(model).fit(X[train], y[train]).score(X[test], y[test])
    assert scores[0] == pytest.approx(by_hand, rel=1e-12)


def test_grid_search_picks_the_generating_number_of_components(data):
    X, y = data
    search = GridSearchCV(MixtureOfLinearRegressions(random_state=0),
                          {"n_components": [1, 2]}, cv=3).fit(X, y)
    assert search.best_params_ == {"n_components": 2}
    assert search.best_estimator_.n_components_ == 2


def test_pipeline_with_a_scaler(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), MixtureOfLinearRegressions(2, random_state=0))
    pipe.fit(X, y)
    direct = MixtureOfLinearRegressions(2, random_state=0).fit(X, y)
    np.testing.assert_allclose(pipe.predict(X), direct.predict(X), atol=1e-4)
    assert pipe.score(X, y) == pytest.approx(direct.score(X, y), abs=1e-6)


def test_clone_copies_settings_and_forgets_the_fit(data):
    X, y = data
    model = MixtureOfLinearRegressions(2, init={"weights": [0.5, 0.5], "sigma": [1, 1],
                                       "coef": [[2, -1], [-1, 0.5]], "intercept": [-3, 3]})
    copy = clone(model)
    assert copy.init == model.init and copy.init is not model.init
    fitted = MixtureOfLinearRegressions(2, random_state=0).fit(X, y)
    assert not hasattr(clone(fitted), "params_")


def test_pickle_round_trip(data):
    X, y = data
    model = MixtureOfLinearRegressions(2, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert again.get_params() == model.get_params() and again.loglik_ == model.loglik_


def test_not_fitted_is_sklearns_error():
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    with pytest.raises(SklearnNotFittedError):
        MixtureOfLinearRegressions().predict(np.zeros((2, 2)))
    assert issubclass(NotFittedError, SklearnNotFittedError)


def test_predict_proba_without_y_is_the_prior(data):
    X, y = data
    model = MixtureOfLinearRegressions(2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(model.predict_proba(X[:3]), np.tile(model.weights_, (3, 1)))
    post = model.predict_proba(X[:3], y[:3])
    np.testing.assert_allclose(post.sum(1), 1.0)
