"""Restarts in lock-step: same results as one by one, one read per chunk per pass."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from support.mixtures import make_mixture
from support.sources import CountingSource

from streammix import MixtureOfLinearRegressions
from streammix.algorithms.em import EMSettings, drive, em_steps
from streammix.algorithms.restarts import CullRule, StatsBundle, run_lockstep
from streammix.algorithms.tasks import MultiEStepTask
from streammix.core.chunk import Chunk
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep
from streammix.data.arrays import ArraySource
from streammix.data.resolve import as_source
from streammix.estimator import fitting
from streammix.estimator.base import check_hyperparameters, draw_seed


@pytest.fixture(scope="module")
def data():
    return make_mixture(3000, [0.3, 0.3, 0.4], [0, 2, 4], [[1, 0], [0, 1], [-1, 1]],
                        [1, 1, 1], seed=7)


def test_stats_bundle_adds_elementwise_like_the_separate_statistics(data):
    X, y, _ = data
    Xd = design_matrix(X, True)
    w = np.ones(len(y))
    rng = np.random.default_rng(0)
    params = tuple(MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, 3)),
                                 np.ones(m)) for m in (2, 3, 4))
    task = MultiEStepTask(params, True)
    halves = [task(Chunk(X[s], y[s], w[s], "array", s.start))
              for s in (slice(0, 1234), slice(1234, None))]
    total = StatsBundle.zeros(params) + halves[0] + halves[1]
    assert isinstance(total, StatsBundle) and len(total) == 3
    for prm, got in zip(params, total, strict=True):
        assert got.allclose(estep(Xd, y, w, prm), rtol=1e-12)
    with pytest.raises(ValueError, match="bundles of 3 and 2"):
        _ = total + StatsBundle(total[:2])
    again = pickle.loads(pickle.dumps(total))  # travels to and from workers
    assert isinstance(again, StatsBundle) and all(
        a.allclose(b, rtol=0) for a, b in zip(again, total, strict=True))


@pytest.mark.parametrize("accelerate", [None, "squarem"])
def test_lockstep_runs_equal_the_same_seeds_one_by_one(data, accelerate):
    X, y, _ = data
    model = MixtureOfLinearRegressions(3, n_init=5, random_state=4, tol=1e-8,
                                       accelerate=accelerate, init="random", chunk_rows=500)
    check_hyperparameters(model)
    ctx = fitting.profile_pass(model, as_source(X, y, chunk_rows=model.chunk_rows),
                               draw_seed(model.random_state))
    pass_many = fitting.lockstep_pass(ctx, model.fit_intercept)

    def pass_one(params):
        return pass_many((params,))[0]

    solo = [drive(fitting.run_steps(model, ctx, 3, "random", r), pass_one) for r in range(5)]
    lockstep = run_lockstep([fitting.run_steps(model, ctx, 3, "random", r) for r in range(5)],
                            pass_many)
    assert lockstep.culled == []
    assert lockstep.n_passes == max(len(res.history) for res in solo)
    starts = {tuple(res.history[0].values()) for res in solo}
    assert len(starts) == 5  # five different starting values
    for a, b in zip(solo, lockstep.results, strict=True):
        assert a.params.max_abs_diff(b.params) <= 1e-10
        assert a.loglik == b.loglik and a.n_iter == b.n_iter

    # The estimator keeps the best of them, equal to the best solo run.
    kw = dict(n_init=5, random_state=4, tol=1e-8, accelerate=accelerate, init="random",
              chunk_rows=500)
    fitted = MixtureOfLinearRegressions(3, cull_restarts=False, **kw).fit(X, y)
    best = max(solo, key=lambda r: r.objective)
    order = np.lexsort((best.params.beta[:, 0], -best.params.weights))
    assert fitted.params_.max_abs_diff(best.params.permute(order)) <= 1e-10
    assert fitted.loglik_ == best.loglik
    assert fitted.n_passes_ == lockstep.n_passes + 1
    # Culling stops runs heading for the leader's optimum: same optimum, fewer passes.
    culled = MixtureOfLinearRegressions(3, **kw).fit(X, y)
    assert culled.loglik_ == pytest.approx(best.loglik, abs=1e-6)
    assert culled.params_.max_abs_diff(fitted.params_) < 1e-4


def test_one_read_per_chunk_per_pass_whatever_the_number_of_restarts(data):
    X, y, _ = data
    reads = {}
    for n_init in (1, 6):
        source = CountingSource(ArraySource(X, y, chunk_rows=400))
        model = MixtureOfLinearRegressions(3, n_init=n_init, random_state=1, tol=1e-6,
                                           init="random", cull_restarts=False).fit(source)
        counts = set(source.reads.values())
        assert len(source.reads) == 8 and counts == {model.n_passes_}
        reads[n_init] = model.n_passes_
    # Six runs cost as many scans as their longest run, not six times as many.
    assert reads[6] < 2 * reads[1]


def test_duplicate_runs_are_culled_by_their_information_distance(data):
    X, y, _ = data
    Xd = design_matrix(X, True)
    w = np.ones(len(y))
    options = MStepOptions(variance_floor=1e-3)
    settings = EMSettings(options, tol=1e-8)
    good = MixtureParams([0.3, 0.3, 0.4], [[0, 1, 0], [2, 0, 1], [4, -1, 1]], [1, 1, 1])
    # The same start with its labels permuted, slightly moved: the same optimum.
    twin = MixtureParams([0.4, 0.3, 0.3], [[4.01, -1, 1], [0, 1, 0], [2, 0, 1]], [1, 1, 1])

    def pass_many(params):
        return [estep(Xd, y, w, p) for p in params]

    lockstep = run_lockstep([em_steps(good, settings), em_steps(twin, settings)], pass_many,
                        cull=CullRule(after=3, options=options))
    assert len(lockstep.culled) == 1 and lockstep.results[lockstep.culled[0]] is None
    kept = 1 - lockstep.culled[0]
    assert lockstep.results[kept].converged
    assert lockstep.n_passes == len(lockstep.results[kept].history)
    alone = drive(em_steps([good, twin][kept], settings), lambda p: estep(Xd, y, w, p))
    assert alone.params.max_abs_diff(lockstep.results[kept].params) == 0.0
    # Without the options (no metric) or with duplicate=0 both run to the end.
    for rule in (CullRule(after=3), CullRule(after=3, duplicate=0.0, options=options)):
        lockstep = run_lockstep([em_steps(good, settings), em_steps(twin, settings)], pass_many,
                            cull=rule)
        assert lockstep.culled == []
        a, b = lockstep.results
        assert a.params.max_abs_diff(b.params.permute([1, 2, 0])) < 1e-4


def test_hopeless_runs_are_culled_and_the_best_result_is_unchanged(data):
    X, y, _ = data
    Xd = design_matrix(X, True)
    w = np.ones(len(y))
    good = MixtureParams([0.3, 0.3, 0.4], [[0, 1, 0], [2, 0, 1], [4, -1, 1]], [1, 1, 1])
    # Nearly identical components separate slowly: near the one-component fit for long.
    stuck = MixtureParams([0.3, 0.3, 0.4], [[2, 0, 0.5], [2, 1e-3, 0.5], [2, 0, 0.501]],
                          [4, 4, 4])
    settings = EMSettings(MStepOptions(variance_floor=1e-3), tol=1e-8, max_iter=60)

    def pass_many(params):
        return [estep(Xd, y, w, p) for p in params]

    alone = drive(em_steps(good, settings), lambda p: estep(Xd, y, w, p))
    lockstep = run_lockstep([em_steps(good, settings), em_steps(stuck, settings)], pass_many,
                        cull=CullRule(after=5, gap=0.05))
    assert lockstep.culled == [1] and lockstep.results[1] is None
    assert lockstep.results[0].params.max_abs_diff(alone.params) == 0.0
    # Culling is within a group: in its own group the stuck run finishes.
    lockstep = run_lockstep([em_steps(good, settings), em_steps(stuck, settings)], pass_many,
                        groups=["a", "b"], cull=CullRule(after=5, gap=0.05))
    assert lockstep.culled == [] and lockstep.results[1].n_iter == 60


def test_run_callbacks_are_tagged_with_their_run(data):
    X, y, _ = data
    model = MixtureOfLinearRegressions(3, n_init=3, random_state=2, tol=1e-6, init="random")
    check_hyperparameters(model)
    ctx = fitting.profile_pass(model, as_source(X, y, chunk_rows=model.chunk_rows),
                               draw_seed(model.random_state))
    seen = []
    lockstep = run_lockstep([fitting.run_steps(model, ctx, 3, "random", r, callback=seen.append)
                         for r in range(3)], fitting.lockstep_pass(ctx, model.fit_intercept))
    for r, result in enumerate(lockstep.results):
        mine = [(rec["iteration"], rec["loglik"], rec["step"]) for rec in seen if rec["run"] == r]
        assert mine == [(h["iteration"], h["loglik"], h["step"]) for h in result.history]
    assert len(seen) == sum(len(res.history) for res in lockstep.results)
