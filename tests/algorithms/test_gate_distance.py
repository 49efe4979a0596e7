"""Culling of gated restarts: the duplicate rule's distance includes the gate.

Two runs with the same lines but different gates are different models: the
regression-only distance between them is zero (the old rule would have
merged them), the gated one is large.  A relabelled copy of a run is at
distance zero.  The gate's quadratic form is checked against a Kronecker
product built in numpy, and a gated fit with culling ends at the optimum of
one without, in fewer passes.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from support import FIXTURES

from streammix import MixtureOfLinearRegressions
from streammix.algorithms.concomitant import (
    ConcomitantTask,
    concomitant_steps,
    permute_gate,
)
from streammix.algorithms.gate_distance import gate_quadratic, gated_distance, gated_size
from streammix.algorithms.restarts import (
    CullRule,
    StatsBundle,
    information_distance,
    run_lockstep,
)
from streammix.core.chunk import Chunk
from streammix.core.mstep import MStepOptions

DATA = np.genfromtxt(FIXTURES / "r" / "concomitant.csv", delimiter=",", names=True)
X, Y = DATA["x"][:, None], DATA["y"]
Z = np.column_stack([DATA["z1"], DATA["z2"]])
CHUNK = Chunk(X, Y, np.ones(Y.size), "array", 0, Z=Z)
OPTIONS = MStepOptions()


@pytest.fixture(scope="module")
def fitted():
    model = MixtureOfLinearRegressions(3, random_state=0, tol=1e-8, max_iter=2000)
    model.fit(X, Y, concomitant=Z)
    return model.params_, model.concomitant_coef_


def _stats(point):
    return ConcomitantTask(point[0], point[1], True)(CHUNK)


def test_a_relabelled_run_is_at_distance_zero(fitted):
    params, coef = fitted
    order = [2, 0, 1]
    moved = (params.permute(order), permute_gate(coef, order))
    assert gated_distance(moved, fitted, _stats(fitted), OPTIONS) < 1e-9
    assert gated_size(fitted, OPTIONS) == 3 * 2 + 3 + 2 * 3  # β, log σ², gate


def test_the_same_lines_with_another_gate_are_not_a_duplicate(fitted):
    params, coef = fitted
    other = coef.copy()
    other[1:, 1:] *= -1.0  # the gate's slopes reversed: another model
    stats = _stats(fitted)
    assert information_distance(params, params, stats.stats, OPTIONS) == 0.0
    far = gated_distance((params, other), fitted, stats, OPTIONS)
    assert far > 10 * gated_size(fitted, OPTIONS)


def test_gate_quadratic_is_the_bohning_form():
    rng = np.random.default_rng(0)
    m, q1 = 4, 3
    delta = rng.normal(size=(m - 1, q1))
    Zt = rng.normal(size=(50, q1))
    zz = Zt.T @ Zt
    A = 0.5 * (np.eye(m - 1) - np.ones((m - 1, m - 1)) / m)
    v = delta.ravel()  # row-major: the rows γ_j one after the other
    assert gate_quadratic(delta, zz) == pytest.approx(0.5 * v @ np.kron(A, zz) @ v, rel=1e-12)


def test_runs_with_the_same_lines_but_other_gates_are_not_culled_as_duplicates(fitted):
    """Two runs start from the same lines and opposite gates; the rule is checked after
    their first pass.  With the gate in the distance neither is culled; with the
    regression alone the second would be.  (Run longer, the second run's gate comes
    back to the leader's, the lines being the optimum's: then it is culled, rightly.)"""
    params, coef = fitted
    other = coef.copy()
    other[1:, 1:] *= -1.0

    def runs():
        return [concomitant_steps(params, g, OPTIONS, tol=1e-9, max_iter=1)
                for g in (coef, other)]

    def pass_many(points):
        return StatsBundle(_stats(point) for point in points)

    never_hopeless = dict(after=1, gap=1e9, options=OPTIONS)
    gated = run_lockstep(runs(), pass_many, cull=CullRule(
        **never_hopeless, distance=gated_distance, size=gated_size))
    assert gated.culled == [] and all(r is not None for r in gated.results)

    def lines_only(a, b, stats_b, options):
        return information_distance(a[0], b[0], stats_b.stats, options)

    blind = run_lockstep(runs(), pass_many, cull=CullRule(
        **never_hopeless, distance=lines_only, size=gated_size))
    assert blind.culled == [1]


def test_a_gated_fit_with_culling_ends_at_the_same_optimum_in_fewer_passes(caplog):
    kw = dict(n_init=4, random_state=1, tol=1e-8, max_iter=2000)
    with caplog.at_level(logging.INFO, logger="streammix.algorithms.restarts"):
        culled = MixtureOfLinearRegressions(3, **kw).fit(X, Y, concomitant=Z)
    assert "culled" in caplog.text
    whole = MixtureOfLinearRegressions(3, cull_restarts=False, **kw).fit(X, Y, concomitant=Z)
    assert culled.loglik_ == pytest.approx(whole.loglik_, rel=1e-9)
    np.testing.assert_allclose(culled.concomitant_coef_, whole.concomitant_coef_, atol=1e-4)
    assert culled.n_passes_ < whole.n_passes_
