"""The compiled sums of the grouped E-step are held equal to its numpy path.

``kernel.group_loglik`` adds each row's component log-densities to its
group's row; the numpy path forms the same densities and sums them with
``np.bincount``.  Both are compared on groups in any row order (as a lake's
joined tasks give them), with weights and with a gate, to 1e-12 of scale;
the independent reference is a plain Python sum group by group.
"""

from __future__ import annotations

import numpy as np
import pytest

from streammix import MixtureParams
from streammix.core import kernel
from streammix.core.grouped_estep import group_index, group_log_densities, grouped_estep
from streammix.core.grouped_gating import grouped_gating_estep

needs_kernel = pytest.mark.skipif(kernel.group_loglik is None,
                                  reason="compiled kernel not built (or built before group_loglik)")


def _data(seed=0, n_groups=400, m=3, d=3):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.repeat(np.arange(n_groups), rng.integers(1, 12, n_groups)))
    n = ids.size
    Xd = np.column_stack([np.ones(n), rng.normal(size=(n, d))])
    y = rng.normal(size=n) * 3 + 1
    w = rng.integers(1, 4, n_groups).astype(float)[ids]
    z = rng.normal(size=(n_groups, 2))[ids]
    params = MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, d + 1)),
                           rng.uniform(0.5, 4.0, m))
    coef = np.vstack([np.zeros(3), rng.normal(size=(m - 1, 3))])
    return Xd, y, w, ids, np.column_stack([np.ones(n), z]), params, coef


def _close(a, b, rtol=1e-12):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@needs_kernel
def test_group_sums_equal_numpy_and_a_plain_sum():
    Xd, y, _, ids, _, params, _ = _data()
    codes, _ = group_index(ids)
    G = int(codes.max()) + 1
    with kernel.enabled_as(True):
        fast = group_log_densities(Xd, y, codes, params, G)
    with kernel.enabled_as(False):
        slow = group_log_densities(Xd, y, codes, params, G)
    _close(fast, slow)
    plain = np.zeros_like(slow)
    for i in range(y.size):  # the definition, row by row
        r = y[i] - Xd[i] @ params.beta.T
        plain[codes[i]] += -0.5 * np.log(2 * np.pi * params.sigma2) - r * r / (2 * params.sigma2)
    _close(fast, plain, rtol=1e-11)


@needs_kernel
@pytest.mark.parametrize("gated", [False, True])
def test_the_grouped_e_step_is_the_same_on_both_paths(gated):
    Xd, y, w, ids, Z1, params, coef = _data(seed=1)
    out = {}
    for on in (True, False):
        with kernel.enabled_as(on):
            if gated:
                stats, gate = grouped_gating_estep(Xd, y, w, ids, Z1, params, coef)
                out[on] = (stats, gate)
            else:
                out[on] = (grouped_estep(Xd, y, w, ids, params), None)
    (fast, fgate), (slow, sgate) = out[True], out[False]
    for name in ("s0", "s2", "rx", "r0", "loglik", "class_loglik", "entropy", "sum_w"):
        _close(getattr(fast.stats, name), getattr(slow.stats, name))
    _close(fast.group_s0, slow.group_s0)
    assert fast.n_groups == slow.n_groups == 400
    if gated:
        for name in ("grad", "zz", "prior_sum"):
            _close(getattr(fgate, name), getattr(sgate, name))


@needs_kernel
def test_a_group_code_out_of_range_is_refused():
    L = np.zeros((2, 1))
    with pytest.raises(ValueError, match="out of range"):
        kernel.group_loglik(np.zeros((3, 2)), np.zeros((1, 2)), np.zeros(3), np.zeros(1),
                            np.ones(1), np.array([0, 2, 1], dtype=np.int64), L)
    with pytest.raises(TypeError, match="int64"):
        kernel.group_loglik(np.zeros((3, 2)), np.zeros((1, 2)), np.zeros(3), np.zeros(1),
                            np.ones(1), np.array([0, 1, 1], dtype=np.int32), L)


@pytest.mark.parametrize("labels", [
    np.array([0, 0, 1, 2, 1, 3, 2]),        # codes in order of first appearance
    np.array([0, 0, 1, 1, 2]),              # sorted codes
    np.array([1, 1, 0, 2]),                 # not in appearance order: sorted by np.unique
    np.array([0, 2, 2, 0]),                 # a code missing
    np.array(["b", "a", "b", "c"], dtype=object),
])
def test_group_index_is_that_of_np_unique(labels):
    codes, first = group_index(labels)
    _, ref_first, ref_codes = np.unique(labels, return_index=True, return_inverse=True)
    np.testing.assert_array_equal(codes, ref_codes.ravel())
    np.testing.assert_array_equal(first, ref_first)
