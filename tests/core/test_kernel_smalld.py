"""The E-step's fused path (fewer than 8 features) on C-ordered rows.

``ArraySource`` hands the kernel a C-ordered X as the user gave it, so the
fused path transposes each block of rows into its scratch (4 x 4 in
registers for 4..7 features).  That is a copy: the sums must be the same
bits as from an F-ordered copy of the same features, whatever the rows'
stride, the address of the first row, the weights or the vector setting,
and agree with the numpy E-step to 1e-12 of scale.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.mixtures import kernel_and_numpy

from streammix import MixtureParams
from streammix.core import kernel, stats
from streammix.core.stats import estep_features_many

pytestmark = pytest.mark.skipif(not kernel.available(), reason="the kernel is not built")

FIELDS = ("s0", "s2", "rx", "r0", "loglik", "class_loglik", "entropy", "sum_w")


@pytest.fixture(params=[True, False], ids=["lanes", "plain"])
def vector_lanes(request):
    """Each test with the vector-extension code and with the plain loops; restored after."""
    before = kernel.set_vector_lanes(request.param)
    yield request.param
    kernel.set_vector_lanes(before)


def _params(rng, m, p):
    return MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, p)) * 0.5,
                         rng.uniform(0.3, 3.0, size=m))


def _rows(X: np.ndarray, pad: int, offset: int) -> np.ndarray:
    """X's values as rows ``X.shape[1] + pad`` doubles apart, the first row
    ``offset`` doubles past a 64-byte boundary (a view of a larger C-ordered array)."""
    n, d = X.shape
    width = d + pad
    raw = np.empty(n * width + 16)
    skip = (-raw.ctypes.data % 64) // 8 + offset
    out = raw[skip:skip + n * width].reshape(n, width)[:, :d]
    out[...] = X
    assert n == 0 or out.ctypes.data % 64 == 8 * offset
    assert n == 0 or out.strides == (8 * width, 8)
    return out


def _same_bits(a, b):
    for name in FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)),
                                      err_msg=name)


def _close(fast, slow, rtol=1e-12):
    for name in FIELDS:
        x, ref = np.asarray(getattr(fast, name)), np.asarray(getattr(slow, name))
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
        if name == "entropy":  # a difference with the log-likelihood: its rounding is loglik's
            scale = max(scale, abs(slow.loglik))
        np.testing.assert_allclose(x, ref, rtol=0, atol=rtol * scale, err_msg=name)


def _problem(seed, n, d):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d)
    y = rng.normal(size=n) * 3
    w = rng.uniform(0.0, 2.0, size=n)
    w[::3] = 0.0
    return rng, X, y, w


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("n", [0, 1, 3, 127, 128, 129, 1001])
def test_c_ordered_rows_give_the_bits_of_an_f_ordered_copy(kernel_switch, vector_lanes, d, n):
    # every row stride (pad 0: contiguous rows; odd pads) and first-row address
    rng, X, y, w = _problem(100 * d + n, n, d)
    kernel_switch(True)
    for m in (1, 3, 8) if n > 3 else range(1, 9):
        prm = [_params(rng, m, d + 1), _params(rng, m, d + 1)]
        ref = estep_features_many(np.asfortranarray(X).T, y, w, prm, True)
        for pad, offset in ((0, 0), (0, 3), (1, 1), (3, 5), (6, 7)):
            rows = _rows(X, pad, offset)
            assert n == 0 or np.shares_memory(stats.kernel_layout(rows.T), rows)
            got = estep_features_many(rows.T, y, w, prm, True)
            for a, b in zip(got, ref, strict=True):
                _same_bits(a, b)
        # without an intercept the d columns are all features
        p0 = [_params(rng, m, d)]
        ref0 = estep_features_many(np.asfortranarray(X).T, y, w, p0, False)
        _same_bits(estep_features_many(_rows(X, 1, 2).T, y, w, p0, False)[0], ref0[0])


@pytest.mark.parametrize("d", [1, 4, 5, 7])
@pytest.mark.parametrize("m", [1, 2, 5, 8])
def test_c_ordered_rows_equal_the_numpy_estep(kernel_switch, vector_lanes, d, m):
    rng, X, y, w = _problem(7 * d + m, 2049, d)
    prm = [_params(rng, m, d + 1)]
    for rows in (np.ascontiguousarray(X), _rows(X, 3, 1)):
        fast, slow = kernel_and_numpy(kernel_switch, rows.T, y, w, prm, True)
        _close(fast[0], slow[0])


def test_fits_of_c_ordered_x_agree_across_layouts_threads_and_chunks(kernel_switch):
    # Whole default fits at 4 features from the public door: a C-ordered X
    # (read in place) and its F-ordered copy give the same bits, on 1 and 2
    # threads, with and without the vector code; another chunking agrees closely.
    import streammix
    from streammix.data.arrays import ArraySource
    from streammix.engines.inprocess import InProcessEngine

    rng = np.random.default_rng(4)
    n, d = 6000, 4
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)
    beta = rng.normal(size=(3, d))
    z = rng.integers(0, 3, size=n)
    y = np.einsum("ij,ij->i", X, beta[z]) + (z - 1.0) + rng.normal(size=n) * 0.5
    assert X.flags.c_contiguous

    def fit(data, threads=1, chunk_rows=1000):
        model = streammix.MixtureOfLinearRegressions(
            3, random_state=0, tol=1e-10, max_iter=300, engine=InProcessEngine(threads))
        return model.fit(ArraySource(data, y, chunk_rows=chunk_rows))

    kernel_switch(True)
    before = kernel.set_vector_lanes(True)
    try:
        results = {}
        for lanes in (True, False):
            kernel.set_vector_lanes(lanes)
            base = fit(X)
            assert base.n_iter_ >= 3
            for other in (fit(np.asfortranarray(X)), fit(X, threads=2)):
                assert np.array_equal(other.coef_, base.coef_)
                assert np.array_equal(other.params_.sigma2, base.params_.sigma2)
                assert other.loglik_ == base.loglik_
            results[lanes] = base
        rechunked = fit(X, chunk_rows=777)
    finally:
        kernel.set_vector_lanes(before)
    np.testing.assert_allclose(rechunked.coef_, results[True].coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(results[False].coef_, results[True].coef_, rtol=1e-8, atol=1e-10)
