"""SQUAREM: never worse than plain EM, same optimum as R, and fewer passes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from support.mixtures import make_mixture
from support.r_reference import CASES, REFERENCE, load_case
from support.sources import CountingSource

from streammix import ConvergenceWarning, MixtureOfLinearRegressions
from streammix.algorithms.em import EMSettings, run_em
from streammix.algorithms.squarem import (
    SquaremOptions,
    em_step_size,
    from_unconstrained,
    run_squarem,
    to_unconstrained,
)
from streammix.algorithms.squarem import _gradient as squarem_gradient
from streammix.core.mstep import MStepOptions, log_prior
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep
from streammix.data.arrays import ArraySource


@pytest.fixture(scope="module")
def overlapping():
    """Three overlapping components: plain EM needs hundreds of passes."""
    X, y, _ = make_mixture(4000, [0.3, 0.3, 0.4], [0, 1, 2], [[1, 0], [0, 1], [1, 1]],
                           [1, 1, 1], seed=11)
    Xd = design_matrix(X, True)
    return Xd, y, np.ones(len(y))


def _counting_pass(Xd, y, w):
    calls = []

    def pass_fn(params):
        calls.append(params)
        return estep(Xd, y, w, params)

    return pass_fn, calls


def _random_start(rng, m, p):
    weights = rng.dirichlet(np.full(m, 5.0))
    return MixtureParams(weights, rng.normal(scale=1.5, size=(m, p)), rng.uniform(1, 4, m))


OPTION_SETS = {
    "ml": MStepOptions(variance_floor=1e-3),
    "shared": MStepOptions(noise="shared", variance_floor=1e-3),
    "fixed": MStepOptions(noise="fixed", fixed_sigma2=np.ones(3)),
    "map": MStepOptions(variance_floor=1e-3, ridge=2.0, prior_dof=3.0, prior_scale=0.5,
                        dirichlet_alpha=2.0),
}


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_never_ends_below_plain_em_from_the_same_start(overlapping, name):
    Xd, y, w = overlapping
    settings = EMSettings(OPTION_SETS[name], tol=1e-4, max_iter=5000)
    rng = np.random.default_rng(42)
    em_passes, sq_passes = 0, 0
    for _ in range(4):
        start = _random_start(rng, 3, Xd.shape[1])
        pass_fn, calls = _counting_pass(Xd, y, w)
        em = run_em(pass_fn, start, settings)
        em_passes += len(calls)
        pass_fn, calls = _counting_pass(Xd, y, w)
        sq = run_squarem(pass_fn, start, settings)
        sq_passes += len(calls)
        assert em.converged and sq.converged
        assert sq.params.n_components == em.params.n_components == 3
        # Same start, same tolerance: SQUAREM is at least as high (within tol).
        assert sq.objective >= em.objective - settings.tol
        # The returned loglik belongs to the returned parameters.
        again = estep(Xd, y, w, sq.params)
        assert sq.loglik == again.loglik
        assert sq.objective == pytest.approx(again.loglik + log_prior(sq.params, sq.settings.mstep),
                                             abs=1e-9)
    assert sq_passes < 0.5 * em_passes


def test_pass_counting_and_cycle_structure(overlapping):
    Xd, y, w = overlapping
    pass_fn, calls = _counting_pass(Xd, y, w)
    start = _random_start(np.random.default_rng(3), 3, Xd.shape[1])
    res = run_squarem(pass_fn, start, EMSettings(MStepOptions(variance_floor=1e-3), tol=1e-6))
    # One history record per pass, n_iter = passes after the first.
    assert len(calls) == len(res.history) == res.n_iter + 1
    assert [h["iteration"] for h in res.history] == list(range(len(calls)))
    steps = [h["step"] for h in res.history]
    assert steps[0] == "start"
    # An extrapolated pass is followed by its stabilised point (accepted) or
    # by θ2 (rejected: plain EM pass); a cycle is at most 3 passes.
    for a, b in zip(steps, steps[1:], strict=False):
        if a == "extrapolated":
            assert b in ("stabilised", "em")
    assert steps.count("extrapolated") >= 3
    alphas = [h["alpha"] for h in res.history if "alpha" in h]
    assert max(alphas) > 2.0  # step_max grew beyond its start of 1
    # Every non-extrapolated point at the start of a cycle lies on the EM ascent:
    # with the safeguard, a stabilised point is no lower than the cycle's start - δ.
    obj = [h["objective"] for h in res.history if h["step"] != "extrapolated"]
    assert min(np.diff(obj)) > -1e-3
    # The passes evaluated exactly the recorded parameter sets.
    assert any(c is res.params for c in calls)


def test_zero_slack_is_monotone(overlapping):
    Xd, y, w = overlapping
    pass_fn, _ = _counting_pass(Xd, y, w)
    start = _random_start(np.random.default_rng(5), 3, Xd.shape[1])
    res = run_squarem(pass_fn, start, EMSettings(MStepOptions(variance_floor=1e-3), tol=1e-6),
                      SquaremOptions(slack=0.0))
    obj = np.array([h["objective"] for h in res.history if h["step"] != "extrapolated"])
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[1:]))
    accepted = [h for h in res.history if h["step"] == "stabilised"]
    assert accepted


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_gradient_is_the_derivative_of_the_objective(overlapping, name):
    """The Fisher-identity gradient against central differences.

    See the mathematics page (docs/mathematics.rst), §1.7.
    """
    Xd, y, w = overlapping
    options = OPTION_SETS[name]
    params = _random_start(np.random.default_rng(9), 3, Xd.shape[1])
    if name == "shared":
        params = MixtureParams(params.weights, params.beta, np.full(3, 2.0))
    if name == "fixed":
        params = MixtureParams(params.weights, params.beta, np.ones(3))
    u = to_unconstrained(params, options)
    assert from_unconstrained(u, params, options).max_abs_diff(params) < 1e-12

    def objective(v):
        prm = from_unconstrained(v, params, options)
        return estep(Xd, y, w, prm).loglik + log_prior(prm, options)

    grad = squarem_gradient(estep(Xd, y, w, params), params, options)
    h = 1e-5
    numeric = np.array([(objective(u + h * e) - objective(u - h * e)) / (2 * h)
                        for e in np.eye(u.size)])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-4)


def test_step_size_approximates_the_gain_of_an_em_step(overlapping):
    Xd, y, w = overlapping
    options = MStepOptions(variance_floor=1e-3)
    pass_fn, _ = _counting_pass(Xd, y, w)
    start = _random_start(np.random.default_rng(1), 3, Xd.shape[1])
    near = run_em(pass_fn, start, EMSettings(options, tol=1e-2)).params
    from streammix.core.mstep import mstep
    stats = estep(Xd, y, w, near)
    new, _ = mstep(stats, near, options)
    quad, gain, _ = em_step_size(stats, near, new, options)
    actual = estep(Xd, y, w, new).loglik - stats.loglik
    assert 0 < actual
    # Second order: Δℓ = gᵀr − ½rᵀ(I_c − I_mis)r with gᵀr = rᵀI_c r, so
    # ½rᵀI_c r ≤ Δℓ ≤ gᵀr.
    assert gain == pytest.approx(2 * quad, rel=0.02)
    assert 0.95 * quad <= actual <= 1.05 * gain


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_optimum_as_r_and_plain_em(name):
    ref = REFERENCE[name]
    target = ref.get("polished", ref)
    X, y = load_case(name)
    kw = dict(n_init=5, random_state=0, tol=1e-11, max_iter=5000, **CASES[name])
    plain = MixtureOfLinearRegressions(ref["k"], accelerate=None, **kw).fit(X, y)
    fast = MixtureOfLinearRegressions(ref["k"], accelerate="squarem", **kw).fit(X, y)
    assert fast.converged_
    assert fast.loglik_ == pytest.approx(target["loglik"], rel=1e-9)
    assert fast.loglik_ >= plain.loglik_ - 1e-9
    assert fast.params_.max_abs_diff(plain.params_) < 1e-5
    order = np.argsort(fast.intercept_)
    for j, comp in zip(order, target["components"], strict=False):
        np.testing.assert_allclose(fast.weights_[j], comp["prior"], atol=1e-4)
        np.testing.assert_allclose(
            np.r_[fast.intercept_[j], fast.coef_[j]], comp["coef"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fast.sigma_[j], comp["sigma"], rtol=1e-4)
    assert fast.n_passes_ < plain.n_passes_


def test_estimator_counts_its_passes_and_squarem_needs_a_third_of_them():
    X, y, _ = make_mixture(6000, [0.3, 0.3, 0.4], [0, 1, 2], [[1, 0], [0, 1], [1, 1]],
                           [1, 1, 1], seed=11)
    counts = {}
    fits = {}
    for acc in (None, "squarem"):
        source = CountingSource(ArraySource(X, y, chunk_rows=1000))
        model = MixtureOfLinearRegressions(3, accelerate=acc, random_state=0, tol=1e-6,
                                           max_iter=5000, init="random")
        fits[acc] = model.fit(source)
        reads = set(source.reads.values())
        assert len(source.reads) == 6 and len(reads) == 1  # every chunk read equally often
        counts[acc] = reads.pop()
        # pass 0 (profile) plus one read per EM/SQUAREM pass
        assert counts[acc] == model.n_passes_ == model.n_iter_ + 2
    assert counts["squarem"] <= counts[None] / 3
    assert fits["squarem"].loglik_ >= fits[None].loglik_ - 1e-6


def test_squarem_max_iter_warns_and_keeps_the_best_evaluated_point(overlapping):
    Xd, y, w = overlapping
    pass_fn, _ = _counting_pass(Xd, y, w)
    start = _random_start(np.random.default_rng(2), 3, Xd.shape[1])
    with pytest.warns(ConvergenceWarning, match="did not converge in 7 iterations"):
        res = run_squarem(pass_fn, start, EMSettings(MStepOptions(variance_floor=1e-3),
                                                     tol=1e-9, max_iter=7))
    assert len(res.history) == 8 and not res.converged
    assert res.objective == max(h["objective"] for h in res.history)
    assert estep(Xd, y, w, res.params).loglik == res.loglik


def test_squarem_drops_a_collapsing_component():
    X, y, _ = make_mixture(2000, [0.5, 0.5], [-10, 10], [[1], [-1]], [0.5, 0.5], seed=1)
    Xd = design_matrix(X, True)
    w = np.ones(len(y))
    start = MixtureParams([0.499, 0.499, 0.002], [[-10, 1], [10, -1], [40, 0]],
                          [0.25, 0.25, 0.25])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = run_squarem(lambda p: estep(Xd, y, w, p), start,
                          EMSettings(MStepOptions(variance_floor=1e-4), tol=1e-8))
    assert res.converged and res.params.n_components == 2
    assert any("dropped" in h.get("event", "") for h in res.history)
    assert sorted(np.round(res.params.beta[:, 0])) == [-10, 10]


def test_max_iter_zero_is_one_pass_at_the_start():
    X, y, _ = make_mixture(2000, [0.5, 0.5], [-10, 10], [[1], [-1]], [0.5, 0.5], seed=1)
    Xd = design_matrix(X, True)
    w = np.ones(len(y))
    start = MixtureParams([0.499, 0.499, 0.002], [[-10, 1], [10, -1], [40, 0]],
                          [0.25, 0.25, 0.25])  # component 2 would collapse
    pass_fn, calls = _counting_pass(Xd, y, w)
    res = run_squarem(pass_fn, start, EMSettings(MStepOptions(), max_iter=0), warn=False)
    assert len(calls) == 1 and res.n_iter == 0 and res.params is start
    assert res.loglik == estep(Xd, y, w, start).loglik


def test_callback_sees_every_pass(overlapping):
    Xd, y, w = overlapping
    seen = []
    start = _random_start(np.random.default_rng(4), 3, Xd.shape[1])
    res = run_squarem(lambda p: estep(Xd, y, w, p), start,
                      EMSettings(MStepOptions(variance_floor=1e-3), tol=1e-4),
                      callback=seen.append)
    assert [r["iteration"] for r in seen] == list(range(len(res.history)))
    assert [r["step"] for r in seen] == [h["step"] for h in res.history]
    plain = []
    em = run_em(lambda p: estep(Xd, y, w, p), start,
                EMSettings(MStepOptions(variance_floor=1e-3), tol=1e-4), callback=plain.append)
    assert plain == em.history
