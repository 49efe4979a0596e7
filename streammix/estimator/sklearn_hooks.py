"""What scikit-learn asks of the estimator beyond ``BaseEstimator``: its tags and its clone.

scikit-learn is a runtime dependency (the arrays guide, docs/guide/arrays.rst,
says why): the estimator inherits :class:`sklearn.base.BaseEstimator` for everyone,
so ``clone``, ``get_params``/``set_params``, the repr, ``GridSearchCV``,
``cross_val_score`` and ``Pipeline`` behave the same in every installation.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_array, column_or_1d

from streammix.core.checks import check_fitted
from streammix.exceptions import DataError

__all__ = ["sklearn_tags", "is_plain_array", "check_fit_arrays",
           "check_score_arrays", "check_n_features", "check_predict_array",
           "check_batch_features"]


def sklearn_tags(tags):
    """``tags`` (from ``BaseEstimator``) marked: the fit needs y.

    Not tagged a regressor, though ``predict`` is the conditional mean
    E[y | x]: a mixture gives the whole conditional distribution, and
    scikit-learn's regressor contract forbids ``predict_proba`` (here the
    component probabilities) and reads ``score`` as R² (here the mean
    log-likelihood).  ``cross_val_score`` and ``GridSearchCV`` therefore
    split with ``KFold`` and rank by ``score`` as for any estimator.
    """
    tags.target_tags.required = True
    return tags


def as_float_array(X, **kwargs) -> np.ndarray:
    """:func:`sklearn.utils.check_array` to float64; strings that are not numbers
    raise :class:`~streammix.DataError` ("X must be numeric: ..."), objects that
    are no numbers at all (a dict) numpy's ``TypeError``."""
    try:
        return check_array(X, dtype=np.float64, **kwargs)
    except ValueError as exc:
        if "could not convert" in str(exc):
            raise DataError(f"X must be numeric: {exc}") from None
        raise


def is_plain_array(X) -> bool:
    """Whether ``X`` is a plain array (numpy, list, scipy sparse): not a source, a
    table or DataFrame with column names, nor a Dask collection."""
    return not any(hasattr(X, name) for name in
                   ("plan", "columns", "column_names", "__dask_graph__"))


def check_fit_arrays(model, X, y):
    """``X`` and ``y`` checked as scikit-learn checks them, when ``X`` is a plain array.

    Plain arrays become float64 arrays: X 2-dimensional (a 1-d X is refused:
    "Reshape your data"), at least 2 rows, dense (sparse input is refused),
    real (complex is refused); y required, numeric, 1-d (a column vector is
    raveled with a ``DataConversionWarning``).  NaN and inf are left to the
    source's own checks, whose messages name the column and the first row.
    Other inputs (sources, DataFrames, tables, Dask collections) are returned
    unchanged for their own readers.
    """
    if not is_plain_array(X):
        return X, y
    if y is None:
        raise ValueError(f"{type(model).__name__} requires y to be passed, but the target y "
                         "is None")
    X = as_float_array(X, ensure_all_finite=False, ensure_min_samples=2, estimator=model)
    y = column_or_1d(y, warn=True)
    try:
        y = y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must be numeric: {exc}") from None
    return X, y


def check_score_arrays(model, X, y):
    """``X`` and ``y`` for ``score``, ``bic``, ``aic``: as for ``fit``, and a plain
    ``X`` must have as many features as the fit had (scikit-learn's message)."""
    check_fitted(model)
    X, y = check_fit_arrays(model, X, y)
    if is_plain_array(X):
        check_n_features(model, X)
    return X, y


def check_n_features(model, X) -> None:
    """Raise scikit-learn's ``ValueError`` unless ``X`` has ``n_features_in_`` columns."""
    if X.shape[1] != model.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(model).__name__} is "
                         f"expecting {model.n_features_in_} features as input")


def check_predict_array(model, X):
    """``X`` for prediction: when a plain array, a finite float64 (n, d) array with
    as many features as the fit had (scikit-learn's message otherwise); the model
    must be fitted (:class:`~streammix.NotFittedError`)."""
    check_fitted(model)
    if not is_plain_array(X):
        return X
    X = as_float_array(X, estimator=model)
    check_n_features(model, X)
    return X


def check_batch_features(model, X) -> None:
    """For ``partial_fit``: a plain 2-d batch after the first must have
    ``n_features_in_`` columns (scikit-learn's message in a DataError otherwise)."""
    if is_plain_array(X) and hasattr(model, "n_features_in_") and np.ndim(X) == 2:
        try:
            check_n_features(model, np.empty((0, np.shape(X)[1])))
        except ValueError as exc:
            raise DataError(f"batch: {exc}") from None
