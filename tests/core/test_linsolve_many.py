"""The stacked M-step solve equals the one-by-one solve bit for bit (so every fit is unchanged)."""

from __future__ import annotations

import numpy as np

from streammix.core.linsolve import solve_spd, solve_spd_many


def _systems(rng, k, p):
    out = []
    for _ in range(k):
        G = rng.normal(size=(int(rng.integers(1, 30)), p)) * 10.0 ** rng.uniform(-5, 5, size=p)
        A = G.T @ G
        kind = rng.uniform()
        if kind < 0.1:
            A = np.zeros((p, p))  # an empty component's Gram
        elif kind < 0.2 and p > 1:  # two equal columns: singular, the eigen cut-off
            A[:, 0], A[0, :] = A[:, 1], A[1, :]
        out.append(A)
    return np.array(out)


def test_stacked_solves_are_the_single_solves_bit_for_bit():
    rng = np.random.default_rng(0)
    n_cut = 0
    for _ in range(400):
        k, p = int(rng.integers(1, 6)), int(rng.integers(1, 8))
        A, b = _systems(rng, k, p), rng.normal(size=(k, p))
        x, cut = solve_spd_many(A, b)
        for i in range(k):
            xi, ci = solve_spd(A[i], b[i])
            assert np.array_equal(x[i], xi) and cut[i] == ci
            n_cut += ci
    assert n_cut > 20  # the fallback path was exercised, not only Cholesky


def test_an_empty_stack_solves_nothing():
    x, cut = solve_spd_many(np.empty((0, 3, 3)), np.empty((0, 3)))
    assert x.shape == (0, 3) and cut == []
