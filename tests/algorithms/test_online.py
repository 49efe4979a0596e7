"""Online EM (streammix.algorithms.online and partial_fit): accuracy against batch EM, the
update rule against a hand-written recursion, forgetting, exact resume, bounded
memory and the errors of bad batches."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.optimize import linear_sum_assignment
from support.mixtures import make_mixture, opg_coef_se

from streammix import DataError, MixtureOfLinearRegressions
from streammix.algorithms.online import OnlineEM, OnlineSettings, burn_in_rows
from streammix.core import kernel
from streammix.core.chunk import Chunk
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix

W3 = np.array([0.5, 0.3, 0.2])
B3 = np.array([-4.0, 0.5, 5.0])
A3 = np.array([[1.0, -1.0, 0.5, 2.0, 0.0], [-1.5, 0.5, 1.0, 0.0, 1.0],
               [0.5, 2.0, -1.0, -1.0, 0.5]])
S3 = np.array([1.0, 0.6, 1.5])


class GeneratedSource:
    """A source that regenerates batch k from seed k: 1M rows without holding them."""

    n_features = 5
    feature_names = [f"x{k}" for k in range(5)]

    def __init__(self, n_batches, rows):
        self.n_batches, self.rows = n_batches, rows

    def plan(self):
        return list(range(self.n_batches))

    def read(self, k):
        X, y, _ = make_mixture(self.rows, W3, B3, A3, S3, seed=1000 + k)
        return Chunk(X, y, np.ones(self.rows), "generated", k * self.rows)


def test_one_pass_over_a_million_rows_lands_within_three_se_of_batch_em():
    source = GeneratedSource(100, 10_000)
    online = MixtureOfLinearRegressions(3, random_state=0, average=True)
    for k in source.plan():
        c = source.read(k)
        online.partial_fit(c.X, c.y, batch_id=("generated", c.first_row))
    assert online.n_rows_ == 1_000_000 and online.n_iter_ == 100
    batch = MixtureOfLinearRegressions(3, random_state=0).fit(source)
    assert batch.converged_
    est_on = np.column_stack([online.intercept_, online.coef_])
    est_b = np.column_stack([batch.intercept_, batch.coef_])
    rows, cols = linear_sum_assignment(np.abs(est_on[:, None] - est_b[None]).sum(-1))
    chunks = (source.read(k) for k in source.plan())
    se = opg_coef_se(batch.params_, ((c.X, c.y) for c in chunks))
    z = np.abs(est_on[rows] - est_b[cols]) / se[cols]
    assert z.max() < 3, z
    np.testing.assert_allclose(online.weights_[rows], batch.weights_[cols], atol=3e-3)
    np.testing.assert_allclose(online.sigma_[rows], batch.sigma_[cols], rtol=5e-3)
    mean_on, mean_b = online.score(source), batch.loglik_ / batch.sum_weights_
    assert mean_on <= mean_b + 1e-9  # the batch MLE is the maximum
    assert abs(mean_on - mean_b) < 0.005 * abs(mean_b)
    # The prequential monitor is an honest out-of-sample figure near the optimum.
    late = [r["loglik_per_w"] for r in online.history_[-20:]]
    assert abs(np.mean(late) - mean_b) < 0.02 * abs(mean_b)
    # The un-averaged iterate is also close (the averaged one is what is reported).
    assert np.max(np.abs(online.online_.params.beta - online.online_.estimate().beta)) < 0.05


def _hand_recursion(batches, params, alpha, k0):
    """Mini-batch stepwise EM written directly in the raw form.

    See the mathematics page (docs/mathematics.rst), §1.2 and §2.2.
    """
    pi, beta, s2 = params.weights.copy(), params.beta.copy(), params.sigma2.copy()
    s = None
    for k, (X, y) in enumerate(batches, start=1):
        Xd = design_matrix(X, True)
        dens = pi * np.exp(-(y[:, None] - Xd @ beta.T) ** 2 / (2 * s2)) / np.sqrt(2 * np.pi * s2)
        g = dens / dens.sum(1, keepdims=True)
        n = len(y)
        new = [g.sum(0) / n, np.einsum("ij,ik,il->jkl", g, Xd, Xd) / n,
               np.einsum("ij,ik,i->jk", g, Xd, y) / n, (g * y[:, None] ** 2).sum(0) / n]
        eta = 1.0 if k == 1 else (k + k0) ** -alpha
        s = new if s is None else [(1 - eta) * a + eta * b for a, b in zip(s, new, strict=True)]
        S0, S2, Sxy, Syy = s
        pi = S0 / S0.sum()
        beta = np.array([np.linalg.solve(S2[j], Sxy[j]) for j in range(len(pi))])
        s2 = (Syy - np.einsum("jk,jk->j", beta, Sxy)) / S0
    return pi, beta, s2


def test_update_rule_matches_a_hand_written_recursion():
    X, y, _ = make_mixture(3000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=5)
    start = MixtureParams([0.5, 0.5], [[-2.0, 1.5, -0.5], [2.0, -0.5, 0.0]], [1.5, 1.5])
    settings = OnlineSettings(step_alpha=0.7, step_offset=3.0, burn_in=0)
    state = OnlineEM.from_params(start, MStepOptions(), settings)
    batches = [(X[i:i + 300], y[i:i + 300]) for i in range(0, 3000, 300)]
    for Xb, yb in batches:
        state.update(Xb, yb)
    pi, beta, s2 = _hand_recursion(batches, start, 0.7, 3.0)
    np.testing.assert_allclose(state.params.weights, pi, rtol=1e-10)
    np.testing.assert_allclose(state.params.beta, beta, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(state.params.sigma2, s2, rtol=1e-8)
    assert [round(r["eta"], 12) for r in state.history][:3] == [1.0, round(5 ** -0.7, 12),
                                                               round(6 ** -0.7, 12)]


def test_burn_in_holds_the_m_step_and_averages_exactly():
    X, y, _ = make_mixture(400, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=6)
    start = MixtureParams([0.5, 0.5], [[-2.0, 1.5, -0.5], [2.0, -0.5, 0.0]], [1.5, 1.5])
    state = OnlineEM.from_params(start, MStepOptions(), OnlineSettings())
    assert state.burn_in == burn_in_rows(2, 3) == 80
    for i in range(0, 400, 10):
        state.update(X[i:i + 10], y[i:i + 10])
    records = list(state.history)
    # No M-step before 80 rows; steps 1/k meanwhile (an exact running mean).
    assert [r["m_step"] for r in records[:7]] == [False] * 7 and records[7]["m_step"]
    assert all(r["weights"] == [0.5, 0.5] for r in records[:7])
    np.testing.assert_allclose([r["eta"] for r in records[:8]], 1 / np.arange(1, 9))
    np.testing.assert_allclose(records[8]["eta"], (9 + 2.0) ** -0.6)
    # The running statistics after the burn-in are the mean over the first 80 rows,
    # all at the starting parameters: compare with one E-step on those rows.
    from streammix.core.stats import estep
    fresh = OnlineEM.from_params(start, MStepOptions(), OnlineSettings())
    for i in range(0, 80, 10):
        fresh.update(X[i:i + 10], y[i:i + 10])
    direct = estep(design_matrix(X[:80], True), y[:80], np.ones(80), start)
    np.testing.assert_allclose(fresh.stats.s2, direct.s2 / 80, rtol=1e-12)
    np.testing.assert_allclose(fresh.stats.recentre(start.beta).rx, direct.rx / 80,
                               rtol=1e-9, atol=1e-12)


def _drift_stream(n_before, n_after, rows, seed=0):
    a_before = [[2.0, -1.0], [-1.0, 0.5]]
    a_after = [[3.0, -1.0], [-2.0, 0.5]]
    out = []
    for k in range(n_before + n_after):
        coefs = a_before if k < n_before else a_after
        X, y, _ = make_mixture(rows, [0.5, 0.5], [-5.0, 5.0], coefs, [1.0, 1.0], seed=seed + k)
        out.append((X, y))
    return out, np.array(a_before), np.array(a_after)


def test_forgetting_tracks_a_changepoint_and_the_default_averages():
    batches, a_before, a_after = _drift_stream(150, 40, 1000)
    forget = MixtureOfLinearRegressions(2, random_state=0, forget=3000)
    default = MixtureOfLinearRegressions(2, random_state=0)
    lag = None
    for k, (X, y) in enumerate(batches):
        forget.partial_fit(X, y)
        default.partial_fit(X, y)
        if k == 149:  # just before the change both are at the old coefficients
            for model in (forget, default):
                order = np.argsort(model.intercept_)
                assert np.abs(model.coef_[order] - a_before).max() < 0.25
        if k >= 150 and lag is None:
            order = np.argsort(forget.intercept_)
            if np.abs(forget.coef_[order] - a_after).max() < 0.15:
                lag = k - 149
    # A window of 3 batches: adapted within a few windows ...
    assert lag is not None and lag <= 12, lag
    order = np.argsort(forget.intercept_)
    assert np.abs(forget.coef_[order] - a_after).max() < 0.15
    # ... while the default step still carries the old regime after 40 batches.
    order = np.argsort(default.intercept_)
    err = np.abs(default.coef_[order] - a_after).max()
    assert err > 0.2, err


def _stream_fit(model, batches, ids=True):
    for k, (X, y) in enumerate(batches):
        model.partial_fit(X, y, batch_id=("s", k * len(y)) if ids else None)
    return model


def test_state_round_trips_through_json_and_resumes_exactly():
    batches, _, _ = _drift_stream(30, 0, 500, seed=40)
    full = _stream_fit(MixtureOfLinearRegressions(2, random_state=3, average=5), batches)
    part = _stream_fit(MixtureOfLinearRegressions(2, random_state=3, average=5), batches[:13])
    text = json.dumps(part.online_.to_dict(), allow_nan=False)
    resumed = MixtureOfLinearRegressions(2, random_state=3, average=5)
    resumed.online_ = OnlineEM.from_dict(json.loads(text))
    resumed.n_features_in_, resumed.feature_names_in_ = 2, ["x0", "x1"]
    # Replaying the whole stream: the first 13 batches are in the ledger and skipped.
    _stream_fit(resumed, batches)
    assert resumed.online_.n_batches == full.online_.n_batches == 30
    assert resumed.params_ == full.params_  # bit for bit
    assert resumed.online_.estimate() == full.online_.estimate()
    assert resumed.loglik_ == full.loglik_
    assert (resumed.online_.rng.bit_generator.state == full.online_.rng.bit_generator.state)


def test_replayed_and_overlapping_batches_are_not_counted_twice():
    batches, _, _ = _drift_stream(6, 0, 500, seed=7)
    model = _stream_fit(MixtureOfLinearRegressions(2, random_state=0), batches)
    before = model.params_
    X, y = batches[3]
    model.partial_fit(X, y, batch_id=("s", 1500))  # replay of batch 3
    assert model.params_ == before and model.n_rows_ == 3000
    # A batch overlapping the consumed rows contributes only its new rows.
    Xn, yn = batches[5]
    X2 = np.vstack([Xn[250:], Xn[:300]])
    y2 = np.concatenate([yn[250:], yn[:300]])
    model.partial_fit(X2, y2, batch_id=("s", 2750))
    assert model.n_rows_ == 3300 and model.online_.ledger["s"]["next"] == 3300
    # Named batches are taken once.
    model.partial_fit(X, y, batch_id="extra.parquet")
    n = model.n_rows_
    model.partial_fit(X, y, batch_id="extra.parquet")
    assert model.n_rows_ == n


def _n_leaves(obj) -> int:
    if isinstance(obj, dict):
        return sum(_n_leaves(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_n_leaves(v) for v in obj)
    return 1


def test_memory_does_not_grow_with_the_stream():
    batches, _, _ = _drift_stream(60, 0, 200, seed=11)
    start = MixtureParams([0.5, 0.5], [[-5.0, 2.0, -1.0], [5.0, -1.0, 0.5]], [1.0, 1.0])
    state = OnlineEM.from_params(start, MStepOptions(),
                                 OnlineSettings(average=True, history_size=10))
    leaves = {}
    for k, (X, y) in enumerate(batches):
        state.update(X, y, key="s", first_row=k * 200)
        if k + 1 in (15, 30, 60):
            leaves[k + 1] = _n_leaves(state.to_dict())
    # The whole state (statistics, averages, history, ledger) holds as many numbers
    # after 60 batches as after 15: O(m p²), nothing grows with the stream.
    assert leaves[15] == leaves[30] == leaves[60]
    assert len(state.history) == 10 and state.history[-1]["batch"] == 60
    assert state.totals["n_rows"] == 60 * 200 and state.n_averaged == 60 - 9
    assert list(state.ledger) == ["s"] and state.ledger["s"]["next"] == 12_000


def test_partial_fit_accepts_numpy_pandas_and_arrow_alike():
    batches, _, _ = _drift_stream(5, 0, 400, seed=21)
    ref = _stream_fit(MixtureOfLinearRegressions(2, random_state=0), batches, ids=False)
    pd_model = MixtureOfLinearRegressions(2, random_state=0)
    pa_model = MixtureOfLinearRegressions(2, random_state=0)
    for X, y in batches:
        df = pd.DataFrame({"u": X[:, 0], "v": X[:, 1], "target": y})
        pd_model.partial_fit(df, target="target")
        pa_model.partial_fit(pa.RecordBatch.from_pandas(df[["target", "v", "u"]]),
                             target="target", features=["u", "v"])
    assert pd_model.params_ == ref.params_ and pa_model.params_ == ref.params_
    assert list(pd_model.feature_names_in_) == ["u", "v"] == list(pa_model.feature_names_in_)


def test_bad_batches_get_the_errors_of_batch_fitting():
    X, y, _ = make_mixture(500, [0.5, 0.5], [-3.0, 3.0], [[1.0], [-1.0]], [1.0, 1.0], seed=2)
    y_bad = y.copy()
    y_bad[[17, 40]] = np.nan
    with pytest.raises(DataError) as batch_err:
        MixtureOfLinearRegressions(2).fit(X, y_bad)
    model = MixtureOfLinearRegressions(2, random_state=0).partial_fit(X, y)
    with pytest.raises(DataError) as online_err:
        model.partial_fit(X, y_bad)
    assert "y has 2 NaN values, first at row 17" in str(batch_err.value)
    assert "y has 2 NaN values, first at row 17" in str(online_err.value)
    with pytest.raises(DataError, match="sample_weight has 1 negative value, first at row 3"):
        model.partial_fit(X, y, sample_weight=np.where(np.arange(500) == 3, -1.0, 1.0))
    table = pa.table({"x0": X[:, 0], "y": y})
    with pytest.raises(DataError, match=r"missing column 'x1'"):
        model.partial_fit(table, target="y", features=["x0", "x1"])
    with pytest.raises(DataError, match=r"column 'x0' has 1 null value, first at row 2"):
        model.partial_fit(pa.table({"x0": pa.array([1.0, 2.0, None] + [0.0] * 497), "y": y}),
                          target="y")
    with pytest.raises(DataError, match=r"column 'x0' has type string"):
        model.partial_fit(pa.table({"x0": ["a"] * 500, "y": y}), target="y")
    with pytest.raises(DataError, match="X has 2 features, but MixtureOfLinearRegressions is"):
        model.partial_fit(np.column_stack([X, X]), y)
    with pytest.raises(DataError, match="too few to initialise"):
        MixtureOfLinearRegressions(2).partial_fit(X[:5], y[:5])
    assert model.n_rows_ == 500  # nothing of the bad batches was consumed


def test_polish_finishes_with_batch_passes():
    X, y, _ = make_mixture(20_000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=9)
    model = MixtureOfLinearRegressions(2, random_state=0)
    for i in range(0, 20_000, 2000):
        model.partial_fit(X[i:i + 2000], y[i:i + 2000])
    online_ll = model.score(X, y) * len(y)
    model.polish(X, y, n_passes=3)
    batch = MixtureOfLinearRegressions(2, random_state=0, tol=1e-6).fit(X, y)
    assert model.loglik_ >= online_ll - 1e-6
    assert model.loglik_ == pytest.approx(model.score(X, y) * len(y), rel=1e-12)
    assert abs(model.loglik_ - batch.loglik_) < 0.05
    assert model.history_[-1]["loglik"] == model.loglik_
    with pytest.raises(ValueError, match="call partial_fit first"):
        MixtureOfLinearRegressions(2).fit(X, y).polish(X, y)


def test_partial_fit_after_fit_continues_from_the_fitted_parameters():
    X, y, _ = make_mixture(6000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=12)
    model = MixtureOfLinearRegressions(2, random_state=0).fit(X[:4000], y[:4000])
    fitted = model.params_
    model.partial_fit(X[4000:5000], y[4000:5000])
    state = model.online_
    # Started from the batch fit: the first E-step was at its parameters ...
    from streammix.core.stats import estep
    first = estep(design_matrix(X[4000:5000], True), y[4000:5000], np.ones(1000), fitted)
    assert state.history[0]["loglik"] == pytest.approx(first.loglik, rel=1e-12)
    assert np.abs(model.params_.beta - fitted.beta).max() < 0.2
    # ... and a new batch fit drops the online state.
    model.fit(X, y)
    assert not hasattr(model, "online_") and model.converged_


@pytest.mark.parametrize("compiled", [False, True])
def test_vectorised_m_step_is_mstep_or_steps_aside(kernel_switch, compiled):
    # The numpy fast path does mstep's arithmetic (bit for bit); the compiled
    # one (streammix/_kernel.c) the same update to rounding.
    from streammix.core.mstep import mstep
    from streammix.core.plain_mstep import is_plain_ml, ml_mstep_arrays
    from streammix.core.stats import estep
    if compiled and not kernel.available():
        pytest.skip("compiled kernel not built")
    kernel_switch(compiled)

    def fast_ml_mstep(stats, params, options):  # what online EM does before calling mstep
        if not is_plain_ml(options) or not np.array_equal(stats.center, params.beta):
            return None
        result = ml_mstep_arrays(stats.s0, stats.s2, stats.rx, stats.r0, stats.sum_w,
                                 params.beta, options.variance_floor)
        return None if result is None else result[0]

    X, y, _ = make_mixture(5000, [0.3, 0.3, 0.4], [-3.0, 0.0, 3.0],
                           [[2.0, -1.0], [0.0, 1.0], [-1.0, 0.5]], [1.0, 0.5, 0.7], seed=1)
    p = MixtureParams([0.3, 0.3, 0.4], [[-2.5, 1.5, -1.0], [0.2, 0.0, 1.0], [3.0, -1.0, 0.3]],
                      [1.0, 1.0, 1.0])
    stats = estep(design_matrix(X, True), y, np.ones(5000), p)
    options = MStepOptions(variance_floor=1e-3)
    fast, slow = fast_ml_mstep(stats, p, options), mstep(stats, p, options)[0]
    if compiled:
        for name in ("weights", "beta", "sigma2"):
            np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-13)
    else:
        assert fast == slow
    # Whenever mstep would do more than the plain ML update, the fast path declines.
    for other in (MStepOptions(ridge=1.0), MStepOptions(noise="shared"),
                  MStepOptions(prior_dof=3.0, prior_scale=1.0), MStepOptions(dirichlet_alpha=2.0),
                  MStepOptions(variance_floor=10.0)):
        assert fast_ml_mstep(stats, p, other) is None
    assert fast_ml_mstep(stats.recentre(p.beta + 0.1), p, options) is None
    collinear = estep(design_matrix(np.column_stack([X[:, 0], X[:, 0]]), True), y,
                      np.ones(5000), p)
    assert fast_ml_mstep(collinear, p, options) is None
    far = MixtureParams([0.5, 0.25, 0.25], [[-3.0, 2.0, -1.0], [0.0, 0.0, 1.0], [90.0, 0, 0]],
                        [1.0, 0.5, 1e-4])
    empty = estep(design_matrix(X, True), y, np.ones(5000), far)  # component 3 gets nothing
    assert fast_ml_mstep(empty, far, options) is None


@pytest.mark.skipif(not kernel.available(),
                    reason="compiled kernel not built")
@pytest.mark.parametrize("seed", range(6))
def test_compiled_ml_mstep_equals_the_numpy_one(kernel_switch, seed):
    from streammix.core.plain_mstep import ml_mstep_arrays
    rng = np.random.default_rng(seed)
    m, p = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    Z = rng.normal(size=(m, 200, p))
    s2 = np.einsum("jik,jil->jkl", Z, Z)
    rx = rng.normal(size=(m, p)) * 5
    s0 = rng.uniform(10, 100, size=m)
    r0 = rng.uniform(1e3, 1e4, size=m)
    beta = rng.normal(size=(m, p))
    out = {}
    for compiled in (False, True):
        kernel_switch(compiled)
        out[compiled] = ml_mstep_arrays(s0, s2, rx, r0, float(s0.sum()), beta, 1e-6)
    (a, a_s2d, a_rss), (b, b_s2d, b_rss) = out[False], out[True]
    for name in ("weights", "beta", "sigma2"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-12)
    np.testing.assert_allclose(b_s2d, a_s2d, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b_rss, a_rss, rtol=1e-12)
    # ... and both step aside for a singular matrix or a variance at the floor.
    s2[-1] = 0.0
    for compiled in (False, True):
        kernel_switch(compiled)
        assert ml_mstep_arrays(s0, s2, rx, r0, float(s0.sum()), beta, 1e-6) is None
        assert ml_mstep_arrays(s0, s2 + np.eye(p), rx, r0, float(s0.sum()), beta, 1e9) is None


@pytest.mark.parametrize("forget", [None, 1500])
def test_frequency_weights_equal_duplicated_rows(forget):
    batches, _, _ = _drift_stream(8, 0, 300, seed=31)
    rng = np.random.default_rng(0)
    weighted = MixtureOfLinearRegressions(2, random_state=0, forget=forget,
                                          init={"weights": [0.5, 0.5], "coef": [[2, -1], [-1, 0]],
                                                "intercept": [-4, 4], "sigma": [1.5, 1.5]})
    duplicated = MixtureOfLinearRegressions(**weighted.get_params())
    for X, y in batches:
        w = rng.integers(0, 3, size=len(y)).astype(float)
        weighted.partial_fit(X, y, sample_weight=w)
        rep = np.repeat(np.arange(len(y)), w.astype(int))
        duplicated.partial_fit(X[rep], y[rep])
    assert weighted.sum_weights_ == duplicated.sum_weights_ == duplicated.n_rows_
    np.testing.assert_allclose(weighted.params_.beta, duplicated.params_.beta, rtol=1e-9)
    np.testing.assert_allclose(weighted.params_.sigma2, duplicated.params_.sigma2, rtol=1e-9)
    np.testing.assert_allclose(weighted.weights_, duplicated.weights_, rtol=1e-9)
    # A batch with no weight changes nothing but the row count.
    before = weighted.params_
    weighted.partial_fit(*batches[0], sample_weight=np.zeros(300))
    assert weighted.params_ == before and weighted.history_[-1]["eta"] == 0.0


def _state_snapshot(model):
    state = model.online_
    return json.dumps(state.to_dict()), model.n_rows_


@pytest.mark.parametrize("where", ["X", "y", "w-inf", "X-zero-weight", "replayed-rows"])
def test_a_bad_value_anywhere_is_reported_exactly_and_changes_nothing(where):
    # partial_fit scans a batch for bad values only when its E-step statistics are
    # not finite or it has weights <= 0: every kind of bad value must still be found.
    X, y, _ = make_mixture(2000, [0.5, 0.5], [-3.0, 3.0], [[1.0, 0.5], [-1.0, 0.0]],
                           [1.0, 1.0], seed=4)
    model = MixtureOfLinearRegressions(2, random_state=0)
    for i in range(0, 1500, 500):
        model.partial_fit(X[i:i + 500], y[i:i + 500], batch_id=("s", i))
    before = _state_snapshot(model)
    Xb, yb, wb = X[1500:].copy(), y[1500:].copy(), np.ones(500)
    batch_id, message = ("s", 1500), None
    if where == "X":
        Xb[[7, 9], 1] = [np.inf, np.nan]
        message = "X column 'x1' has 1 NaN value and 1 infinite value, first at row 7"
    elif where == "y":
        yb[300] = -np.inf
        message = "y has 1 infinite value, first at row 300"
    elif where == "w-inf":
        wb[42] = np.inf
        message = "sample_weight has 1 infinite value, first at row 42"
    elif where == "X-zero-weight":
        Xb[5, 0], wb[5] = np.nan, 0.0
        message = "X column 'x0' has 1 NaN value, first at row 5"
    else:  # rows 0-99 of this batch were consumed before; the bad value is among them
        Xb, yb, wb = X[1400:1900].copy(), y[1400:1900].copy(), np.ones(500)
        yb[50] = np.nan
        batch_id, message = ("s", 1400), "y has 1 NaN value, first at row 50"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error, and no numpy warnings on the way
        with pytest.raises(DataError, match=message):
            model.partial_fit(Xb, yb, sample_weight=wb, batch_id=batch_id)
    assert _state_snapshot(model) == before


def test_fitted_attributes_follow_every_batch_whenever_they_are_read():
    batches, _, _ = _drift_stream(12, 0, 400, seed=8)
    eager = MixtureOfLinearRegressions(2, random_state=0, average=4)
    lazy = MixtureOfLinearRegressions(2, random_state=0, average=4)
    for k, (X, y) in enumerate(batches):
        eager.partial_fit(X, y)
        lazy.partial_fit(X, y)
        seen = (eager.params_, eager.coef_.copy(), eager.loglik_, list(eager.history_))
        if k % 5 == 4:  # read only now and then
            assert lazy.params_ == seen[0] and np.array_equal(lazy.coef_, seen[1])
            assert lazy.loglik_ == seen[2] and lazy.history_ == seen[3]
    assert lazy.to_dict() == eager.to_dict()
    assert not hasattr(lazy, "no_such_attribute_")
    # A batch fit replaces the online estimate; partial_fit after it starts from it.
    lazy.fit(*batches[0])
    assert not hasattr(lazy, "online_") and lazy.converged_
