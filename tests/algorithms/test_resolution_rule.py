"""The resolution rule of the choice among runs (mathematics page, §1.9): y recorded
to a step δ cannot support a per-component σ below δ/√12 (Sheppard's rounding sd)."""

from __future__ import annotations

import argparse
import csv
import warnings

import numpy as np
import pytest
from support import FIXTURES

from streammix import MixtureOfLinearRegressions, MixtureParams, SpuriousOptimumWarning
from streammix.algorithms.degeneracy import DegeneracyRule, find_degenerate, recording_step
from streammix.cli.fit import _resolution
from streammix.core.stats import design_matrix, estep


def test_recording_step_finds_the_grid_of_rounded_data():
    rng = np.random.default_rng(0)
    tenths = np.round(rng.normal(3, 1, 200), 1)
    assert recording_step(tenths) == pytest.approx(0.1, rel=1e-9)
    assert recording_step(7 + 0.5 * rng.integers(0, 40, 100)) == pytest.approx(0.5, rel=1e-9)
    # gaps of 0.3 and 0.2 only: the grid is their common divisor 0.1
    assert recording_step(np.cumsum(np.tile([0.3, 0.2], 20))) == pytest.approx(0.1, rel=1e-9)
    mixed = np.r_[tenths, 0.05 + np.round(rng.normal(3, 1, 50), 1)]
    assert recording_step(mixed) == pytest.approx(0.05, rel=1e-9)


def test_recording_step_is_zero_for_continuous_or_too_few_values():
    assert recording_step(np.random.default_rng(1).normal(size=500)) == 0.0
    assert recording_step(np.array([1.0, 2.0])) == 0.0
    assert recording_step(np.array([1.0, 1.0, 1.0, np.nan])) == 0.0


def _eruptions():
    with open(FIXTURES / "real_data" / "faithful.csv", newline="") as handle:
        return np.array(list(csv.reader(handle))[1:], dtype=float)[:, 0]


def test_recording_step_finds_a_grid_printed_to_fewer_decimals():
    # faithful's eruption times are whole seconds written in minutes to 3 decimals
    # (3.333 = 200 s); 3.966, 4.366 and 4.716 are truncated, not rounded
    eruptions = _eruptions()
    assert recording_step(eruptions) == pytest.approx(1 / 60, rel=1e-9)
    assert recording_step(eruptions[:60]) == pytest.approx(1 / 60, rel=1e-9)
    # the grid scales with y: tenths of a minute, and standardised values
    assert recording_step(10 * eruptions) == pytest.approx(1 / 6, rel=1e-9)
    z = (eruptions - eruptions.mean()) / eruptions.std()
    assert recording_step(z) == pytest.approx(1 / 60 / eruptions.std(), rel=1e-9)
    # a plain 3-decimal column keeps its unit; continuous data has none
    rng = np.random.default_rng(3)
    assert recording_step(np.round(rng.normal(3, 1, 300), 3)) == pytest.approx(1e-3, rel=1e-9)
    assert recording_step(np.round(rng.normal(3, 1, 20), 3)) == pytest.approx(1e-3, rel=1e-9)
    assert recording_step(rng.normal(3, 1, 300)) == 0.0
    # whole seconds of 1/60 min rounded to 2 decimals are seen as hundredths only
    assert recording_step(np.round(eruptions, 2)) == pytest.approx(0.01, rel=1e-9)


def test_a_coarser_grid_needs_evidence_from_enough_distinct_values():
    sixtieths = np.round(np.arange(3, 10) * 17 / 60, 3)  # 7 values: (2u/δ)^7 > 1e-9
    assert recording_step(sixtieths) == pytest.approx(1e-3, rel=1e-9)
    many = np.round(np.arange(3, 40) * 17 / 60, 3)
    assert recording_step(many) == pytest.approx(1 / 60, rel=1e-9)


def _recording_step_before(y, rtol=1e-9):
    """recording_step as it was before its early exit for continuous data (verbatim)."""
    v = np.unique(np.asarray(y, dtype=float))
    v = v[np.isfinite(v)]
    if v.size < 3:
        return 0.0
    tol = rtol * max(float(np.abs(v).max()), 1e-300)
    spread = float(v[-1] - v[0])
    step = float(np.diff(v).min())
    for gap in np.unique(np.diff(v)):
        while step > 1e-7 * spread:
            rem = float(gap) % step
            if min(rem, step - rem) <= tol * (1 + gap / step):
                break
            gap, step = step, rem if rem > tol else step - rem
        if step <= 1e-7 * spread:
            return 0.0
    return step


def test_recording_step_gives_what_it_gave_before_its_early_exit():
    # the early exit (smallest gap already below 1e-7 of the range) must not change δ:
    # continuous data, grids, a grid beside one near-duplicate value, sparse wide data
    # (none has a coarser grid printed to its unit: faithful's is tested above)
    rng = np.random.default_rng(5)
    tenths = np.round(rng.normal(3, 1, 300), 1)
    cases = [rng.normal(size=n) for n in (3, 50, 5000)]
    cases += [tenths, np.r_[tenths, tenths[0] + 1e-9], np.r_[tenths, tenths[0] + 1e-6],
              1e6 + 0.25 * rng.integers(0, 1000, 400), np.array([0.0, 1e-8, 1.0, 2.0])]
    walk = np.cumsum(rng.uniform(0.5, 1.5, 40))
    cases += [np.round(rng.standard_cauchy(2000), 3)]
    for y in cases:
        assert recording_step(y) == _recording_step_before(y)
    # continuous: the pairwise search alone found a "step" of 9.8e-5, which the
    # check on every value now refuses
    assert _recording_step_before(walk) == pytest.approx(9.84e-5, rel=1e-3)
    assert recording_step(walk) == 0.0


def _two_lines():
    # 40 rows around y = 1 + x, and 20 rows of x in tenths exactly on y = 4 - x
    rng = np.random.default_rng(2)
    x = np.r_[rng.uniform(0, 5, 40), np.round(rng.uniform(0, 3, 20), 1)]
    y = np.round(np.r_[1 + x[:40] + rng.normal(0, 0.5, 40), 4 - x[40:]], 1)
    Xd = design_matrix(x[:, None], True)
    params = MixtureParams(np.array([2 / 3, 1 / 3]), np.array([[1.0, 1.0], [4.0, -1.0]]),
                           np.array([0.25, 0.01**2]))
    return Xd, y, params, estep(Xd, y, np.ones(60), params)


def test_a_sigma_below_the_resolution_is_degenerate_in_the_choice_rule_only():
    Xd, y, params, stats = _two_lines()
    rule = DegeneracyRule(pooled_sigma2=float(np.var(y)), min_sigma_ratio=0.0)
    assert find_degenerate(params, stats, rule) == []  # the rule during EM: no resolution
    choice = DegeneracyRule(pooled_sigma2=float(np.var(y)), min_sigma_ratio=0.0,
                            resolution_sigma2=recording_step(y) ** 2 / 12)
    found = find_degenerate(params, stats, choice)
    assert [d.component for d in found] == [1]
    assert found[0].reason == "below the resolution of y"
    assert "σ = 0.01 below the resolution of y, δ/√12 = 0.0289" in found[0].message
    shared = DegeneracyRule(pooled_sigma2=float(np.var(y)), min_sigma_ratio=0.0, spikes=False,
                            resolution_sigma2=recording_step(y) ** 2 / 12)
    assert find_degenerate(params, stats, shared) == []


def _iris():
    with open(FIXTURES / "real_data" / "iris.csv", newline="") as handle:
        values = np.array(list(csv.reader(handle))[1:], dtype=float)
    return values[:, 1:], values[:, 0]  # petal width (tenths of a cm) on petal length


def test_iris_k3_passes_over_the_grid_line_spike_and_says_so():
    # Petal widths are recorded in tenths: 15.5 rows lie on one line of grid points,
    # σ = 0.0039 < 0.1/√12, log-likelihood 65.61; R's best non-degenerate optimum is 56.0058.
    X, y = _iris()
    with pytest.warns(SpuriousOptimumWarning, match="a spurious optimum") as record:
        model = MixtureOfLinearRegressions(3, random_state=1).fit(X, y)
    assert model.loglik_ == pytest.approx(56.00580642793537, rel=1e-6)
    assert model.sigma_.min() > 0.1 / np.sqrt(12)
    assert model.passed_over_["loglik"] == pytest.approx(65.61303, rel=1e-5)
    assert any("below the resolution of y" in str(w.message) for w in record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spiky = MixtureOfLinearRegressions(3, random_state=1, y_resolution=None).fit(X, y)
    assert spiky.loglik_ > 65.6 and spiky.sigma_.min() < 0.01
    given = MixtureOfLinearRegressions(3, random_state=1, y_resolution=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert given.fit(X, y).loglik_ == pytest.approx(model.loglik_, rel=1e-9)


@pytest.mark.parametrize("bad", ["tenth", -0.1, True])
def test_y_resolution_is_checked(bad):
    X, y = _iris()
    with pytest.raises(ValueError, match="y_resolution"):
        MixtureOfLinearRegressions(2, y_resolution=bad).fit(X, y)


def test_the_cli_option_takes_auto_none_or_a_step():
    assert _resolution("auto") == "auto" and _resolution("None") is None
    assert _resolution("0.1") == 0.1
    with pytest.raises(argparse.ArgumentTypeError):
        _resolution("-1")
