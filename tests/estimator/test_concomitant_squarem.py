"""SQUAREM for fits with concomitant variables: same optimum as plain GEM in fewer passes,
monotone accepted points, chunked == in memory."""

from __future__ import annotations

import numpy as np
import pytest

from streammix import MixtureOfLinearRegressions
from streammix.algorithms.concomitant_squarem import from_joint, joint_vector
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n = 3000
    Z = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    G = np.array([[0.0, 0.0, 0.0], [0.3, 1.0, -0.8], [-0.2, -1.2, 1.0]])
    eta = np.column_stack([np.ones(n), Z]) @ G.T
    p = np.exp(eta - eta.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    comp = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1)
    x = rng.uniform(0, 10, n)
    mu = np.column_stack([1 + 2 * x, 8 - x, 3 + 0.5 * x])[np.arange(n), comp]
    y = mu + rng.normal(size=n) * np.array([1.0, 1.5, 0.8])[comp]
    return x[:, None], y, Z


def _fit(data, accelerate, callback=None, **kwargs):
    X, y, Z = data
    model = MixtureOfLinearRegressions(3, random_state=0, tol=1e-11, max_iter=5000,
                                       accelerate=accelerate, **kwargs)
    return model.fit(X, y, concomitant=Z, callback=callback)


def test_squarem_reaches_the_plain_gem_optimum_in_fewer_passes(data):
    plain, fast = _fit(data, None), _fit(data, "squarem")
    assert plain.converged_ and fast.converged_
    assert fast.loglik_ == pytest.approx(plain.loglik_, rel=1e-8)
    for name in ("concomitant_coef_", "coef_", "intercept_", "sigma_", "weights_"):
        np.testing.assert_allclose(getattr(fast, name), getattr(plain, name), atol=1e-5,
                                   err_msg=name)
    assert fast.n_passes_ < plain.n_passes_
    accepted = np.array([r["loglik"] for r in fast.history_ if not r.get("rejected")])
    assert np.all(np.diff(accepted) >= -1e-9 * np.abs(accepted[1:]))
    assert {r["step"] for r in fast.history_} >= {"start", "em", "extrapolated"}


def test_squarem_in_chunks_equals_in_memory(data):
    whole, chunked = _fit(data, "squarem"), _fit(data, "squarem", chunk_rows=257)
    assert chunked.n_passes_ == whole.n_passes_
    assert chunked.loglik_ == pytest.approx(whole.loglik_, rel=1e-10)
    np.testing.assert_allclose(chunked.concomitant_coef_, whole.concomitant_coef_,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(chunked.coef_, whole.coef_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("noise", ["per_component", "shared", "fixed"])
def test_joint_vector_round_trips(noise):
    params = MixtureParams(np.array([0.2, 0.3, 0.5]), np.arange(6.0).reshape(3, 2),
                           np.array([0.5, 0.5, 0.5]) if noise != "per_component"
                           else np.array([0.5, 1.0, 2.0]))
    coef = np.array([[0.0, 0.0], [0.4, -1.0], [2.0, 0.5]])
    options = MStepOptions(noise=noise, fixed_sigma2=params.sigma2 if noise == "fixed" else None)
    back, coef_back = from_joint(joint_vector(params, coef, options), params, coef.shape,
                                 options)
    np.testing.assert_allclose(back.beta, params.beta)
    np.testing.assert_allclose(back.sigma2, params.sigma2)
    np.testing.assert_array_equal(coef_back, coef)


def test_restarts_share_each_scan_and_end_as_each_run_alone(data):
    from types import SimpleNamespace

    from streammix.algorithms.concomitant import (
        ConcomitantTask,
        concomitant_em,
        concomitant_steps,
        initial_gate,
    )
    from streammix.algorithms.concomitant_squarem import (
        concomitant_squarem,
        concomitant_squarem_steps,
    )
    from streammix.algorithms.restarts import StatsBundle, run_lockstep

    X, y, Z = data
    chunk = SimpleNamespace(X=X, y=y, w=np.ones(len(y)), Z=Z, origin="test")
    starts = [MixtureParams(np.full(3, 1 / 3), b, np.full(3, 4.0)) for b in (
        np.array([[0.0, 2.5], [7.0, -0.5], [3.0, 0.0]]),
        np.array([[1.0, 1.0], [5.0, 0.0], [2.0, 1.5]]))]
    options = MStepOptions()

    def pass_fn(params, coef):
        return ConcomitantTask(params, coef, True)(chunk)

    def pass_many(points):
        return StatsBundle(pass_fn(p, c) for p, c in points)

    for alone, steps in ((concomitant_em, concomitant_steps),
                         (concomitant_squarem, concomitant_squarem_steps)):
        kw = dict(tol=1e-8, max_iter=400)
        runs = [steps(p, initial_gate(p, 3), options, **kw) for p in starts]
        together = run_lockstep(runs, pass_many)
        singles = [alone(pass_fn, p, initial_gate(p, 3), options, **kw) for p in starts]
        assert together.n_passes == max(len(r.history) for r in singles)
        for a, b in zip(together.results, singles, strict=True):
            assert a.loglik == b.loglik and a.history == b.history
            np.testing.assert_array_equal(a.coef, b.coef)
            np.testing.assert_array_equal(a.params.beta, b.params.beta)


def test_a_gated_fit_with_restarts_tags_each_record_with_its_run(data):
    records: list = []
    one = _fit(data, "squarem")
    three = _fit(data, "squarem", n_init=3, callback=records.append)
    assert {r["run"] for r in records} == {0, 1, 2}
    assert three.loglik_ >= one.loglik_ - 1e-9 * abs(one.loglik_)  # run 0 is among them
    assert three.n_passes_ - 1 == max(sum(r["run"] == k for r in records) for k in range(3))
