"""SuffStats: exact against dense formulas; chunk- and order-invariant sums."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from streammix import MixtureParams, SuffStats, estep
from streammix.core.reduce import tree_sum
from streammix.core.stats import accumulate, design_matrix


def _problem(n=1000, d=3, m=3, seed=0, intercept=True):
    rng = np.random.default_rng(seed)
    X = design_matrix(rng.normal(size=(n, d)), intercept)
    y = rng.normal(size=n) * 3
    w = rng.uniform(0.2, 2.0, size=n)
    p = X.shape[1]
    params = MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, p)),
                           rng.uniform(0.5, 2.0, size=m))
    return X, y, w, params


def _dense(X, y, w, params):
    """The statistics straight from their definitions (n × m × p temporaries)."""
    R = y[:, None] - X @ params.beta.T
    dens = params.weights * np.exp(-R**2 / (2 * params.sigma2)) / np.sqrt(2 * np.pi * params.sigma2)
    lik = dens.sum(1)
    G = dens / lik[:, None]
    WG = w[:, None] * G
    return {
        "s0": WG.sum(0),
        "s2": np.einsum("ij,ik,il->jkl", WG, X, X),
        "rx": np.einsum("ij,ik,ij->jk", WG, X, R),
        "r0": (WG * R**2).sum(0),
        "loglik": float(w @ np.log(lik)),
        "class_loglik": float(w @ np.log(dens.max(1))),
        "entropy": float(-(WG * np.log(G)).sum()),
    }


@pytest.mark.parametrize("intercept", [True, False])
def test_estep_matches_dense_definitions(intercept):
    X, y, w, params = _problem(intercept=intercept)
    st = estep(X, y, w, params)
    ref = _dense(X, y, w, params)
    for key, value in ref.items():
        np.testing.assert_allclose(getattr(st, key), value, rtol=1e-11, atol=1e-9, err_msg=key)
    assert st.sum_w == pytest.approx(w.sum())
    assert st.n_rows == len(y)
    np.testing.assert_array_equal(st.center, params.beta)


def test_far_outlier_gives_finite_responsibilities():
    # A 40-sigma residual underflows exp(); the log-domain E-step must not give 0/0.
    X, y, w, params = _problem(n=10, m=2)
    y = y.copy()
    y[3] = 1e4
    st = estep(X, y, w, params)
    assert np.all(np.isfinite(st.s0)) and np.isfinite(st.loglik)
    assert st.s0.sum() == pytest.approx(w.sum())


@pytest.mark.parametrize("chunk", [1, 7, 64, 333, 1000])
def test_chunked_equals_whole(chunk):
    X, y, w, params = _problem(n=1000)
    whole = estep(X, y, w, params)
    parts = [estep(X[s:s + chunk], y[s:s + chunk], w[s:s + chunk], params)
             for s in range(0, 1000, chunk)]
    total = tree_sum(parts, SuffStats.zeros(3, X.shape[1]))
    assert total.allclose(whole, rtol=1e-10)


def test_any_reduction_order_is_the_same():
    X, y, w, params = _problem(n=600)
    parts = [estep(X[s:s + 100], y[s:s + 100], w[s:s + 100], params) for s in range(0, 600, 100)]
    reference = tree_sum(parts, SuffStats.zeros(3, X.shape[1]))
    rng = np.random.default_rng(1)
    for _ in range(5):
        order = rng.permutation(len(parts))
        left_fold = SuffStats.zeros(3, X.shape[1])
        for k in order:
            left_fold = left_fold + parts[k]
        assert left_fold.allclose(reference, rtol=1e-12)
    a, b, c = parts[:3]
    assert ((a + b) + c).allclose(a + (b + c), rtol=1e-14)


def test_zeros_is_the_identity():
    X, y, w, params = _problem(n=50)
    st = estep(X, y, w, params)
    zero = SuffStats.zeros(3, X.shape[1])
    for combined in (zero + st, st + zero):
        assert combined.allclose(st, rtol=0)
        np.testing.assert_array_equal(combined.center, st.center)
    empty_chunk = estep(X[:0], y[:0], w[:0], params)
    assert (st + empty_chunk).allclose(st, rtol=0)
    assert empty_chunk.n_rows == 0 and empty_chunk.sum_w == 0


def test_statistics_at_different_centres_refuse_to_add():
    X, y, w, params = _problem(n=50)
    other = MixtureParams(params.weights, params.beta + 0.1, params.sigma2)
    with pytest.raises(ValueError, match="common centre"):
        estep(X, y, w, params) + estep(X, y, w, other)


def test_recentre_is_exact():
    X, y, w, params = _problem(n=400)
    st = estep(X, y, w, params)
    new_beta = params.beta + np.random.default_rng(5).normal(scale=0.3, size=params.beta.shape)
    moved = st.recentre(new_beta)
    # Same responsibilities, residuals taken at new_beta:
    R = y[:, None] - X @ new_beta.T
    ref = _dense(X, y, w, params)
    G = ref["s0"]  # noqa: F841  (responsibilities unchanged)
    dens = params.weights * np.exp(-(y[:, None] - X @ params.beta.T) ** 2 / (2 * params.sigma2))
    dens /= np.sqrt(2 * np.pi * params.sigma2)
    WG = w[:, None] * dens / dens.sum(1, keepdims=True)
    np.testing.assert_allclose(moved.rx, np.einsum("ij,ik,ij->jk", WG, X, R), rtol=1e-10)
    np.testing.assert_allclose(moved.r0, (WG * R**2).sum(0), rtol=1e-10)


def test_accumulate_with_hard_labels_gives_group_sums():
    X, y, w, params = _problem(n=300, m=2)
    labels = np.arange(300) % 2
    resp = np.eye(2)[labels]
    st = accumulate(X, y, w, resp, np.zeros((2, X.shape[1])))
    for j in range(2):
        sel = labels == j
        np.testing.assert_allclose(st.s0[j], w[sel].sum())
        np.testing.assert_allclose(st.s2[j], (X[sel] * w[sel, None]).T @ X[sel], rtol=1e-12)
        np.testing.assert_allclose(st.rx[j], (X[sel] * w[sel, None]).T @ y[sel], rtol=1e-12)


def test_block_size_does_not_matter(monkeypatch):
    import streammix.core.stats as stats_module
    X, y, w, params = _problem(n=5000, d=4)
    reference = estep(X, y, w, params)
    for elements in (300, 4096, 1 << 20):
        monkeypatch.setattr(stats_module, "BLOCK_ELEMENTS", elements)
        assert estep(X, y, w, params).allclose(reference, rtol=1e-11)


def test_every_pairing_of_three_chunks_matches():
    X, y, w, params = _problem(n=90)
    parts = [estep(X[s:s + 30], y[s:s + 30], w[s:s + 30], params) for s in (0, 30, 60)]
    whole = estep(X, y, w, params)
    for perm in itertools.permutations(parts):
        assert (perm[0] + perm[1] + perm[2]).allclose(whole, rtol=1e-11)


def test_many_parameter_sets_in_one_sweep_equal_each_on_its_own():
    from streammix.core.stats import estep_features, estep_features_many
    X, y, w, params = _problem(n=20_000, d=4, m=3)
    rng = np.random.default_rng(4)

    def draw(m):
        return MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, X.shape[1])),
                             rng.uniform(0.5, 2.0, size=m))

    FT = np.ascontiguousarray(X[:, 1:].T)
    same_m = [params, draw(3), draw(3)]  # as restarts of one fit: the same blocks
    for prm, st in zip(same_m, estep_features_many(FT, y, w, same_m, True), strict=True):
        assert st.allclose(estep_features(FT, y, w, prm, True), rtol=0)  # bit for bit
    mixed = [params, draw(2), draw(4)]  # as select_components: blocks sized for the largest m
    for prm, st in zip(mixed, estep_features_many(FT, y, w, mixed, True), strict=True):
        assert st.allclose(estep(X, y, w, prm), rtol=1e-12)
