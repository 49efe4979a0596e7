"""Grouped classes (flexmix's ``y ~ x | id``): every row of a group shares one component.

Checked against a plain numpy EM written here from the model's definition
(group log-likelihoods summed over rows, one posterior per group, weights
the mean group posterior): same log-likelihood and parameters; chunking
does not change the fit; batch EM is monotone; a null group id is refused.
"""

from __future__ import annotations

import numpy as np
import pytest

from streammix import DataError, MixtureOfLinearRegressions


def _data(seed=3, n_groups=300):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 16, n_groups)
    ids = np.repeat(np.arange(n_groups), sizes)
    cls = rng.integers(0, 2, n_groups)[ids]
    x = rng.uniform(0, 10, ids.size)
    y = np.where(cls == 0, 1 + 2 * x, 8 - x) + rng.normal(0, 1.5, ids.size)
    perm = rng.permutation(ids.size)  # rows not stored by group
    return x[perm, None], y[perm], ids[perm].astype(str)


def _plain_em(x, y, ids, beta, s2, pi, n_iter):
    _, codes = np.unique(ids, return_inverse=True)
    X = np.column_stack([np.ones_like(x), x])
    G = codes.max() + 1
    for _ in range(n_iter + 1):
        dens = -0.5 * np.log(2 * np.pi * s2) - (y[:, None] - X @ beta.T) ** 2 / (2 * s2)
        L = np.zeros((G, 2))
        np.add.at(L, codes, dens)
        L += np.log(pi)
        ll = np.logaddexp(L[:, 0], L[:, 1])
        g = np.exp(L - ll[:, None])
        r = g[codes]
        pi = g.mean(axis=0)
        for j in range(2):
            W = r[:, j]
            beta[j] = np.linalg.solve(X.T @ (W[:, None] * X), X.T @ (W * y))
            s2[j] = W @ (y - X @ beta[j]) ** 2 / W.sum()
    return ll.sum()


def test_grouped_fit_equals_plain_em_and_is_chunk_invariant():
    X, y, ids = _data()
    model = MixtureOfLinearRegressions(2, accelerate=None, tol=1e-12, max_iter=2000,
                                       random_state=0, chunk_rows=100).fit(X, y, groups=ids)
    assert model.converged_
    hist = np.array([h["loglik"] for h in model.history_])
    assert np.all(np.diff(hist) >= -1e-9 * abs(hist[-1]))
    # a plain EM started at the fit reproduces its log-likelihood (a fixed point)
    ll = _plain_em(X[:, 0], y, ids, np.column_stack([model.intercept_, model.coef_[:, 0]]),
                   model.sigma_ ** 2, model.weights_, 0)
    assert model.loglik_ == pytest.approx(ll, rel=1e-10)
    assert model.n_groups_ == 300
    np.testing.assert_allclose(sorted(model.coef_[:, 0]), [-1, 2], atol=0.05)
    other = MixtureOfLinearRegressions(2, accelerate=None, tol=1e-12, max_iter=2000,
                                       random_state=0, chunk_rows=7).fit(X, y, groups=ids)
    assert other.loglik_ == pytest.approx(model.loglik_, rel=1e-10)
    np.testing.assert_allclose(other.coef_, model.coef_, rtol=1e-8)
    post = model.predict_proba(X, y, groups=ids)
    same = ids == ids[0]
    assert np.allclose(post[same], post[same][0])
    crit = model.information_criteria()
    assert crit["n"] == X.shape[0]  # flexmix's nobs: rows
    assert crit["n_parameters"] == 7  # flexmix df: k (ncol(x) + 1) + k − 1


def test_null_group_id_refused():
    X, y, ids = _data()
    ids = ids.astype(object)
    ids[17] = None
    with pytest.raises(DataError, match="null group id at row 17"):
        MixtureOfLinearRegressions(2).fit(X, y, groups=ids)


def test_standard_errors_are_the_inverse_hessian_of_the_grouped_loglik(tmp_path):
    """Louis' SEs of a grouped fit against the inverse of a finite-difference Hessian of
    the grouped log-likelihood at the fit (working parameters), and the same from a lake."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streammix import ParquetSource
    from streammix.algorithms.parameter_layout import ParameterLayout
    from streammix.core.grouped_estep import group_codes, group_log_posteriors
    from streammix.core.stats import design_matrix

    X, y, ids = _data(n_groups=80)
    kw = dict(tol=1e-10, max_iter=2000, random_state=0, accelerate=None)
    model = MixtureOfLinearRegressions(2, **kw).fit(X, y, groups=ids, se=True)
    layout = ParameterLayout(2, 2, "per_component")
    theta = np.zeros(layout.size)
    params = model.params_
    theta[layout.beta_index] = params.beta
    theta[layout.eta_index] = 0.5 * np.log(params.sigma2)
    theta[layout.alpha_index] = np.log(params.weights[1:] / params.weights[0])
    Xd, codes = design_matrix(X, True), group_codes(ids)

    def loglik(t):
        return group_log_posteriors(Xd, y, codes, layout.params(t))[1].sum()

    h = 1e-4
    eye = np.eye(layout.size) * h
    hess = np.array([[(loglik(theta + a + b) - loglik(theta + a - b) - loglik(theta - a + b)
                       + loglik(theta - a - b)) / (4 * h * h) for b in eye] for a in eye])
    se = np.sqrt(np.diag(np.linalg.inv(-hess)))
    np.testing.assert_allclose(np.sqrt(np.diag(model.vcov_)), se, rtol=1e-3)
    assert model.se_method_ == "louis" and model.bse_["coef"].shape == (2, 2)
    order = np.argsort(ids, kind="stable")  # stored by group, row groups cutting groups
    pq.write_table(pa.table({"x": X[order, 0], "y": y[order], "id": ids[order]}),
                   tmp_path / "lake.parquet", row_group_size=97)
    lake = MixtureOfLinearRegressions(2, init=model.params_, **kw).fit(
        ParquetSource(tmp_path, target="y", features=["x"], groups="id", chunk_rows=97),
        se=True)
    np.testing.assert_allclose(lake.vcov_, model.vcov_, rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError, match="fitted with grouped classes: its standard errors"):
        model.compute_se(X, y)  # row by row: refused, not silently other SEs


def test_group_count_is_saved_and_forgotten_by_a_row_wise_refit(tmp_path):
    X, y, ids = _data(n_groups=60)
    z = np.random.default_rng(0).normal(size=(X.shape[0], 1))
    model = MixtureOfLinearRegressions(2, random_state=0).fit(X, y, concomitant=z)
    model.fit(X, y, groups=ids)  # a grouped refit forgets the earlier gate
    assert not hasattr(model, "concomitant_coef_") and model.n_groups_ == 60
    model.save(tmp_path / "model.json")
    loaded = MixtureOfLinearRegressions.load(tmp_path / "model.json")
    assert loaded.n_groups_ == 60
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    model.fit(X, y)  # row-wise: no group count
    assert not hasattr(model, "n_groups_")


def test_select_components_with_groups_chooses_two(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streammix import ParquetSource, select_components

    X, y, ids = _data(n_groups=80)
    result = select_components(X, y, groups=ids, k=[1, 2, 3], random_state=0)
    assert result.best_k == 2 and [row["k"] for row in result.table] == [1, 2, 3]
    alone = MixtureOfLinearRegressions(2, random_state=0).fit(X, y, groups=ids)
    assert result.table[1]["bic"] == pytest.approx(alone.information_criteria()["bic"],
                                                   rel=1e-12)
    assert result.model.n_groups_ == 80
    pq.write_table(pa.table({"x": X[:, 0], "y": y, "id": ids}), tmp_path / "lake.parquet",
                   row_group_size=200)
    lake = select_components(ParquetSource(tmp_path, target="y", features=["x"], groups="id"),
                             k=[1, 2], random_state=0)
    assert lake.best_k == 2 and lake.model.n_groups_ == 80
    with pytest.raises(ValueError, match="no holdout"):
        select_components(X, y, groups=ids, k=[1, 2], holdout=0.2)
