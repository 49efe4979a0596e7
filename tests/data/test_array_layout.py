"""In-memory arrays in either memory layout: the same fit, the same standard errors.

A C-ordered float64 X is served as it is when the compiled kernel runs (no
Fortran-ordered copy); every other X is copied once to F order.  What the
user sees must not depend on it: the fit, its standard errors and its
predictions are the same to the bit for a C array, an F array, a DataFrame,
float32 and sliced arrays, with one thread or two and small chunks, and the
kernel and the numpy path (which copies where it needs to) agree.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from support.mixtures import make_mixture

from streammix import InProcessEngine, MixtureOfLinearRegressions
from streammix.core import kernel
from streammix.data.arrays import ArraySource
from streammix.exceptions import DataError, InferenceWarning

needs_kernel = pytest.mark.skipif(not kernel.available(),
                                  reason="the compiled kernel was not built")

FITTED = ("coef_", "intercept_", "sigma_", "weights_", "loglik_", "n_iter_", "n_passes_",
          "vcov_", "score_gap_")


def _data(n=3000, d=4):
    X, y, _ = make_mixture(n, [0.3, 0.3, 0.4], [0.0, 3.0, -3.0],
                           np.arange(3 * d, dtype=float).reshape(3, d) / d - 1.0,
                           [0.5, 1.0, 0.7], seed=7)
    return X, y


def _layouts(X):
    """The ways a user hands the same values over (each a float64 X or one that makes it)."""
    n, d = X.shape
    wide = np.ascontiguousarray(np.hstack([X, X]))
    tall = np.ascontiguousarray(np.vstack([X, X]))
    return {
        "C": np.ascontiguousarray(X),
        "F": np.asfortranarray(X),
        "DataFrame": pd.DataFrame(X, columns=[f"x{k}" for k in range(d)]),
        "column slice": wide[:, :d],
        "row slice": tall[:n],
        "every other row": np.ascontiguousarray(np.repeat(X, 2, axis=0))[::2],
    }


def _fit(X, y, n_threads=None, **kw):
    model = MixtureOfLinearRegressions(3, random_state=0, chunk_rows=700,
                                       engine=InProcessEngine(n_threads), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceWarning)
        model.fit(X, y, se=True)
        model.compute_se(X, y, method="sandwich")
    return model


def _assert_same_fit(a, b, Xa, Xb, what):
    for name in FITTED:
        np.testing.assert_array_equal(np.asarray(getattr(a, name)),
                                      np.asarray(getattr(b, name)), err_msg=f"{what}: {name}")
    for key in a.bse_:
        np.testing.assert_array_equal(a.bse_[key], b.bse_[key], err_msg=f"{what}: bse_[{key}]")
    np.testing.assert_array_equal(a.predict(Xa), b.predict(Xb), err_msg=f"{what}: predict")
    np.testing.assert_array_equal(a.predict_proba(Xa), b.predict_proba(Xb),
                                  err_msg=f"{what}: predict_proba")


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("use_kernel", [True, False])
def test_every_layout_gives_the_same_fit_and_standard_errors_to_the_bit(n_threads, use_kernel):
    if use_kernel and not kernel.available():
        pytest.skip("the compiled kernel was not built")
    X, y = _data()
    with kernel.enabled_as(use_kernel):
        ref = _fit(np.asfortranarray(X), y, n_threads)
        for what, Xv in _layouts(X).items():
            _assert_same_fit(ref, _fit(Xv, y, n_threads), X, Xv, what)


def test_float32_is_fitted_as_its_float64_values_in_either_layout():
    X, y = _data()
    X32 = X.astype(np.float32)
    ref = _fit(np.asfortranarray(X32.astype(np.float64)), y)
    for Xv in (np.ascontiguousarray(X32), np.asfortranarray(X32)):
        _assert_same_fit(ref, _fit(Xv, y), X32.astype(np.float64), Xv, "float32")


def test_many_starts_and_wide_data_are_the_same_in_either_layout():
    X, y = _data(n=2500, d=12)
    a = _fit(np.ascontiguousarray(X), y, n_init=4)
    b = _fit(np.asfortranarray(X), y, n_init=4)
    _assert_same_fit(a, b, X, X, "n_init=4, d=12")


@needs_kernel
def test_the_kernel_and_the_numpy_path_agree_on_a_c_ordered_array():
    X, y = _data()
    Xc = np.ascontiguousarray(X)
    fitted = _fit(Xc, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceWarning)
        compiled = fitted.compute_se(Xc, y).vcov_
        with kernel.enabled_as(False):
            numpy_vcov = fitted.compute_se(Xc, y).vcov_
    assert np.abs(numpy_vcov - compiled).max() <= 1e-12 * np.abs(compiled).max()
    with kernel.enabled_as(False):
        proba = fitted.predict_proba(Xc)
    np.testing.assert_allclose(proba, fitted.predict_proba(Xc), rtol=0, atol=1e-12)


@needs_kernel
def test_a_c_ordered_array_is_not_copied_and_an_f_ordered_one_not_either():
    X, y = _data(n=500)
    with kernel.enabled_as(True):
        for Xv in (np.ascontiguousarray(X), np.asfortranarray(X)):
            assert ArraySource(Xv, y).X is Xv
    with kernel.enabled_as(False):  # the numpy E-step wants each feature contiguous
        source = ArraySource(np.ascontiguousarray(X), y)
        assert source.X.flags.f_contiguous and not np.shares_memory(source.X, X)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_bad_value_is_named_by_column_and_row_in_either_layout(order, bad):
    X, y = _data(n=400)
    X = np.array(X, order=order)
    X[123, 2] = bad
    X[300, 1] = bad
    with pytest.raises(DataError, match=r"X column 1 has 1 .* first at row 300"):
        MixtureOfLinearRegressions(2).fit(X, y)
    frame = pd.DataFrame(X, columns=list("abcd"))
    with pytest.raises(DataError, match=r"X column 'b' has 1 .* first at row 300"):
        MixtureOfLinearRegressions(2).fit(frame, y)


def test_huge_finite_values_are_not_taken_for_bad_ones():
    X, y = _data(n=400)
    X = np.ascontiguousarray(X)
    X[:5, 0] = 1e308  # their sum overflows; each is finite
    assert ArraySource(X, y).X.shape == X.shape
