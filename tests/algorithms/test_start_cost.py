"""What makes the starting values cheap at large n keeps their result: pass 0's key
floor draws the sample a pass without it draws, the culled refinement keeps its
winner's run as it is alone, the jitter follows the data, and a fit runs BLAS on
one thread and gives the caller's setting back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.mixtures import make_mixture
from threadpoolctl import threadpool_info

from streammix import MixtureOfLinearRegressions
from streammix.algorithms.em import EMSettings, run_em
from streammix.algorithms.start import initial
from streammix.algorithms.start.candidates import (
    REFINE_CULL_ITER,
    REFINE_KEEP,
    REFINE_TOL,
    candidate,
    jitter,
)
from streammix.algorithms.start.profile import Profile, ProfileTask, key_floor
from streammix.core.moments import Moments
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep
from streammix.data.arrays import ArraySource
from streammix.estimator import fitting


def _profile(source, task, d):
    return sum((task(source.read(c)) for c in source.plan()), Profile.empty(d, task.size))


def _same_sample(a: Profile, b: Profile) -> None:
    for name in ("keys", "X", "y", "w"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.n_rows, a.n_positive, a.sum_w) == (b.n_rows, b.n_positive, b.sum_w)


@pytest.mark.parametrize("rows", [333, 4096])
def test_the_key_floor_draws_the_sample_of_a_pass_without_it(rows):
    rng = np.random.default_rng(rows)
    n, size = 20_000, 500
    X, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    w = np.ones(n)
    w[5000:6000] = rng.integers(0, 3, size=1000)  # weighted chunks keep their top rows
    source = ArraySource(X, y, w, chunk_rows=rows)
    floor = key_floor(size, n)
    assert -np.inf < floor < 0
    floored = _profile(source, ProfileTask(7, size, floor), 3)
    plain = _profile(source, ProfileTask(7, size), 3)
    assert floored.floored > n // 2 and plain.floored == 0  # most rows were left out
    assert floored.exact(floor) and plain.exact(-np.inf)
    _same_sample(floored, plain)
    np.testing.assert_allclose(floored.moments.m2, plain.moments.m2, rtol=1e-12)


def test_a_floor_that_leaves_too_few_rows_is_found_and_the_pass_taken_again(monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5000, 2)), rng.normal(size=5000)
    source = ArraySource(X, y, chunk_rows=700)
    floor = key_floor(400, 50 * 5000)  # as if the data had 50 times the rows
    assert not _profile(source, ProfileTask(3, 400, floor), 2).exact(floor)
    model = MixtureOfLinearRegressions(2, init_sample_size=400, random_state=0)
    want = fitting.profile_pass(model, source, 3).profile
    monkeypatch.setattr(fitting, "known_rows", lambda source: 50 * 5000)
    got = fitting.profile_pass(model, source, 3).profile
    assert got.floored == 0
    _same_sample(got, want)


def test_no_floor_without_enough_rows_to_save_work():
    assert key_floor(100_000, None) == -np.inf
    assert key_floor(100_000, 200_000) == -np.inf
    q = -np.expm1(key_floor(100_000, 2_000_000))  # share of rows above the floor
    assert q * 2_000_000 == pytest.approx(1.5 * 100_000 + 10 * np.sqrt(100_000))


def _refine_case():
    X, y, _ = make_mixture(4000, [0.3, 0.3, 0.4], [-2.0, 0.0, 2.0],
                           [[1.0, -1.0], [-1.0, 0.5], [0.5, 1.0]], [0.5, 0.7, 0.6], seed=5)
    Xd = design_matrix(X, True)
    options = MStepOptions(variance_floor=1e-6)
    settings = EMSettings(mstep=options, tol=1e-4, max_iter=500)
    rng = np.random.default_rng(1)
    cands = [candidate(name, Xd, y, 3, rng, options)
             for name in ("resid_bins", "ybins", "random", "random", "random")]
    return X, Xd, y, settings, cands


def test_the_culled_refinement_keeps_the_best_survivors_run_as_it_is_alone():
    X, Xd, y, settings, cands = _refine_case()
    w = np.ones_like(y)
    short = dataclasses.replace(settings, tol=REFINE_TOL, on_collapse="drop")

    def alone(cand, n_iter):  # the reference: plain EM, one candidate at a time
        return run_em(lambda prm: estep(Xd, y, w, prm), cand,
                      dataclasses.replace(short, max_iter=n_iter), warn=False)

    early = [alone(c, REFINE_CULL_ITER) for c in cands]
    order = np.argsort([-r.objective for r in early], kind="stable")[:REFINE_KEEP]
    finals = [alone(cands[i], 20) for i in order]
    want = max(finals, key=lambda r: r.objective).params
    for threads in (1, 2, 5):  # the E-steps of a lock-step on threads: the same runs
        got = initial._refined_best(cands, initial._sample_pass(X, y, w, True), 3, settings,
                                    20, REFINE_TOL, threads)
        np.testing.assert_array_equal(got.beta, want.beta)
        np.testing.assert_array_equal(got.sigma2, want.sigma2)
        np.testing.assert_array_equal(got.weights, want.weights)


def test_jitter_draws_follow_the_data_and_have_the_sampling_covariance():
    X, Xd, y, settings, cands = _refine_case()
    params = MixtureParams(np.array([0.5, 0.5]), np.array([[0.0, 1.0, -1.0], [1.0, 0.0, 2.0]]),
                           np.array([1.0, 4.0]))
    a = jitter(params, Xd, np.random.default_rng(3))
    b = jitter(params, Xd * (1 + 1e-15), np.random.default_rng(3))  # rounding-level change
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-9, atol=1e-12)
    draws = np.array([jitter(params, Xd, np.random.default_rng(s)).beta[1] for s in range(3000)])
    n = Xd.shape[0]
    cov = 4.0 * np.linalg.inv(Xd.T @ Xd / n) / (n / 2)  # σ² (XᵀX/n)⁻¹ / (n/m)
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.1, atol=0.05 * np.abs(cov).max())


def test_a_fit_does_not_depend_on_the_threads_of_its_starts():
    X, y, _ = make_mixture(60_000, [0.3, 0.3, 0.4], [-2.0, 0.0, 2.0],
                           [[1.0, -1.0], [-1.0, 0.5], [0.5, 1.0]], [0.5, 0.7, 0.6], seed=8)
    from streammix import InProcessEngine
    from streammix.core import kernel

    fits = [MixtureOfLinearRegressions(3, random_state=1, engine=InProcessEngine(k)).fit(X, y)
            for k in (1, 2)]
    ctx = fitting.profile_pass(fits[1], ArraySource(X, y), 0)
    assert fitting.start_threads(ctx) == (2 if kernel.enabled() else 1)
    np.testing.assert_array_equal(fits[0].params_.beta, fits[1].params_.beta)
    assert fits[0].loglik_ == fits[1].loglik_


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_a_fit_runs_blas_on_one_thread_and_restores_the_callers_setting():
    X, y, _ = make_mixture(3000, [0.5, 0.5], [-2.0, 2.0], [[1.0], [-1.0]], [0.5, 0.5], seed=2)
    before = _blas_threads()
    seen = []
    model = MixtureOfLinearRegressions(2, random_state=0, max_iter=3)
    model.fit(X, y, callback=lambda record: seen.append(_blas_threads()))
    assert seen and all(threads == [1] * len(before) for threads in seen)
    assert _blas_threads() == before


@pytest.mark.parametrize("weighted", [False, True])
def test_moments_without_the_spectral_sums_keep_the_other_sums(weighted):
    rng = np.random.default_rng(4)
    n = 3000
    X = np.asfortranarray(rng.normal(size=(n, 3)) + 5.0)
    y = rng.normal(size=n)
    w = rng.integers(0, 3, size=n).astype(float) if weighted else np.ones(n)
    full = Moments.of(X, y, w, block=1000)
    lean = Moments.of(X, y, w, block=1000, spectral=False)
    for name in ("sy", "mean"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name), err_msg=name)
    np.testing.assert_array_equal(lean.sx[0], full.sx[0])
    np.testing.assert_allclose(lean.m2, full.m2, rtol=1e-13, atol=1e-13 * np.abs(full.m2).max())
    np.testing.assert_allclose(lean.sxx[0], full.sxx[0], rtol=1e-13)
    assert np.isnan(lean.sx[1:]).all() and np.isnan(lean.sxx[1:]).all()
    ref = Moments._direct(X, y, w)  # the sums as written
    np.testing.assert_allclose(lean.sxx[0], ref.sxx[0], rtol=1e-12)
    np.testing.assert_allclose(lean.m2, ref.m2, rtol=1e-10, atol=1e-9)


def test_pass_0_forms_the_spectral_sums_only_for_the_spectral_start():
    X, y, _ = make_mixture(2000, [0.5, 0.5], [-2.0, 2.0], [[1.0], [-1.0]], [0.5, 0.5], seed=2)
    source = ArraySource(X, y)
    auto = fitting.profile_pass(MixtureOfLinearRegressions(2, standardize=True), source,
                                1).profile.moments
    # a fit that neither standardises nor starts spectrally reads no moments: none are formed
    assert fitting.profile_pass(MixtureOfLinearRegressions(2), source, 1).profile.moments is None
    spec = fitting.profile_pass(MixtureOfLinearRegressions(2, init="spectral"), source,
                                1).profile.moments
    assert np.isnan(auto.sxx[1:]).all() and np.isfinite(spec.sxx).all()
    np.testing.assert_allclose(auto.m2, spec.m2, rtol=1e-13)
    model = MixtureOfLinearRegressions(2, init="spectral", random_state=0).fit(X, y)
    assert np.isfinite(model.loglik_)


@pytest.mark.parametrize("m", [1, 2, 3, 5])
@pytest.mark.parametrize("kind", ["continuous", "ties", "few values"])
def test_quantile_bins_are_the_bins_of_the_stable_sort(m, kind):
    from streammix.algorithms.start.candidates import quantile_bins

    rng = np.random.default_rng(m)
    for n in (1, 2, 7, 100, 2001):
        v = {"continuous": rng.normal(size=n), "ties": rng.integers(0, 40, size=n) / 4.0,
             "few values": rng.integers(0, 3, size=n).astype(float)}[kind]
        want = np.empty(n, dtype=np.int64)
        want[np.argsort(v, kind="stable")] = np.minimum(np.arange(n) * m // n, m - 1)
        np.testing.assert_array_equal(quantile_bins(v, m), want)


def test_unit_weights_give_the_weighted_pooled_variance_bit_for_bit():
    from streammix.algorithms.degeneracy import pooled_ols_variance

    X, y, _ = make_mixture(5000, [0.5, 0.5], [-2.0, 2.0], [[1.0], [-1.0]], [0.5, 0.5], seed=3)
    Xd = design_matrix(X, True)
    assert pooled_ols_variance(Xd, y) == pooled_ols_variance(Xd, y, np.ones_like(y))


@pytest.mark.parametrize("kind", ["continuous", "tenths", "tenths then continuous"])
def test_the_recording_step_probe_gives_the_full_answer(kind, monkeypatch):
    from streammix.algorithms import degeneracy

    rng = np.random.default_rng(2)
    n = 5 * degeneracy.STEP_PROBE_ROWS
    y = rng.normal(size=n)
    if kind != "continuous":
        y[: n if kind == "tenths" else n // 2] = np.round(y[: n if kind == "tenths"
                                                            else n // 2], 1)
    got = degeneracy.recording_step(y)
    monkeypatch.setattr(degeneracy, "STEP_PROBE_ROWS", n)  # no probe
    assert got == degeneracy.recording_step(y)
    assert (got == 0.0) == (kind != "tenths")


def test_passes_share_kept_threads_and_a_pass_inside_a_pass_makes_its_own():
    from streammix import InProcessEngine
    from streammix.core import threads
    from streammix.core.reduce import tree_sum

    pool = threads.shared_executor(2)
    assert threads.shared_executor(2) is pool  # kept between passes
    assert pool.submit(threads.shared_executor, 2).result() is None  # not in its own worker
    source = ArraySource(np.arange(40.0)[:, None], np.ones(40), chunk_rows=3)
    engine = InProcessEngine(2)

    class Nested:  # a map function that runs a pass of its own on the same engine
        releases_gil = True

        def __call__(self, chunk):
            inner = engine.map_reduce(source, lambda c: float(c.X.sum()), 0.0)
            return float(chunk.X.sum()) + 0 * inner

    assert engine.map_reduce(source, Nested(), 0.0) == float(np.arange(40.0).sum())

    def fails(chunk):
        if chunk.first_row == 9:
            raise ValueError("bad chunk")
        return 1.0

    fails.releases_gil = True
    with pytest.raises(ValueError, match="bad chunk"):
        engine.map_reduce(source, fails, 0.0)
    assert tree_sum([1.0] * 14, 0.0) == engine.map_reduce(source, lambda c: 1.0, 0.0)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_the_candidates_of_one_sweep_are_those_made_one_after_another(m):
    from streammix.algorithms.start.candidates import (
        candidates,
        from_responsibilities,
        ols,
        quantile_bins,
        soft_labels,
    )

    X, Xd, y, settings, _ = _refine_case()
    Xd, y = Xd[:3001], y[:3001]  # a last block shorter than the others
    methods = ["resid_bins", "ybins", "random", "random", "random"]
    rng = np.random.default_rng(11)
    want = []  # the candidates as they were made: each M-step on its own, then its jitter
    for name in methods:
        if name == "random":
            resp = soft_labels(rng.integers(m, size=y.size), m)
            want.append(from_responsibilities(Xd, y, resp, settings.mstep))
            continue
        v = y if name == "ybins" else y - Xd @ ols(Xd, y, np.ones_like(y))[0]
        params = from_responsibilities(Xd, y, soft_labels(quantile_bins(v, m), m), settings.mstep)
        want.append(jitter(params, Xd, rng))
    got = candidates(methods, Xd, y, m, np.random.default_rng(11), settings.mstep)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        for name in ("weights", "beta", "sigma2"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if m > 1:  # five different starts
        assert len({g.beta.tobytes() for g in got}) == len(got)


def test_statistics_of_several_responsibilities_in_one_sweep_are_each_alone():
    from streammix.core.stats import accumulate_many

    rng = np.random.default_rng(6)
    n, p, m = 7000, 4, 3
    Xd = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y, w = rng.normal(size=n), rng.integers(0, 3, size=n).astype(float)
    beta = rng.normal(size=(m, p))
    resps = [rng.dirichlet(np.ones(m), size=n) for _ in range(4)]
    many = accumulate_many(Xd, y, w, resps, beta)
    for resp, got in zip(resps, many, strict=True):
        alone = accumulate_many(Xd, y, w, [resp], beta)[0]
        for name in ("s0", "s2", "rx", "r0"):
            np.testing.assert_array_equal(getattr(got, name), getattr(alone, name))
        g = resp * w[:, None]
        R = y[:, None] - Xd @ beta.T
        np.testing.assert_allclose(got.s0, g.sum(0), rtol=1e-12)
        np.testing.assert_allclose(got.s2, np.einsum("ij,ik,il->jkl", g, Xd, Xd), rtol=1e-11)
        np.testing.assert_allclose(got.rx, np.einsum("ij,ij,ik->jk", g, R, Xd), rtol=1e-10,
                                   atol=1e-9)
        np.testing.assert_allclose(got.r0, (g * R**2).sum(0), rtol=1e-11)
