"""The collapse rule: only degenerate components collapse (algorithms/degeneracy.py).

A small but identified component survives at default settings; a truly
degenerate one (a few repeated points) is re-seeded, then dropped, with its
reason and numbers; and the rule flags exactly the R reference solutions that
the real-data fixtures flag (the same rule, recomputed from streammix's own
E-step statistics).
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from streammix import (
    ComponentCollapseWarning,
    MixtureOfLinearRegressions,
    MixtureParams,
    SpuriousOptimumWarning,
)
from streammix.algorithms.degeneracy import (
    DegeneracyRule,
    best_nondegenerate,
    find_degenerate,
    rule_for_data,
)
from streammix.core.stats import design_matrix, estep

FIXTURES = Path(__file__).parents[1] / "fixtures" / "real_data"


def _two_lines_28(seed=0):
    """28 rows, one feature, two components of 14 rows: 5 (p + 1) = 15 > 14."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, 28)
    z = np.arange(28) % 2
    y = np.where(z == 0, 1 + 2 * x, 12 - x) + rng.normal(scale=0.7, size=28)
    return x[:, None], y


@pytest.mark.parametrize("accelerate", ["squarem", None])
def test_small_identified_components_survive_at_default_settings(accelerate):
    X, y = _two_lines_28()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ComponentCollapseWarning)
        model = MixtureOfLinearRegressions(2, random_state=0, accelerate=accelerate).fit(X, y)
    assert model.n_components_ == 2
    assert all("event" not in h for h in model.history_)
    np.testing.assert_allclose(np.sort(model.coef_[:, 0]), [-1, 2], atol=0.3)
    np.testing.assert_allclose(model.weights_, [0.5, 0.5], atol=0.05)


def test_co2_k2_keeps_both_components():
    # The case: 28 rows of mixtools::CO2data, k = 2, default settings.
    X, y = _csv("co2")
    entry = _entries()["co2/k=2/per_component"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ComponentCollapseWarning)
        model = MixtureOfLinearRegressions(2, random_state=0).fit(X, y)
    assert model.n_components_ == 2
    assert model.loglik_ > entry["ols_loglik"]


def _repeated_points():
    rng = np.random.default_rng(5)
    x = rng.uniform(-3, 3, 200)
    y = np.where(np.arange(200) % 2 == 0, 3 + x, -3 - x) + rng.normal(scale=0.5, size=200)
    X = np.r_[x, np.full(4, 0.5)][:, None]  # 4 copies of one point, far off both lines
    y = np.r_[y, np.full(4, 25.0)]
    start = MixtureParams([0.49, 0.49, 0.02], [[3, 1], [-3, -1], [25, 0]], [0.25, 0.25, 0.01])
    return X, y, start


@pytest.mark.parametrize("accelerate", ["squarem", None])
def test_repeated_points_are_reseeded_then_dropped(accelerate):
    X, y, start = _repeated_points()
    model = MixtureOfLinearRegressions(3, init=start, accelerate=accelerate, max_reseeds=3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(X, y)
    # the spike on the 4 rows had the higher likelihood: named, passed over
    spurious = [r for r in record if r.category is SpuriousOptimumWarning]
    assert len(spurious) == 1 and model.passed_over_["loglik"] > model.loglik_
    messages = [str(r.message) for r in record if r.category is ComponentCollapseWarning]
    reseeds = [m for m in messages if "re-seeded" in m]
    drops = [m for m in messages if "dropped" in m]
    assert len(reseeds) == 3 and len(drops) == 1, messages
    assert "re-seed 1 of 3" in reseeds[0] and "re-seed 3 of 3" in reseeds[-1]
    # the first diagnosis: 4 identical rows, a design of rank 1 (or a spike)
    assert "component 2: weighted design of rank 1 < 2 (4 effective rows)" in reseeds[0]
    assert model.n_components_ == 2
    events = [h for h in model.history_ if "event" in h]
    assert [h["event"] for h in events] == ["reseeded [2]"] * 3 + ["dropped [2]"]
    assert all(r["component"] == 2 and r["n_eff"] > 0 for h in events for r in h["collapse"])
    assert events[0]["collapse"][0]["reason"] == "rank-deficient design"


def test_policy_error_and_drop_name_the_reason():
    X, y, start = _repeated_points()
    with pytest.raises(Exception, match=r"collapsed at iteration 0 \(component 2: weighted"):
        MixtureOfLinearRegressions(3, init=start, on_collapse="error").fit(X, y)
    with pytest.warns(ComponentCollapseWarning, match="dropped collapsed component"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpuriousOptimumWarning)
            model = MixtureOfLinearRegressions(3, init=start, on_collapse="drop").fit(X, y)
    assert model.n_components_ == 2


def test_a_fit_never_drops_all_components():
    X, y, _ = _repeated_points()
    Xd = design_matrix(X, True)
    params = MixtureParams([0.5, 0.5], [[25, 0], [25, 0.01]], [1e-4, 1e-4])
    stats = estep(Xd, y, np.ones_like(y), params)
    rule = DegeneracyRule(min_eff_rows=1000.0)
    assert [d.component for d in find_degenerate(params, stats, rule)] == [0, 1]
    from streammix.algorithms.em import EMSettings, MStepOptions, run_em
    settings = EMSettings(MStepOptions(variance_floor=1e-4), min_eff_rows=1000.0,
                          on_collapse="drop")
    with pytest.warns(ComponentCollapseWarning):
        res = run_em(lambda p: estep(Xd, y, np.ones_like(y), p), params, settings)
    assert res.params.n_components == 1


def test_thresholds_are_options():
    X, y = _two_lines_28()
    # the old rule, 5 (p + 1) effective rows, as an explicit option, drops a component
    with pytest.warns(ComponentCollapseWarning, match=r"effective rows < 15 \(min_eff_rows\)"):
        model = MixtureOfLinearRegressions(2, random_state=0, min_eff_rows=15,
                                           on_collapse="drop").fit(X, y)
    assert model.n_components_ == 1
    with pytest.raises(ValueError, match="min_sigma_ratio"):
        MixtureOfLinearRegressions(2, min_sigma_ratio=-1).fit(X, y)
    with pytest.raises(ValueError, match="max_reseeds"):
        MixtureOfLinearRegressions(2, max_reseeds=1.5).fit(X, y)


# ------------------------------------------------------------ real-data fixtures
def _entries():
    results = json.loads((FIXTURES / "r_results.json").read_text())
    return {k: v for k, v in results.items() if k != "_meta"}


def _csv(name):
    cases = json.loads((FIXTURES / "cases.json").read_text())
    with open(FIXTURES / cases[name]["csv"], newline="") as handle:
        rows = list(csv.reader(handle))
    values = np.array(rows[1:], dtype=float)
    return values[:, 1:], values[:, 0]


def _r_solutions(entry):
    summary = entry["summary"]
    for which in ("polished_ml", "best_nondegenerate", "best_degenerate"):
        sol = summary.get(which)
        if sol is not None and "components" in sol:
            yield which, sol


def _as_params(sol):
    comps = sol["components"]
    return MixtureParams([c["prior"] for c in comps], [c["coef"] for c in comps],
                         [c["sigma"] ** 2 for c in comps])


@pytest.mark.parametrize("key", sorted(_entries()))
def test_rule_flags_the_r_solutions_the_fixtures_flag(key):
    entry = _entries()[key]
    X, y = _csv(entry["dataset"])
    Xd = design_matrix(X, True)
    rule = rule_for_data(Xd, y, entry["noise"])
    assert np.sqrt(rule.pooled_sigma2) == pytest.approx(entry["ols_sigma"], rel=1e-10)
    for which, sol in _r_solutions(entry):
        params = _as_params(sol)
        stats = estep(Xd, y, np.ones_like(y), params)
        found = find_degenerate(params, stats, DegeneracyRule(
            pooled_sigma2=rule.pooled_sigma2, spikes=rule.spikes))
        assert [d.component for d in found] == sol["degenerate_components"], (which, found)
        for d in found:
            comp = sol["components"][d.component]
            assert d.n_eff == pytest.approx(comp["n_eff"], rel=1e-6)
            assert d.sigma_ratio == pytest.approx(comp["sigma_ratio"], rel=1e-9)
    summary = entry["summary"]
    if summary["higher_degenerate_exists"]:
        assert summary["best_degenerate"]["degenerate"]


def test_restarts_keep_the_best_nondegenerate_optimum():
    # nox k = 3: mixtools' best optimum is a spike of 4.9 rows above the
    # non-degenerate one; among the two as restarts, the non-degenerate one is kept.
    entry = _entries()["nox/k=3/per_component"]
    X, y = _csv("nox")
    Xd = design_matrix(X, True)
    rule = rule_for_data(Xd, y)
    summary = entry["summary"]
    results = []
    for sol in (summary["best_degenerate"], summary["polished_ml"]):
        params = _as_params(sol)
        stats = estep(Xd, y, np.ones_like(y), params)
        results.append(_Result(params, stats))
    best, passed = best_nondegenerate(results, rule, 3)
    assert best is results[1]
    assert passed["loglik"] == pytest.approx(summary["best_degenerate"]["loglik"], rel=1e-10)
    assert passed["run"] == 0 and "spike" in passed["reasons"][0]
    assert SpuriousOptimumWarning.__mro__[1] is UserWarning


class _Result:
    def __init__(self, params, stats):
        self.params, self.stats = params, stats
        self.loglik = self.objective = stats.loglik
        self.n_iter = 0
