"""The start pool's exchange step, its orthogonal coordinates and its sizes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from support import FIXTURES

from streammix.algorithms.start.moves import posteriors, row_moves
from streammix.algorithms.start.pool import orthonormal_design
from streammix.algorithms.start.pool_budget import (
    LONG_ITER,
    N_FINALISTS,
    POOL_BUDGET,
    SURVIVOR_SHARE,
    finalist_count,
    long_iterations,
    pool_size,
    short_iterations,
    survivor_count,
)
from streammix.algorithms.start.population import Population, population_em
from streammix.core.stats import design_matrix

REAL = FIXTURES / "real_data"


def _real(name):
    with open(REAL / f"{name}.csv", newline="") as handle:
        values = np.array(list(csv.reader(handle))[1:], dtype=float)
    return design_matrix(values[:, 1:], True), values[:, 0]


def _r_solution(key):
    sol = json.loads((REAL / "r_results.json").read_text())[key]["summary"]["polished_ml"]
    comps = sol["components"]
    return (np.array([c["prior"] for c in comps]), np.array([c["coef"] for c in comps]),
            np.array([c["sigma"] for c in comps]) ** 2, sol["loglik"])


def test_orthogonal_coordinates_keep_the_fitted_values():
    Xd, _ = _real("savings")
    Xq, t = orthonormal_design(Xd)
    n, p = Xd.shape
    np.testing.assert_allclose(Xq.T @ Xq, n * np.eye(p), atol=1e-9 * n)
    beta_q = np.random.default_rng(0).normal(size=(3, p))
    np.testing.assert_allclose(Xq @ beta_q.T, Xd @ (beta_q @ t.T).T, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("key", ["savings/k=2/per_component", "stackloss/k=2/shared"])
def test_stacked_em_keeps_r_s_fixed_point_in_orthogonal_coordinates(key):
    """R's polished optimum (plain EM in R to 1e-13) is a fixed point of the stacked
    EM on the orthogonal design.  On the raw columns the solves' guard moved it:
    savings fell to -128.81, stackloss to -38.51."""
    Xd, y = _real(key.split("/")[0])
    weights, beta, sigma2, loglik = _r_solution(key)
    noise = key.split("/")[2]
    Xq, t = orthonormal_design(Xd)
    beta_q = np.linalg.solve(t, beta.T).T
    pop = Population(weights[None], beta_q[None], sigma2[None], np.array([-np.inf]),
                     np.zeros((1, weights.size)))
    out = population_em(Xq, y, np.ones(y.size), pop, n_iter=200, noise=noise, floor=1e-12)
    assert out.loglik[0] == pytest.approx(loglik, rel=1e-9)
    np.testing.assert_allclose(out.beta[0] @ t.T, beta, rtol=1e-5, atol=1e-6)


def test_each_row_move_is_weighted_least_squares_with_that_row_reassigned():
    rng = np.random.default_rng(4)
    n = 40
    x = rng.uniform(-2, 2, n)
    Xd = np.column_stack([np.ones(n), x])
    y = np.where(np.arange(n) < 25, 1 + 2 * x, -1 - x) + rng.normal(0, 0.3, n)
    pop = Population(np.array([[0.6, 0.4]]), np.array([[[1.0, 2.0], [-1.0, -1.0]]]),
                     np.array([[0.1, 0.1]]), np.array([-np.inf]), np.zeros((1, 2)))
    moves = row_moves(Xd, y, np.ones(n), pop, 10_000, rng, noise="per_component", floor=1e-9)
    gamma = posteriors(Xd, y, pop)[0]
    assert moves.size == int((gamma < 0.5).sum()) == n  # every row, to the other component
    done = set()
    for k in range(moves.size):
        for row in range(n):  # find which row this start moved, by least squares
            for comp in range(2):
                if gamma[comp, row] >= 0.5:
                    continue
                g = gamma.copy()
                g[:, row] = 0.0
                g[comp, row] = 1.0
                sw = np.sqrt(g[comp])
                ref = np.linalg.lstsq(Xd * sw[:, None], y * sw, rcond=None)[0]
                if np.allclose(moves.beta[k, comp], ref, rtol=1e-8, atol=1e-10):
                    done.add((row, comp))
    assert len(done) == n


def test_the_pool_s_stages_keep_their_floors_on_the_largest_samples():
    """Where the pool is used at its smallest size, every stage stays within the
    budget (the finalists within twice it): the cost near the pool's limit is
    bounded, and beyond it (no pool) unchanged."""
    n, m = 1900, 2
    size = pool_size(n, m, True)
    assert 32 <= size < 40
    short = short_iterations(n, m, True, size)
    kept = survivor_count(n, m, True, size, short)
    assert size // SURVIVOR_SHARE <= kept <= size // 2
    assert kept * 3 * short * n * m * 3 <= POOL_BUDGET
    final = finalist_count(n, m)
    assert N_FINALISTS <= final <= 2 * N_FINALISTS
    assert 2 * final * long_iterations(n, m, 2 * final) * n * m <= 2 * POOL_BUDGET
    assert finalist_count(50, 2) > N_FINALISTS and long_iterations(50, 2, 64) > LONG_ITER
