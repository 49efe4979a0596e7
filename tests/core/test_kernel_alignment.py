"""The compiled kernel with parameters at odd addresses, as Dask workers unpickle them.

Pickle protocol 5 hands out arrays that view a message buffer at any byte
offset; the kernel reads float64 only at 8-byte aligned addresses, so the
callers copy what is misaligned.  (On a 2-worker cluster ``compute_se``
failed with "pi_tail is not aligned to 8 bytes".)
"""

from __future__ import annotations

import numpy as np
import pytest

from streammix.algorithms.information import information_stats
from streammix.core import kernel
from streammix.core.params import MixtureParams
from streammix.core.stats import estep_features

pytestmark = pytest.mark.skipif(not kernel.available(), reason="the kernel is not built")


def _misaligned(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    raw = np.zeros(values.size * 8 + 1, dtype=np.uint8)[1:]  # one byte past an allocation
    out = raw.view(np.float64).reshape(values.shape)
    out[...] = values
    assert out.ctypes.data % 8 != 0
    return out


@pytest.mark.parametrize("noise", ["per_component", "shared"])
def test_misaligned_parameters_give_the_same_bits(noise):
    rng = np.random.default_rng(1)
    n, m = 500, 3
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    y = rng.normal(size=n)
    w = np.ones(n)
    weights, beta = np.array([0.5, 0.3, 0.2]), rng.normal(size=(m, 3))
    sigma2 = np.array([1.0, 0.5, 2.0]) if noise == "per_component" else np.full(3, 0.8)
    aligned = MixtureParams(weights, beta, sigma2)
    # as unpickling makes them: the arrays are set, not checked (and copied) again
    odd = MixtureParams(weights, beta, sigma2)
    for name, value in (("weights", weights), ("beta", beta), ("sigma2", sigma2)):
        object.__setattr__(odd, name, _misaligned(value))
    assert odd.beta.ctypes.data % 8 != 0
    with kernel.enabled_as(True):
        a, b = information_stats(X, y, w, aligned, noise), information_stats(X, y, w, odd, noise)
        np.testing.assert_array_equal(a.louis, b.louis)
        np.testing.assert_array_equal(a.opg, b.opg)
        for fit_intercept, FT in ((True, X[:, 1:].T), (False, X.T)):
            FT = np.ascontiguousarray(FT)
            s = estep_features(FT, y, w, aligned, fit_intercept)
            t = estep_features(FT, y, w, odd, fit_intercept)
            assert s.loglik == t.loglik
            np.testing.assert_array_equal(s.rx, t.rx)
            np.testing.assert_array_equal(s.s2, t.s2)
