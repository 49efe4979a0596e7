"""Online EM with concomitant variables (partial_fit(..., concomitant=Z), OnlineGatedEM):
one pass over 1M rows against the generating parameters in standard errors, exact resume
through the JSON state, the errors of bad or inconsistent concomitant blocks, and
repeatability."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from streammix import DataError, MixtureOfLinearRegressions
from streammix.algorithms.concomitant import permute_gate
from streammix.algorithms.online_gate import OnlineGatedEM, state_from_dict
from streammix.data.arrays import ArraySource

GATE = np.array([[0.0, 0.0, 0.0], [0.3, 1.0, -0.5], [-0.2, -0.8, 0.7]])
BETA = np.array([[0.0, 2.0], [3.0, -1.0], [-3.0, 0.5]])
SIGMA = np.array([0.5, 0.7, 0.6])


def gated_data(n, seed):
    """Rows of a 3-component mixture whose weights are softmax(GATE [1, z]), z of 2 variables."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 2))
    P = np.exp(np.column_stack([np.ones(n), Z]) @ GATE.T)
    P /= P.sum(axis=1, keepdims=True)
    c = (rng.random(n)[:, None] > P.cumsum(axis=1)).sum(axis=1)
    X = rng.normal(size=(n, 1))
    y = BETA[c, 0] + BETA[c, 1] * X[:, 0] + rng.normal(size=n) * SIGMA[c]
    return X, y, Z


def stream(model, X, y, Z, rows, start=0, stop=None):
    stop = len(y) if stop is None else stop
    for k in range(start, stop, rows):
        model.partial_fit(X[k:k + rows], y[k:k + rows], concomitant=Z[k:k + rows],
                          batch_id=("s", k))
    return model


@pytest.mark.slow
def test_one_pass_over_a_million_rows_lands_within_three_se_of_the_generating_model():
    X, y, Z = gated_data(1_000_000, seed=1)
    model = stream(MixtureOfLinearRegressions(3, random_state=0), X, y, Z, 10_000)
    assert model.n_rows_ == 1_000_000 and model.concomitant_coef_.shape == (3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the score gap: online EM is not at the MLE
        model.compute_se(ArraySource(X, y, concomitant=Z))
    order = [int(np.argmin(np.abs(BETA[:, 0] - b))) for b in model.intercept_]
    gate_true = permute_gate(GATE, order)
    gate_z = (model.concomitant_coef_ - gate_true)[1:] / model.bse_["concomitant"][1:]
    beta_z = (np.column_stack([model.intercept_, model.coef_]) - BETA[order]) \
        / model.bse_["coef"]
    assert np.all(np.abs(gate_z) < 3), gate_z
    assert np.all(np.abs(beta_z) < 3), beta_z
    np.testing.assert_allclose(model.sigma_, SIGMA[order], rtol=0.01)
    # predictions use the online gate
    np.testing.assert_allclose(model.predict_weights(Z[:5]).sum(axis=1), 1.0)
    mean = model.predict(X[:5], concomitant=Z[:5])
    means = model.intercept_ + X[:5] @ model.coef_.T
    np.testing.assert_allclose(mean, np.sum(means * model.predict_weights(Z[:5]), axis=1))


def test_state_round_trips_through_json_and_resumes_exactly():
    X, y, Z = gated_data(30_000, seed=2)
    full = stream(MixtureOfLinearRegressions(3, random_state=3, average=5), X, y, Z, 1000)
    part = stream(MixtureOfLinearRegressions(3, random_state=3, average=5), X, y, Z, 1000,
                  stop=13_000)
    text = json.dumps(part.online_.to_dict(), allow_nan=False)
    resumed = MixtureOfLinearRegressions(3, random_state=3, average=5)
    resumed.online_ = state_from_dict(json.loads(text))
    assert isinstance(resumed.online_, OnlineGatedEM)
    resumed.n_features_in_ = 1
    stream(resumed, X, y, Z, 1000)  # the first 13 batches are in the ledger and skipped
    assert resumed.online_.n_batches == full.online_.n_batches == 30
    np.testing.assert_allclose(resumed.concomitant_coef_, full.concomitant_coef_, rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(resumed.coef_, full.coef_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(resumed.weights_, full.weights_, rtol=0, atol=1e-12)
    assert resumed.concomitant_names_ == full.concomitant_names_ == ["z0", "z1"]
    assert resumed.loglik_ == pytest.approx(full.loglik_, rel=1e-12)


def test_the_same_batches_give_identical_results_twice():
    X, y, Z = gated_data(20_000, seed=3)
    Zf = pd.DataFrame(Z, columns=["age", "income"])
    runs = []
    for _ in range(2):
        model = MixtureOfLinearRegressions(3, random_state=5)
        for k in range(0, 20_000, 2000):
            model.partial_fit(X[k:k + 2000], y[k:k + 2000], concomitant=Zf.iloc[k:k + 2000])
        runs.append(model)
    a, b = runs
    assert np.array_equal(a.concomitant_coef_, b.concomitant_coef_)
    assert a.params_ == b.params_
    assert a.concomitant_names_ == ["age", "income"]
    assert a.concomitant_coef_[0].tolist() == [0.0, 0.0, 0.0]


def test_bad_concomitant_blocks_are_refused_clearly():
    X, y, Z = gated_data(3000, seed=4)
    model = MixtureOfLinearRegressions(3, random_state=0)
    bad = pd.DataFrame(Z.copy(), columns=["age", "income"])
    bad.iloc[7, 1] = np.nan
    with pytest.raises(DataError, match=r"income.*row 7|row 7.*income"):
        model.partial_fit(X[:1000], y[:1000], concomitant=bad.iloc[:1000])
    assert not hasattr(model, "online_")
    model.partial_fit(X[:1000], y[:1000], concomitant=Z[:1000])
    with pytest.raises(DataError, match=r"\(1000, 3\).*2 concomitant"):
        model.partial_fit(X[1000:2000], y[1000:2000],
                          concomitant=np.column_stack([Z[1000:2000], Z[1000:2000, 0]]))
    with pytest.raises(DataError, match="started with 2 concomitant.*pass concomitant"):
        model.partial_fit(X[1000:2000], y[1000:2000])
    with pytest.raises(DataError, match="500 rows but concomitant has 1000"):
        model.partial_fit(X[1000:1500], y[1000:1500], concomitant=Z[1000:2000])
    assert model.online_.n_batches == 1  # nothing was consumed by the refused batches
    plain = MixtureOfLinearRegressions(3, random_state=0).partial_fit(X[:1000], y[:1000])
    with pytest.raises(DataError, match="started without concomitant"):
        plain.partial_fit(X[1000:2000], y[1000:2000], concomitant=Z[1000:2000])
    with pytest.raises(ValueError, match="polish is not available with concomitant"):
        model.polish(X, y)


def test_the_online_gate_is_saved_counted_and_continues_a_batch_fit(tmp_path):
    X, y, Z = gated_data(12_000, seed=6)
    model = stream(MixtureOfLinearRegressions(3, random_state=0), X, y, Z, 2000)
    assert model.n_parameters() == 3 * 4 - 1 + 2 * 2  # + (m − 1) q gate slopes, as flexmix
    model.save(tmp_path / "m.json")
    back = MixtureOfLinearRegressions.load(tmp_path / "m.json")
    np.testing.assert_array_equal(back.concomitant_coef_, model.concomitant_coef_)
    np.testing.assert_array_equal(back.predict_weights(Z[:4]), model.predict_weights(Z[:4]))
    # partial_fit after a batch fit with the same concomitant variables starts from its gate
    fitted = MixtureOfLinearRegressions(3, random_state=0, tol=1e-2).fit(
        X[:6000], y[:6000], concomitant=Z[:6000])
    start = fitted.concomitant_coef_.copy()
    with pytest.raises(ValueError, match=r"fitted with concomitant variables \['z0', 'z1'\]"):
        fitted.partial_fit(X[6000:8000], y[6000:8000])
    with pytest.raises(DataError, match=r"\(2000, 1\); the model was fitted with 2"):
        fitted.partial_fit(X[6000:8000], y[6000:8000], concomitant=Z[6000:8000, :1])
    assert not hasattr(fitted, "online_")
    fitted.partial_fit(X[6000:8000], y[6000:8000], concomitant=Z[6000:8000])
    assert fitted.online_.n_batches == 1 and isinstance(fitted.online_, OnlineGatedEM)
    assert np.abs(fitted.concomitant_coef_ - start).max() < 0.2
    assert not np.array_equal(fitted.concomitant_coef_, np.zeros_like(start))


def test_run_stream_refuses_a_model_with_a_gate():
    from streammix.data.streams import StreamBatch
    from streammix.estimator.streaming import run_stream

    X, y, Z = gated_data(3000, seed=7)
    model = stream(MixtureOfLinearRegressions(3, random_state=0), X, y, Z, 1000)
    batch = StreamBatch(X, y, np.ones(3000), "k", 0, ("x0",))
    with pytest.raises(ValueError, match="do not carry concomitant variables"):
        run_stream(model, [batch])
    assert model.online_.n_batches == 3


def test_a_corrupt_gate_record_names_its_field():
    from streammix.exceptions import RecordError

    X, y, Z = gated_data(3000, seed=8)
    model = stream(MixtureOfLinearRegressions(3, random_state=0), X, y, Z, 1000)
    record = json.loads(json.dumps(model.online_.to_dict()))
    record["gate"]["hess"] = record["gate"]["hess"][:-1]
    with pytest.raises(RecordError, match=r"gate\.hess"):
        state_from_dict(record)
    record = json.loads(json.dumps(model.online_.to_dict()))
    record["gate"]["names"] = ["z0"]
    with pytest.raises(RecordError, match=r"gate\.names.*1 names for 2"):
        state_from_dict(record)
