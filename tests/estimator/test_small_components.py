"""``min_weight``: flexmix's ``minprior`` rule for removing small components.

Reference: ``tests/fixtures/r/minprior_fit.json`` (made by
``make_minprior_fixture.R``): flexmix, k = 3 on synth.csv, minprior = 0.05,
started from flexmix's own initial posteriors (0.9 on a given cluster, 0.1
elsewhere, row-normalised) where cluster 3 holds 15 of 600 rows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import FIXTURES

from streammix import MixtureOfLinearRegressions
from streammix.core.mstep import MStepOptions, mstep
from streammix.core.params import MixtureParams
from streammix.core.stats import accumulate, design_matrix

R_FIXTURES = FIXTURES / "r"
REF = json.loads((R_FIXTURES / "minprior_fit.json").read_text())


def _flexmix_start():
    """Data, and flexmix's first M-step from initPosteriors(), as streammix parameters."""
    data = np.genfromtxt(R_FIXTURES / "synth.csv", delimiter=",", names=True)
    X, y = np.column_stack([data["x1"], data["x2"]]), data["y"]
    cluster = data["class"].astype(int)
    cluster[:15] = 3
    post = np.full((len(y), 3), 0.1)
    post[np.arange(len(y)), cluster - 1] = 0.9
    post /= post.sum(axis=1, keepdims=True)
    stats = accumulate(design_matrix(X, True), y, np.ones(len(y)), post, np.zeros((3, 3)))
    blank = MixtureParams(np.full(3, 1 / 3), np.zeros((3, 3)), np.ones(3))
    params, _ = mstep(stats, blank, MStepOptions(df_correction=True))
    return X, y, params


def test_min_weight_follows_flexmix_minprior():
    X, y, start = _flexmix_start()
    # flexmix removes a component below minprior (no re-seeding): on_collapse="drop".
    model = MixtureOfLinearRegressions(3, init=start, min_weight=0.05, df_correction=True,
                                       tol=1e-11, max_iter=5000, variance_floor=0.0,
                                       on_collapse="drop")
    with pytest.warns(RuntimeWarning, match=r"dropped collapsed component\(s\) 2 \(weight 0.04"
                                            r".*weight 0.0439 < min_weight 0.05"):
        model.fit(X, y)
    # Same trajectory as flexmix up to the removal: streammix's pass t is flexmix's
    # iteration t + 1 (flexmix's logLik is taken after the M-step of that iteration).
    trace = [h["loglik"] for h in model.history_]
    np.testing.assert_allclose(trace[:3], REF["loglik_trace"][:3], rtol=1e-12)
    # flexmix removes the component at the check of its iteration 4, on the
    # posteriors of its third E-step: streammix's pass 2.  The event is recorded
    # on the first pass with the reduced model.
    events = [(h["iteration"], h["event"]) for h in model.history_ if "event" in h]
    assert REF["removed_at_iteration"] == 4 and REF["removal_messages"] == 1
    assert events == [(REF["removed_at_iteration"] - 1, "dropped [2]")]
    assert [h["n_components"] for h in model.history_[2:4]] == [3, 2]
    # Both then run EM on the reduced model to the same optimum.
    assert model.n_components_ == REF["k"] == 2 and model.converged_
    assert model.loglik_ == pytest.approx(REF["loglik"], rel=1e-10)
    order = np.argsort(model.intercept_)
    for j, comp in zip(order, REF["components"], strict=True):
        assert model.weights_[j] == pytest.approx(comp["prior"], abs=1e-6)
        np.testing.assert_allclose(np.r_[model.intercept_[j], model.coef_[j]], comp["coef"],
                                   rtol=1e-6)
        assert model.sigma_[j] == pytest.approx(comp["sigma"], rel=1e-6)


def test_min_weight_zero_keeps_the_component():
    X, y, start = _flexmix_start()
    model = MixtureOfLinearRegressions(3, init=start, min_weight=0.0, df_correction=True,
                                       tol=1e-6, max_iter=3, variance_floor=0.0)
    with pytest.warns(Warning) as record:  # only the max_iter warning, no removal
        model.fit(X, y)
    assert all("dropped" not in str(r.message) for r in record)
    assert model.n_components_ == 3 and all("event" not in h for h in model.history_)
    trace = [h["loglik"] for h in model.history_]
    np.testing.assert_allclose(trace[:3], REF["loglik_trace"][:3], rtol=1e-12)
