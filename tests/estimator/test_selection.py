"""Choosing the number of components in shared scans."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from support.mixtures import make_mixture
from support.sources import CountingSource

from streammix import MixtureOfLinearRegressions, select_components
from streammix.data.arrays import ArraySource

TRUE = dict(weights=[0.3, 0.3, 0.4], intercepts=[-6, 0, 6], coefs=[[1, -1], [0, 1], [-1, 0.5]],
            sigmas=[1, 1, 1])


def _data(n, seed):
    return make_mixture(n, TRUE["weights"], TRUE["intercepts"], TRUE["coefs"], TRUE["sigmas"],
                        seed=seed)


def test_bic_finds_the_true_number_of_components():
    hits = 0
    for seed in range(10):
        X, y, _ = _data(600, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dropped components in the k > 3 fits
            result = select_components(X, y, k=range(1, 6), random_state=seed, tol=1e-3,
                                       max_iter=300, accelerate="squarem")
        hits += result.best_k == 3
        assert [row["k"] for row in result.table] == [1, 2, 3, 4, 5]
        assert result.model is result.models[result.best_k]
    assert hits >= 9


def test_every_k_in_the_same_scans_equals_separate_fits():
    X, y, _ = _data(1500, 1)
    kw = dict(random_state=3, tol=1e-6, n_init=2, init="random", chunk_rows=250,
              on_collapse="error", cull_restarts=False)
    source = CountingSource(ArraySource(X, y, chunk_rows=250))
    result = select_components(source, k=[1, 2, 3], stop_dominated=False, **kw)
    assert set(source.reads.values()) == {result.n_passes}  # one read per chunk per pass
    separate_passes = 0
    for row in result.table:
        m = row["k"]
        alone = MixtureOfLinearRegressions(m, **kw).fit(X, y)
        separate_passes += alone.n_passes_
        fitted = result.models[m]
        assert fitted.params_.max_abs_diff(alone.params_) <= 1e-10
        assert row["loglik"] == alone.loglik_
        crit = alone.information_criteria()
        assert row["bic"] == pytest.approx(crit["bic"], rel=1e-12)
        assert row["icl"] == pytest.approx(crit["icl"], rel=1e-12)
        assert row["n_parameters"] == m * (3 + 2) - 1  # p = 3 coefficients
        assert row["aic"] == pytest.approx(-2 * row["loglik"] + 2 * row["n_parameters"])
    assert result.n_passes < separate_passes
    assert result.best_k == 3
    frame = result.to_frame()
    assert list(frame.index) == [1, 2, 3] and "bic" in frame.columns
    assert "chosen by bic: k = 3" in str(result)


def test_dominated_k_are_stopped_and_the_choice_is_unchanged():
    X, y, _ = _data(3000, 4)
    kw = dict(random_state=0, tol=1e-4, accelerate="squarem", chunk_rows=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropped components in the k > 3 fits
        full = select_components(X, y, k=range(1, 6), stop_dominated=False, **kw)
        fast = select_components(X, y, k=range(1, 6), **kw)
    assert fast.best_k == full.best_k == 3
    assert fast.n_passes < full.n_passes / 2
    assert fast.model.params_.max_abs_diff(full.model.params_) < 1e-3
    assert fast.model.converged_
    for a, b in zip(fast.table, full.table, strict=True):
        if a["dominated"]:
            assert not a["converged"] and a["k"] != 3
            assert a["bic"] > fast.table[2]["bic"]
        else:
            assert a["loglik"] == pytest.approx(b["loglik"], abs=1e-3)


def test_heldout_loglik_is_scored_on_chunks_the_fits_never_saw():
    X, y, _ = _data(2000, 2)
    result = select_components(X, y, k=[1, 2, 3], holdout=0.25, criterion="heldout",
                               chunk_rows=100, random_state=0, tol=1e-6, on_collapse="error")
    model = result.models[3]
    assert model.n_rows_ == 1500  # 5 of the 20 chunks held out
    # The held-out rows are the ones not in the fit: find them by chunk.
    source = ArraySource(X, y, chunk_rows=100)
    from streammix.estimator.selection import split_chunks
    train, test = split_chunks(source, 0.25, 0)
    assert len(test.plan()) == 5 and not set(test.plan()) & set(train.plan())
    rows = np.concatenate([np.arange(a, b) for a, b in test.plan()])
    for row in result.table:
        expected = result.models[row["k"]].score(X[rows], y[rows])
        assert row["heldout_loglik"] == pytest.approx(expected, rel=1e-12)
    held = [row["heldout_loglik"] for row in result.table]
    assert held[2] > held[1] > held[0]
    assert result.best_k == 3


def test_bad_arguments_are_named():
    X, y, _ = _data(300, 0)
    with pytest.raises(ValueError, match="criterion must be one of"):
        select_components(X, y, criterion="dic")
    with pytest.raises(ValueError, match="needs holdout"):
        select_components(X, y, criterion="heldout")
    with pytest.raises(ValueError, match="as k, not n_components"):
        select_components(X, y, n_components=3)
    with pytest.raises(ValueError, match="at least 2 chunks"):
        select_components(X, y, holdout=0.2)
