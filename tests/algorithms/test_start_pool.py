"""The start pool: stacked short EM runs equal the one-by-one EM, and the budget."""

from __future__ import annotations

import numpy as np
import pytest
from support.mixtures import make_mixture

from streammix.algorithms.em import EMSettings, run_em
from streammix.algorithms.start.candidates import REFINE_SIZE
from streammix.algorithms.start.pool import (
    MAX_POOL,
    degenerate_runs,
    first_cut_runs,
    pool_size,
)
from streammix.algorithms.start.pool_starts import pool_starts
from streammix.algorithms.start.population import population_em, stack, unstack
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep


@pytest.fixture(scope="module")
def sample():
    X, y, _ = make_mixture(300, [0.4, 0.6], [-1.0, 1.0], [[1.0, -0.5], [-0.5, 1.0]],
                           [1.0, 0.8], seed=3)
    return design_matrix(X, True), y


@pytest.mark.parametrize("noise", ["per_component", "shared"])
def test_stacked_runs_equal_em_run_one_by_one(sample, noise):
    Xd, y = sample
    w = np.random.default_rng(0).uniform(0.5, 2.0, y.size)
    starts = [MixtureParams(np.array([0.5, 0.5]), np.array([[0.0, 1.0, 0.0], [0.5, -1.0, 1.0]]),
                            np.array([1.0, 2.0])),
              MixtureParams(np.array([0.3, 0.7]), np.array([[1.0, 0.0, 1.0], [-1.0, 1.0, 0.0]]),
                            np.array([0.5, 0.5]))]
    options = MStepOptions(noise=noise, variance_floor=1e-3)
    pop = population_em(Xd, y, w, stack(starts), n_iter=7, noise=noise, floor=1e-3)
    settings = EMSettings(mstep=options, tol=0.0, max_iter=7, min_eff_rows=0.0,
                          min_sigma_ratio=0.0)  # no collapse, as population_em
    for i, start in enumerate(starts):
        ref = run_em(lambda prm: estep(Xd, y, w, prm), start, settings, warn=False)
        got = unstack(pop, i)
        np.testing.assert_allclose(got.beta, ref.params.beta, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(got.sigma2, ref.params.sigma2, rtol=1e-8)
        np.testing.assert_allclose(got.weights, ref.params.weights, rtol=1e-8)
        assert pop.loglik[i] == pytest.approx(ref.loglik, rel=1e-10)


def test_the_trace_holds_every_e_step_and_leaves_the_runs_unchanged(sample):
    Xd, y = sample
    w = np.ones(y.size)
    starts = pool_starts(Xd, y, 2, 12, np.random.default_rng(2), MStepOptions(variance_floor=1e-3))
    trace = []
    pop = population_em(Xd, y, w, starts, n_iter=4, noise="per_component", floor=1e-3,
                        trace=trace)
    plain = population_em(Xd, y, w, starts, n_iter=4, noise="per_component", floor=1e-3)
    assert len(trace) == 5
    np.testing.assert_array_equal(trace[-1], pop.loglik)
    np.testing.assert_array_equal(pop.beta, plain.beta)
    for i, loglik in enumerate(trace[:-1]):
        fewer = population_em(Xd, y, w, starts, n_iter=i, noise="per_component", floor=1e-3)
        np.testing.assert_allclose(loglik, fewer.loglik, rtol=1e-12)
    assert (np.diff(np.array(trace), axis=0) > -1e-8).all()  # EM climbs


def test_the_first_cut_keeps_the_best_then_the_fastest_climbers():
    loglik = np.array([-10.0, -11.0, -12.0, -13.0, -14.0, -15.0, -16.0, -17.0, -18.0, -19.0,
                       -1.0, -np.inf])
    gain = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 2.0, 5.0, 0.0, np.nan])
    strict = np.zeros(12, dtype=bool)
    strict[[9, 10, 11]] = True
    loose = np.zeros(12, dtype=bool)
    loose[[9, 11]] = True  # run 10 is forming (fails only the strict test)
    chosen = first_cut_runs(loglik, gain, strict, loose, 8)
    # one forming run for the four places of its half: the other three go to
    # identified runs, best first; then 8 // GAIN_SHARE = 1 more, the fastest
    # climber of the others that pass the lenient test (run 8; not run 9, which
    # fails it)
    assert list(chosen) == [0, 1, 2, 3, 4, 5, 6, 10, 8]
    chosen = first_cut_runs(loglik, gain, strict, loose, 4)
    assert list(chosen) == [0, 1, 2, 10]  # 4 // 8 = 0 climbers


def test_the_pool_is_for_small_samples_only():
    assert pool_size(100, 2, True) == MAX_POOL
    assert 32 <= pool_size(1000, 3, True) < MAX_POOL
    assert pool_size(REFINE_SIZE, 2, True) == 0  # large data: the standard candidates


def test_pool_starts_are_finite_and_of_every_kind(sample):
    Xd, y = sample
    pop = pool_starts(Xd, y, 3, 60, np.random.default_rng(1), MStepOptions(variance_floor=1e-3))
    assert pop.beta.shape == (60, 3, 3)
    assert np.isfinite(pop.beta).all() and (pop.sigma2 > 0).all()
    np.testing.assert_allclose(pop.weights.sum(axis=1), 1.0)
    assert len({tuple(np.round(b.ravel(), 8)) for b in pop.beta}) == 60


def test_spikes_and_empty_components_are_degenerate(sample):
    Xd, y = sample
    pop = population_em(Xd, y, np.ones(y.size), stack([
        MixtureParams(np.array([0.5, 0.5]), np.array([[0.0, 1.0, 0.0], [0.5, -1.0, 1.0]]),
                      np.array([1.0, 2.0]))] * 3), n_iter=0, noise="per_component", floor=1e-3)
    pop.n_eff[1] = [297.0, 3.0]  # fewer effective rows than p + 1 = 4
    pop.n_eff[2] = [290.0, 10.0]
    pop.sigma2[2, 1] = 1e-6  # a spike: few rows, tiny sigma
    assert degenerate_runs(pop, 3, 1.0, 1e-3, "per_component").tolist() == [False, True, True]
    assert degenerate_runs(pop, 3, 1.0, 1e-3, "shared").tolist() == [False, True, False]
