"""The gated E-step in the components-in-rows layout equals the row layout it replaced.

The reference is the former implementation of ``streammix.core.gating`` kept
here verbatim (rows in rows, sums along axis 1); the current one holds the
components in rows of (m, n) arrays.  Every statistic agrees to 1e-12 of its
scale, with weights (zeros too), m = 1..4, and a component of weight zero.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from streammix import MixtureParams
from streammix.core.gating import gating_estep, gating_loglik, log_gate
from streammix.core.stats import accumulate, log_norm


def _old_log_gate(Z1, coef):
    eta = Z1 @ np.asarray(coef, dtype=np.float64).T
    top = eta.max(axis=1, keepdims=True)
    return eta - top - np.log(np.exp(eta - top).sum(axis=1, keepdims=True))


def _old_joint(Xd, y, Z1, params, coef):
    log_pi = _old_log_gate(Z1, coef)
    R = y[:, None] - Xd @ params.beta.T
    base = log_norm(params) - np.log(np.maximum(params.weights, 1e-300))
    L = log_pi + base - R * R * (0.5 / params.sigma2)
    top = L.max(axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    ll = top + np.log(np.exp(L - top[:, None]).sum(axis=1))
    return ll, L - ll[:, None], L, log_pi


def _old_estep(Xd, y, w, Z1, params, coef):
    ll, log_resp, L, log_pi = _old_joint(Xd, y, Z1, params, coef)
    resp = np.exp(log_resp)
    stats = accumulate(Xd, y, w, resp, params.beta)
    with np.errstate(invalid="ignore"):
        ent = -float(np.sum(w[:, None] * np.where(resp > 0, resp * log_resp, 0.0)))
    stats = dataclasses.replace(stats, loglik=float(w @ ll),
                                class_loglik=float(w @ L.max(axis=1)), entropy=ent)
    pi = np.exp(log_pi)
    Zw = Z1 * w[:, None]
    return stats, ((resp - pi).T @ Zw, Zw.T @ Z1, w @ pi), ll, log_resp


def _close(a, b, rtol=1e-12):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_the_gated_e_step_equals_the_row_layout(m):
    rng = np.random.default_rng(m)
    n, d, q = 3000, 2, 2
    Xd = np.column_stack([np.ones(n), rng.normal(size=(n, d))])
    y = rng.normal(size=n) * 2
    w = rng.integers(0, 3, n).astype(float)
    Z1 = np.column_stack([np.ones(n), rng.normal(size=(n, q))])
    weights = rng.dirichlet(np.ones(m))
    if m > 2:
        weights[-1] = 0.0  # a component of weight zero: its constant is 1e-300's log
        weights /= weights.sum()
    params = MixtureParams(weights, rng.normal(size=(m, d + 1)), rng.uniform(0.5, 3.0, m))
    coef = np.vstack([np.zeros(q + 1), rng.normal(size=(m - 1, q + 1))])
    stats, gate = gating_estep(Xd, y, w, Z1, params, coef)
    ref_stats, (grad, zz, prior), ll, log_resp = _old_estep(Xd, y, w, Z1, params, coef)
    for name in ("s0", "s2", "rx", "r0", "loglik", "class_loglik", "entropy", "sum_w"):
        _close(getattr(stats, name), getattr(ref_stats, name))
    _close(gate.grad, grad)
    _close(gate.zz, zz)
    _close(gate.prior_sum, prior)
    got_ll, got_log_resp = gating_loglik(Xd, y, Z1, params, coef)
    _close(got_ll, ll)
    _close(got_log_resp, log_resp)
    _close(log_gate(Z1, coef), _old_log_gate(Z1, coef))
