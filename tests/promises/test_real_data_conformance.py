"""Promise: with default settings, streammix reaches R's best non-degenerate optimum on
public real data sets.

The references are in ``tests/fixtures/real_data`` (``make_real_data.R``: flexmix
``stepFlexmix(nrep = 20)`` with minprior 0.05 and 0, mixtools ``regmixEM`` with 20
seeds, each solution polished by plain EM; ``test_real_data_fixtures.py`` checks
them).  For every case of the data sets below (k = 2 and 3, per-component and
shared noise), ``MixtureOfLinearRegressions(k, noise=...)`` with nothing else set
and seeds 0..4 (0..2 or 0..1 on the cases where the draw of the starts has not
mattered, see :func:`_seeds`) must

* keep its k components and be non-degenerate by the fixtures' rule;
* be non-degenerate also by the choice rule of the fit (no σ² at the variance
  floor, no σ below the resolution of y, §1.9 of the mathematics page);
* reach the best non-degenerate R log-likelihood to 1e-6 relative: the
  maximum-likelihood one (``polished_ml_loglik``) by default, and flexmix's own
  (``polished_flexmix_loglik``, σ with flexmix's degrees-of-freedom correction)
  with ``df_correction=True``;
* and not exceed it by more than 1e-6 relative -- a spike R passed over would --
  unless the case has a documented better optimum (``better_optima.json``,
  written by ``better_optima.R``: a streammix solution that mixtools' and
  flexmix's EM started from it keep, at a log-likelihood above every
  non-degenerate R run of the fixtures), which is then the upper bound.

Every higher, degenerate R optimum recorded in the fixtures is identified as
degenerate by streammix's rule
(:func:`streammix.algorithms.degeneracy.find_degenerate`), the components it names
being those the fixtures flag.  ``benchmarks/real_data_table.py`` prints the table of
all cases (those below and the others).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings

import numpy as np
import pytest
from support import FIXTURES

from streammix import MixtureOfLinearRegressions, MixtureParams
from streammix.algorithms.degeneracy import find_degenerate, recording_step, rule_for_data
from streammix.core.stats import design_matrix, estep

REAL = FIXTURES / "real_data"
CASES = json.loads((REAL / "cases.json").read_text())
RESULTS = json.loads((REAL / "r_results.json").read_text())
BETTER = json.loads((REAL / "better_optima.json").read_text())

#: Data sets of the suite: every one of their cases must pass.
SUITE = ["co2", "tone", "nox", "cars", "whiteside", "faithful", "nregfix", "mtcars", "trees",
         "iris", "cats", "mcycle", "geyser", "boston", "puromycin", "anorexia", "npreg",
         "stackloss", "airquality", "hills", "mammals", "swiss", "savings", "prestige",
         "starscyg", "duncan"]
KEYS = sorted(key for key, entry in RESULTS.items()
              if key != "_meta" and entry["dataset"] in SUITE)
SEEDS = range(5)
RTOL = 1e-6
HIGHER_DEGENERATE = [k for k in KEYS if RESULTS[k]["summary"]["higher_degenerate_exists"]]

#: Cases where a seed beyond 4 has failed a check: all of :data:`SEEDS`.  On
#: 2026-12-04 seeds 5..14 ran on every case (ML and flexmix); they failed on 3 of
#: the 10 of airquality k=2 and prestige k=2, on 2 of faithful k=3 and on 1 of
#: airquality k=3 and of mcycle k=3 (per-component noise), and nowhere else.  Seven
#: went above R's best non-degenerate optimum (airquality k=2 seeds 6, 12, 13;
#: prestige k=2 seeds 12, 14; faithful k=3 seeds 8, 11; mcycle k=3 seed 12), to
#: optima that mixtools' and flexmix's EM started from them keep, non-degenerate
#: by the choice rule: documented in ``better_optima.json`` since.  Two ended
#: below R's, the gaps fixed since (:data:`FORMER_GAPS`).
FRAGILE = ["airquality/k=2/per_component", "airquality/k=3/per_component",
           "faithful/k=3/per_component", "mcycle/k=3/per_component",
           "prestige/k=2/per_component"]
#: Seeds beyond :data:`SEEDS` that are tested too: the former gaps of the start
#: search.  On airquality k=3 seed 8 (R's -487.048, the fit ended at -487.875) the
#: one start of 359 in R's basin ranked 288th after the first short runs and was
#: culled; on prestige k=2 seed 10 (R's -344.500, the fit ended at -344.563) the one
#: start of 400 that reaches -344.017 ranked 108th of the identified short runs,
#: past the 97 kept while 97 places for forming runs held 5.  Since the first cut
#: gives unused forming places to identified runs and keeps the runs that climbed
#: fastest in the last short iteration
#: (:func:`streammix.algorithms.start.pool.first_cut_runs`), and a quarter more
#: finalists run on, both reach R's optimum or the better one, and the survey of
#: seeds 0..14 on every case (``benchmarks/real_data_survey.py``) fails nowhere.
FORMER_GAPS = {"airquality/k=3/per_component": (8,), "prestige/k=2/per_component": (10,)}
#: (case, seed, why) beyond the tested seeds where the default fit is known to end
#: below R's best non-degenerate optimum: none since the survey of seeds 0..14 of
#: 2026-12-04 after the first cut above (strict xfails when there are some, so
#: that a fix shows).
KNOWN_GAPS: list[tuple[str, int, str]] = []
#: Cases where spikes or a small component compete with the sensible optimum -- R
#: found a higher degenerate optimum (:data:`HIGHER_DEGENERATE`), or a better
#: optimum than R's is documented (``better_optima.json``: the pool has to find a
#: component of about as many rows as parameters) -- and every seed 0..14 passed:
#: seeds 0..2.
CONTESTED = sorted((set(HIGHER_DEGENERATE) | {k for k in BETTER if k != "_meta"})
                   - set(FRAGILE))


def _seeds(key) -> list[int]:
    """The seeds of ``key``: they check that reaching R's optimum does not hang on
    the draw of the starts, and the draw matters most where some seed has failed
    (:data:`FRAGILE`: all five), then where spikes compete (:data:`CONTESTED`:
    three).  On the other 50 cases every seed 0..14 passed on 2026-12-04; two
    still catch a pool that reaches the optimum by luck.  The seeds of the former
    gaps (:data:`FORMER_GAPS`) come on top."""
    seeds = SEEDS if key in FRAGILE else SEEDS[:3] if key in CONTESTED else SEEDS[:2]
    return [*seeds, *FORMER_GAPS.get(key, ())]


def _data(name):
    with open(REAL / CASES[name]["csv"], newline="") as handle:
        rows = list(csv.reader(handle))
    values = np.array(rows[1:], dtype=float)
    return values[:, 1:], values[:, 0]


def _degenerate(entry, weights, beta, sigma, choice=False) -> list[int]:
    """Components degenerate by streammix's rule (``find_degenerate``, the rule of the
    fixtures' README), at the given parameters; with ``choice``, by the rule of the
    choice among runs (also σ² at the default variance floor, 1e-4 σ²_OLS, or σ below
    the resolution of y, δ/√12)."""
    X, y = _data(entry["dataset"])
    Xd = design_matrix(X, True)
    params = MixtureParams(weights / weights.sum(), beta, sigma**2)
    stats = estep(Xd, y, np.ones(y.size), params)
    rule = rule_for_data(Xd, y, entry["noise"])
    if choice:
        rule = dataclasses.replace(rule, floor_sigma2=1e-4 * rule.pooled_sigma2,
                                   resolution_sigma2=recording_step(y) ** 2 / 12)
    return [found.component for found in find_degenerate(params, stats, rule)]


def _upper_bound(key, target, flexmix) -> float:
    """R's best non-degenerate log-likelihood, or the documented better optimum."""
    better = BETTER.get(key)
    if better is None:
        return target
    return max(target, better["flexmix_from_it" if flexmix else "regmixEM_from_it"]["loglik"])


def _solution(sol):
    comps = sol["components"]
    return (np.array([c["prior"] for c in comps]), np.array([c["coef"] for c in comps]),
            np.array([c["sigma"] for c in comps]))


def test_the_suite_covers_twelve_data_sets_both_k_and_both_noise_models():
    assert len(SUITE) >= 12
    assert {RESULTS[k]["k"] for k in KEYS} == {2, 3}
    assert {RESULTS[k]["noise"] for k in KEYS} == {"per_component", "shared"}
    assert set(KEYS) == {f"{n}/k={k}/{noise}" for n in SUITE for k in CASES[n]["k"]
                         for noise in CASES[n]["noise"]}
    assert set(FRAGILE) <= set(KEYS) and len(CONTESTED) == 21
    assert set(FORMER_GAPS) <= set(FRAGILE)


def _check_default_fit(key, flexmix, seed) -> None:
    """The checks of the promise on the default fit of ``key`` with ``seed``."""
    entry = RESULTS[key]
    summary = entry["summary"]
    target = summary["polished_flexmix_loglik" if flexmix else "polished_ml_loglik"]
    upper = _upper_bound(key, target, flexmix)
    X, y = _data(entry["dataset"])
    model = MixtureOfLinearRegressions(entry["k"], noise=entry["noise"], random_state=seed,
                                       df_correction=flexmix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a spurious optimum passed over is fine here
        model.fit(X, y)
    label = f"{key} seed {seed}"
    assert model.n_components_ == entry["k"], label
    beta = np.column_stack([model.intercept_, model.coef_])
    assert not _degenerate(entry, model.weights_, beta, model.sigma_, choice=True), label
    assert model.loglik_ >= target - RTOL * abs(target), (
        f"{label}: {model.loglik_:.8f} below R's {target:.8f}")
    assert model.loglik_ <= upper + RTOL * abs(upper), (
        f"{label}: {model.loglik_:.8f} above R's best non-degenerate {upper:.8f} "
        "(a spurious optimum, or a better one to document in better_optima.json)")


@pytest.mark.parametrize("flexmix", [False, True], ids=["ml", "flexmix"])
@pytest.mark.parametrize("key", KEYS)
def test_default_fit_reaches_the_best_nondegenerate_r_optimum(key, flexmix):
    for seed in _seeds(key):
        _check_default_fit(key, flexmix, seed)


@pytest.mark.parametrize("flexmix", [False, True], ids=["ml", "flexmix"])
@pytest.mark.parametrize(("key", "seed"), [pytest.param(key, seed, id=f"{key}-seed{seed}",
                                                         marks=pytest.mark.xfail(
                                                             strict=True, reason=reason))
                                            for key, seed, reason in KNOWN_GAPS])
def test_known_gaps_of_the_start_search(key, seed, flexmix):
    """The seeds beyond :data:`SEEDS` on which the default fit is known to end below R's
    optimum (:data:`KNOWN_GAPS`): strict xfails, so that a fix shows."""
    _check_default_fit(key, flexmix, seed)


@pytest.mark.parametrize("key", HIGHER_DEGENERATE)
def test_every_higher_r_optimum_is_identified_as_degenerate(key):
    entry = RESULTS[key]
    best = entry["summary"]["best_degenerate"]
    assert best["loglik"] > entry["summary"]["polished_ml_loglik"]
    flagged = _degenerate(entry, *_solution(best))
    assert flagged == [j for j, c in enumerate(best["components"]) if c["degenerate"]]
    assert flagged, key


@pytest.mark.parametrize("key", sorted(k for k in BETTER if k != "_meta"))
def test_every_documented_better_optimum_is_kept_by_r_and_above_every_r_run(key):
    """A better optimum is a fixed point of mixtools' EM (started from it, it stays)
    and of flexmix's, above R's best non-degenerate optimum (polished, and every
    non-degenerate R run of the fixtures), and non-degenerate by the choice rule."""
    better, entry = BETTER[key], RESULTS[key]
    summary = entry["summary"]
    mixtools = better["regmixEM_from_it"]["loglik"]
    assert mixtools == pytest.approx(better["streammix_loglik"], rel=1e-8)
    assert better["flexmix_from_it"]["k"] == entry["k"]
    # a clear gap, 1e-3 (above 1000 times the comparison's 1e-6 relative at these
    # sizes; duncan's is 0.011), not rounding
    assert mixtools > summary["polished_ml_loglik"] + 1e-3
    assert better["flexmix_from_it"]["loglik"] > summary["polished_flexmix_loglik"] + 1e-3
    assert mixtools > summary["best_nondegenerate_loglik"] + 1e-3  # no sensible R run got there
    starts = [row for row in csv.DictReader(open(REAL / "better_optima_starts.csv"))
              if row["key"] == key]
    weights, beta, sigma = (np.array([float(r["prior"]) for r in starts]),
                            np.array([[float(c) for c in r["coef"].split()] for r in starts]),
                            np.array([float(r["sigma"]) for r in starts]))
    assert not _degenerate(entry, weights, beta, sigma, choice=True)
