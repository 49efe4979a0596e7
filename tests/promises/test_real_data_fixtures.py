"""Self-consistency of the real-data R fixtures in ``tests/fixtures/real_data``.

``Rscript tests/fixtures/real_data/make_real_data.R`` wrote the CSVs, ``cases.json``
and ``r_results.json``. These checks do not run R and do not use streammix: they
recompute, with numpy on the CSVs, what the fixtures claim -- the log-likelihood of
every recorded reference solution at its own parameters, the effective rows per
component, the degeneracy flags under the rule stated in the file, and that the
polished ML solutions are fixed points of plain EM.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "real_data"
CASES = json.loads((FIXTURES / "cases.json").read_text())
RESULTS = json.loads((FIXTURES / "r_results.json").read_text())
DATASETS = {name: case for name, case in CASES.items() if name != "_meta"}
ENTRIES = {key: entry for key, entry in RESULTS.items() if key != "_meta"}
RULE = RESULTS["_meta"]["degeneracy_rule"]


def _read_csv(case):
    with open(FIXTURES / case["csv"], newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], np.array(rows[1:], dtype=float)


def _design(entry):
    header, values = _read_csv(DATASETS[entry["dataset"]])
    y = values[:, header.index(entry["target"])]
    X = values[:, [header.index(f) for f in entry["features"]]]
    return y, np.column_stack([np.ones(len(y)), X])


def _params(solution):
    comps = solution["components"]
    weights = np.array([c["prior"] for c in comps])
    beta = np.array([c["coef"] for c in comps])  # k x p, intercept first
    sigma = np.array([c["sigma"] for c in comps])
    return weights, beta, sigma


def _log_joint(y, X1, weights, beta, sigma):
    resid = y[:, None] - X1 @ beta.T
    return (np.log(weights) - np.log(sigma) - 0.5 * math.log(2 * math.pi)
            - 0.5 * (resid / sigma) ** 2)


def _loglik_and_posteriors(y, X1, weights, beta, sigma):
    lj = _log_joint(y, X1, weights, beta, sigma)
    top = lj.max(axis=1, keepdims=True)
    total = top[:, 0] + np.log(np.exp(lj - top).sum(axis=1))
    return total.sum(), np.exp(lj - total[:, None])


def _em_step(y, X1, weights, beta, sigma, shared):
    _, post = _loglik_and_posteriors(y, X1, weights, beta, sigma)
    weights = post.mean(axis=0)
    beta = np.array([np.linalg.lstsq(X1 * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
                     for w in post.T])
    r2 = (y[:, None] - X1 @ beta.T) ** 2
    if shared:
        sigma = np.full(len(weights), np.sqrt((post * r2).sum() / len(y)))
    else:
        sigma = np.sqrt((post * r2).sum(axis=0) / post.sum(axis=0))
    return weights, beta, sigma


def _solutions(entry):
    """Every full solution recorded in an entry, with a label."""
    found = []
    for mp, block in entry["flexmix"].items():
        for which in ("best", "best_nondegenerate"):
            if block[which] is not None:
                found.append((f"flexmix {mp} {which}", block[which]))
    for setting, block in entry["mixtools"].items():
        for which in ("best", "best_nondegenerate"):
            if block[which] is not None:
                found.append((f"mixtools {setting} {which}", block[which]))
    summary = entry["summary"]
    for which in ("best_nondegenerate", "best_degenerate", "polished_ml", "polished_flexmix"):
        sol = summary.get(which)
        if sol is not None and "components" in sol:
            found.append((f"summary {which}", sol))
    return found


def test_every_case_has_its_csv_and_entries():
    assert len(DATASETS) >= 14
    for name, case in DATASETS.items():
        header, values = _read_csv(case)
        assert header == [case["target"], *case["features"]], name
        assert values.shape == (case["n"], 1 + len(case["features"])), name
        assert np.isfinite(values).all(), name
        assert case["n"] == case["n_rows_in_source"] - case["n_dropped_na"], name
        for k in case["k"]:
            for noise in case["noise"]:
                entry = ENTRIES[f"{name}/k={k}/{noise}"]
                assert (entry["dataset"], entry["k"], entry["noise"], entry["n"]) == (
                    name, k, noise, case["n"])
                assert entry["p"] == 1 + len(case["features"])
    assert set(ENTRIES) == {f"{n}/k={k}/{noise}" for n, c in DATASETS.items()
                            for k in c["k"] for noise in c["noise"]}
    assert any(c["n"] == 28 and len(c["features"]) == 1 for c in DATASETS.values())


@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_recorded_solutions_are_self_consistent(key):
    entry = ENTRIES[key]
    y, X1 = _design(entry)
    resid = y - X1 @ np.linalg.lstsq(X1, y, rcond=None)[0]
    assert entry["ols_sigma"] == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-10)
    min_rows = entry["p"] + 1
    spike_rows = RULE["spike_rows_factor"] * (entry["p"] + 1)
    assert entry["degeneracy_rule"]["min_n_eff"] == min_rows
    for label, sol in _solutions(entry):
        weights, beta, sigma = _params(sol)
        assert beta.shape == (sol["k"], entry["p"]), label
        assert np.all(np.diff(beta[:, 0]) >= 0), f"{label}: not sorted by intercept"
        loglik, post = _loglik_and_posteriors(y, X1, weights, beta, sigma)
        assert loglik == pytest.approx(sol["loglik"], rel=1e-8), label
        n_eff = post.sum(axis=0)
        ratio = sigma / entry["ols_sigma"]
        np.testing.assert_allclose([c["n_eff"] for c in sol["components"]], n_eff,
                                   rtol=1e-6, atol=1e-8, err_msg=label)
        np.testing.assert_allclose([c["sigma_ratio"] for c in sol["components"]], ratio,
                                   rtol=1e-12, err_msg=label)
        flags = n_eff < min_rows
        if entry["noise"] == "per_component":
            flags |= (n_eff < spike_rows) & (ratio < RULE["spike_sigma_ratio"])
        assert [c["degenerate"] for c in sol["components"]] == flags.tolist(), label
        assert sol["degenerate"] == bool(flags.any()), label


@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_polished_ml_solution_is_the_best_nondegenerate_em_fixed_point(key):
    entry = ENTRIES[key]
    summary = entry["summary"]
    polished = summary["polished_ml"]
    assert polished is not None, "no non-degenerate R solution"
    assert not polished["degenerate"]
    assert polished["k"] == entry["k"]
    assert summary["polished_ml_loglik"] == polished["loglik"]
    tol = 1e-9 * abs(polished["loglik"])
    if polished["loglik"] < summary["best_nondegenerate_loglik"] - tol:
        # allowed only when EM from the best non-degenerate R solution ran into a spike
        best_start = f"polished from {summary['best_nondegenerate_source']}"
        assert any(c["source"] == best_start and c["degenerate"]
                   for c in summary["polished_candidates"]), key
    y, X1 = _design(entry)
    params = _params(polished)
    before, _ = _loglik_and_posteriors(y, X1, *params)
    stepped = _em_step(y, X1, *params, shared=entry["noise"] == "shared")
    after, _ = _loglik_and_posteriors(y, X1, *stepped)
    assert after - before < 1e-9 * abs(before)
    for old, new in zip(params, stepped, strict=True):
        np.testing.assert_allclose(new, old, rtol=1e-6, atol=1e-9)
    if entry["noise"] == "shared":
        assert np.ptp(params[2]) == 0
    # a degenerate optimum reported as higher really is higher and flagged
    if summary["higher_degenerate_exists"]:
        assert summary["best_degenerate"]["degenerate"]
        assert summary["best_degenerate"]["loglik"] > polished["loglik"] or (
            summary["best_degenerate"]["loglik"] > summary["best_nondegenerate_loglik"])
