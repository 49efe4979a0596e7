"""Standard errors: Louis' observed information, OPG and sandwich.

The formulas are those of the mathematics page (docs/mathematics.rst), §6.

References used here, each independent of the code under test:

* a finite-difference Hessian of the log-likelihood (computed from
  ``log_responsibilities`` alone, never from the score code);
* ordinary least squares formulas for a one-component model;
* flexmix's ``refit()`` vcov on NPreg (R, BFGS Hessian);
* the frequentist coverage of the intervals over simulated data sets.
"""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
from support import FIXTURES
from support.mixtures import make_mixture

from streammix import ConvergenceWarning, InProcessEngine, MixtureOfLinearRegressions
from streammix.algorithms.information import (
    InformationTask,
    InfoStats,
    covariance,
    information_stats,
    standard_errors,
)
from streammix.algorithms.parameter_layout import ParameterLayout, transform_matrix
from streammix.core.params import MixtureParams
from streammix.core.reduce import tree_sum
from streammix.core.stats import design_matrix, log_responsibilities
from streammix.data.arrays import ArraySource
from streammix.exceptions import InferenceWarning

R_FIXTURES = FIXTURES / "r"
REFERENCE = json.loads((R_FIXTURES / "reference_fits.json").read_text())
Z975 = 1.959963984540054


@pytest.fixture(scope="module")
def three_components():
    X, y, _ = make_mixture(150, [0.3, 0.3, 0.4], [-3.0, 0.0, 3.0],
                           [[2.0, -1.0], [0.5, 0.5], [-1.0, 0.5]], [1.0, 0.8, 0.7], seed=3)
    w = np.random.default_rng(1).integers(1, 4, size=len(y)).astype(float)
    return design_matrix(X, True), y, w


def _params_for(noise):
    sigma2 = [1.1, 0.7, 0.6] if noise != "shared" else [0.8, 0.8, 0.8]
    return MixtureParams([0.25, 0.35, 0.4],
                         [[-2.8, 1.9, -1.1], [0.1, 0.4, 0.6], [3.1, -0.9, 0.4]], sigma2)


def working_vector(layout, params):
    """The working parameters θ of ``params`` in ``layout`` (the inverse of layout.params)."""
    theta = np.zeros(layout.size)
    theta[layout.beta_index.ravel()] = params.beta.ravel()
    if layout.eta_index is not None:
        theta[layout.eta_index] = 0.5 * np.log(params.sigma2)
    logw = np.log(params.weights)
    theta[layout.alpha_index] = logw[1:] - logw[0]
    return theta


def _fd_hessian(f, theta, h):
    """Central second differences of a scalar function (4-point stencil off the diagonal)."""
    P = theta.size
    H = np.zeros((P, P))
    f0 = f(theta)
    E = np.eye(P) * h
    for a in range(P):
        H[a, a] = (f(theta + 2 * E[a]) - 2 * f0 + f(theta - 2 * E[a])) / (4 * h * h)
        for b in range(a):
            H[a, b] = H[b, a] = (f(theta + E[a] + E[b]) - f(theta + E[a] - E[b])
                                 - f(theta - E[a] + E[b]) + f(theta - E[a] - E[b])) / (4 * h * h)
    return H


@pytest.mark.parametrize("noise", ["per_component", "shared", "fixed"])
def test_louis_equals_finite_difference_hessian(three_components, noise):
    """Louis' formula is the exact observed information at any θ (here not the MLE)."""
    Xd, y, w = three_components
    params = _params_for(noise)
    layout = ParameterLayout(3, 3, noise)
    theta = working_vector(layout, params)

    def loglik(t):
        return float(w @ log_responsibilities(Xd, y, layout.params(t, params.sigma2))[0])

    stats = information_stats(Xd, y, w, params, noise)
    hess = -_fd_hessian(loglik, theta, 1e-4)
    scale = np.max(np.abs(hess))
    assert np.max(np.abs(stats.observed - hess)) <= 1e-5 * scale
    # and the accumulated score is the gradient
    grad = np.array([(loglik(theta + 1e-6 * e) - loglik(theta - 1e-6 * e)) / 2e-6
                     for e in np.eye(layout.size)])
    np.testing.assert_allclose(stats.score, grad, rtol=1e-5, atol=1e-5 * np.max(np.abs(grad)))
    assert stats.loglik == pytest.approx(loglik(theta), rel=1e-13)


def test_layout_round_trip_and_names():
    params = _params_for("per_component")
    for noise, size in [("per_component", 14), ("shared", 12), ("fixed", 11)]:
        layout = ParameterLayout(3, 3, noise)
        assert layout.size == size
        back = layout.params(working_vector(layout, params), params.sigma2)
        np.testing.assert_allclose(back.weights, params.weights, rtol=1e-14)
        np.testing.assert_allclose(back.beta, params.beta)
        names = layout.names(["(intercept)", "a", "b"])
        assert len(set(names)) == size and "" not in names
    assert ParameterLayout(3, 3, "per_component").names(["(intercept)", "a", "b"])[:4] == [
        "comp1:(intercept)", "comp1:a", "comp1:b", "comp1:log_sigma"]
    assert ParameterLayout(3, 3, "shared").names(["i", "a", "b"])[9:] == [
        "log_sigma", "comp2:logit_weight", "comp3:logit_weight"]


@pytest.mark.parametrize("noise", ["per_component", "fixed"])
def test_one_component_reduces_to_least_squares(noise):
    """m = 1: the coefficient covariance is σ² (XᵀWX)⁻¹, and SE(log σ̂) = 1/√(2N)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 2))
    y = 1.0 + X @ [2.0, -1.0] + rng.normal(scale=0.5, size=400)
    w = rng.integers(1, 3, size=400).astype(float)
    kw = {"sigma": 0.5} if noise == "fixed" else {}
    model = MixtureOfLinearRegressions(1, noise=noise, tol=1e-10, **kw).fit(X, y, w, se=True)
    Xd = design_matrix(X, True)
    sigma2 = model.sigma_[0] ** 2
    np.testing.assert_allclose(model.vcov_[:3, :3],
                               sigma2 * np.linalg.inv(Xd.T @ (Xd * w[:, None])), rtol=1e-8)
    if noise == "fixed":
        assert model.vcov_.shape == (3, 3) and np.isnan(model.bse_["log_sigma"][0])
    else:
        assert model.bse_["log_sigma"][0] == pytest.approx(1 / np.sqrt(2 * w.sum()), rel=1e-8)
        assert model.bse_["sigma"][0] == pytest.approx(model.sigma_[0] / np.sqrt(2 * w.sum()),
                                                       rel=1e-8)
    for method in ("opg", "sandwich"):  # consistent for a correct model
        model.compute_se(X, y, w, method=method)
        np.testing.assert_allclose(model.bse_["coef"], np.sqrt(np.diag(
            sigma2 * np.linalg.inv(Xd.T @ (Xd * w[:, None]))))[None, :], rtol=0.2)


def _npreg():
    data = np.genfromtxt(R_FIXTURES / "npreg.csv", delimiter=",", names=True)
    return np.column_stack([data["x"], data["x"] ** 2]), data["yn"]


@pytest.fixture(scope="module")
def npreg_mle():
    """streammix at the MLE of NPreg (as test_r_reference's npreg_mixtools_arbvar)."""
    X, y = _npreg()
    model = MixtureOfLinearRegressions(2, n_init=5, random_state=0, tol=1e-11,
                                       max_iter=5000).fit(X, y, se=True)
    ref = REFERENCE["npreg_mixtools_arbvar"]
    assert model.loglik_ == pytest.approx(ref["polished"]["loglik"], rel=1e-9)
    return model, X, y


def test_se_agree_with_flexmix_refit(npreg_mle):
    """Same vcov as flexmix's refit() (BFGS Hessian in the same parametrisation)."""
    model, X, y = npreg_mle
    ref = REFERENCE["npreg_flexmix_refit"]
    assert ref["component_order"] == [1, 2]  # flexmix's components are in intercept order
    # flexmix's component 1 is the baseline of its logit: align ours to flexmix's order
    names = ref["vcov_names"]
    beta = np.array([ref["refit_coef"][0:3], ref["refit_coef"][4:7]])
    flex = MixtureParams([0.5, 0.5], beta, np.exp(2 * np.array(ref["refit_coef"][3:8:4])))
    aligned = model.aligned_to(flex)
    assert aligned.intercept_[0] < aligned.intercept_[1]
    assert [n.split(":")[1] for n in aligned.vcov_names_] == [
        "(intercept)", "x0", "x1", "log_sigma"] * 2 + ["logit_weight"]
    assert len(names) == 9
    V_ref = np.asarray(ref["vcov"])
    se_ref = np.sqrt(np.diag(V_ref))
    se = np.sqrt(np.diag(aligned.vcov_))
    np.testing.assert_allclose(se, se_ref, rtol=0.02)
    # the coefficient SEs flexmix lists per component, and all correlations
    for j, comp in enumerate(ref["se"]):
        np.testing.assert_allclose(aligned.bse_["coef"][j], comp["se"], rtol=0.02)
    corr = aligned.vcov_ / np.outer(se, se)
    np.testing.assert_allclose(corr, V_ref / np.outer(se_ref, se_ref), atol=0.02)
    # the baseline of the logit changed with the order, its SE did not
    assert aligned.bse_["logit_weight"][1] == pytest.approx(model.bse_["logit_weight"][1])


def test_aligned_vcov_equals_information_at_permuted_parameters(npreg_mle):
    model, X, y = npreg_mle
    swapped = model.aligned_to(model.params_.permute([1, 0]))
    assert np.array_equal(swapped.params_.beta, model.params_.beta[[1, 0]])
    V_moved = swapped.vcov_.copy()
    swapped.compute_se(X, y)  # recomputed from the data at the permuted parameters
    np.testing.assert_allclose(V_moved, swapped.vcov_, rtol=1e-7, atol=1e-12)
    assert model.vcov_[0, 0] != swapped.vcov_[0, 0]  # the original is untouched
    layout = ParameterLayout(3, 3, "per_component")
    T = transform_matrix(ParameterLayout(3, 3, "per_component"), [2, 0, 1])
    params = _params_for("per_component")
    np.testing.assert_allclose(working_vector(layout, params.permute([2, 0, 1])),
                               T @ working_vector(layout, params), atol=1e-14)


def test_three_methods_agree_for_a_correct_model():
    X, y, _ = make_mixture(4000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=11)
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-9).fit(X, y, se=True)
    louis = {k: v.copy() for k, v in model.bse_.items()}
    assert model.score_gap_ < 1e-6
    for method in ("opg", "sandwich"):
        model.compute_se(X, y, method=method)
        assert model.se_method_ == method
        for key in ("coef", "log_sigma", "weight"):
            np.testing.assert_allclose(model.bse_[key], louis[key], rtol=0.15)


def test_shared_noise_has_one_log_sigma():
    X, y, _ = make_mixture(1500, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [0.8, 0.8], seed=4)
    model = MixtureOfLinearRegressions(2, noise="shared", random_state=0, tol=1e-9)
    model.fit(X, y, se="louis")
    assert model.vcov_.shape == (8, 8)
    assert model.vcov_names_.count("log_sigma") == 1
    assert model.bse_["log_sigma"][0] == model.bse_["log_sigma"][1] > 0
    # compare with a finite-difference Hessian at the fitted parameters
    layout = ParameterLayout(2, 3, "shared")
    Xd = design_matrix(X, True)

    def loglik(t):
        return float(np.sum(log_responsibilities(Xd, y, layout.params(t))[0]))

    hess = -_fd_hessian(loglik, working_vector(layout, model.params_), 1e-4)
    np.testing.assert_allclose(model.vcov_, np.linalg.inv(hess), rtol=1e-4,
                               atol=1e-6 * np.max(np.abs(model.vcov_)))


def test_chunked_and_in_memory_identical():
    X, y, _ = make_mixture(3000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=3)
    w = np.random.default_rng(0).uniform(0.0, 2.0, size=len(y))
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8, chunk_rows=10_000)
    model.fit(X, y, w)
    out = {}
    for method in ("louis", "opg", "sandwich"):
        for rows in (10_000, 37):
            model.set_params(chunk_rows=rows)
            model.compute_se(X, y, w, method=method)
            out[method, rows] = model.vcov_
        a, b = out[method, 10_000], out[method, 37]
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(a))
    # the statistics themselves: any split sums to the whole, in any tree
    task = InformationTask(model.params_, True, "per_component")
    source = ArraySource(X, y, w, chunk_rows=333)
    whole = task(ArraySource(X, y, w, chunk_rows=len(y)).read((0, len(y))))
    parts = tree_sum((task(source.read(d)) for d in source.plan()), InfoStats.zeros(9))
    for name in ("score", "opg", "louis"):
        # the score is ~0 at the MLE: measure it against the size of its summands
        scale = np.max(np.abs(getattr(whole, name))) if name != "score" else np.sqrt(
            np.max(np.diag(whole.opg)) * whole.sum_w)
        assert np.max(np.abs(getattr(whole, name) - getattr(parts, name))) <= 1e-10 * scale
    assert parts.n_rows == len(y) and parts.sum_w == pytest.approx(w.sum(), rel=1e-14)
    threaded = InProcessEngine(n_threads=2).map_reduce(source, task, InfoStats.zeros(9))
    assert np.array_equal(threaded.louis, parts.louis)
    # the map function and its statistics travel to worker processes
    back = pickle.loads(pickle.dumps(task))(source.read(source.plan()[0]))
    assert np.array_equal(back.opg, task(source.read(source.plan()[0])).opg)
    with pytest.raises(ValueError, match="sizes"):
        parts + InfoStats.zeros(4)


def test_row_blocks_inside_a_chunk_change_nothing(monkeypatch, three_components):
    import streammix.algorithms.information as inference

    Xd, y, w = three_components
    params = _params_for("per_component")
    whole = information_stats(Xd, y, w, params, "per_component")
    monkeypatch.setattr(inference, "BLOCK_ELEMENTS", 64 * 14)  # blocks of 64 rows
    blocked = information_stats(Xd, y, w, params, "per_component")
    for name in ("opg", "louis"):
        a, b = getattr(whole, name), getattr(blocked, name)
        assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(a))
    assert blocked.n_rows == whole.n_rows == len(y)


class _DaskEngine:
    """A minimal engine on a distributed cluster: map on the workers, tree-sum here."""

    def __init__(self, client):
        self.client = client

    def map_reduce(self, source, func, zero):
        def run(descriptor, source=source, func=func):
            return func(source.read(descriptor))
        futures = self.client.map(run, source.plan(), pure=False)
        return tree_sum(self.client.gather(futures), zero)


def test_compute_se_on_a_distributed_cluster(two_worker_client):
    from distributed import get_task_stream

    X, y, _ = make_mixture(2000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=8)
    local = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8, chunk_rows=500)
    local.fit(X, y, se=True)
    client = two_worker_client
    remote = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8, chunk_rows=500,
                                        engine=_DaskEngine(client))
    with get_task_stream(client) as stream:
        remote.fit(X, y, se=True)
    workers = {t["worker"] for t in stream.data}  # the passes ran on the workers
    assert workers and workers <= set(client.scheduler_info()["workers"])
    assert np.array_equal(remote.vcov_, local.vcov_)


def test_score_check_warns_away_from_the_mle():
    X, y, _ = make_mixture(2000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=2)
    start = {"weights": [0.5, 0.5], "intercept": [-1.0, 1.0], "coef": [[1.0, 0.0], [0.0, 0.0]],
             "sigma": [2.0, 2.0]}
    with pytest.warns(ConvergenceWarning):
        model = MixtureOfLinearRegressions(2, init=start, max_iter=2).fit(X, y)
    with pytest.warns(InferenceWarning, match="not the maximum-likelihood"):
        model.compute_se(X, y)
    assert model.score_gap_ > 1.0


def test_compute_se_errors_and_persistence(tmp_path):
    X, y, _ = make_mixture(1000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=6)
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8)
    with pytest.raises(ValueError, match="not fitted"):
        model.compute_se(X, y)
    with pytest.raises(ValueError, match="se must be"):
        model.fit(X, y, se="bootstrap")
    model.fit(X, y)
    assert not hasattr(model, "vcov_")
    with pytest.raises(ValueError, match="method must be one of"):
        model.compute_se(X, y, method="hessian")
    with pytest.raises(ValueError, match="3 features"):
        model.compute_se(np.column_stack([X, X[:, 0]]), y)
    model.compute_se(X, y, method="sandwich")
    model.save(tmp_path / "m.json")
    loaded = MixtureOfLinearRegressions.load(tmp_path / "m.json")
    assert np.array_equal(loaded.vcov_, model.vcov_) and loaded.se_method_ == "sandwich"
    assert loaded.vcov_names_ == model.vcov_names_
    for key, value in model.bse_.items():
        np.testing.assert_array_equal(loaded.bse_[key], value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(X, y)  # a refit forgets the old standard errors
    assert not hasattr(model, "vcov_")


TRUTH = {"weights": [0.6, 0.4], "intercept": [2.0, -2.0], "coef": [[1.0, -1.0], [-1.0, 1.0]],
         "sigma": [1.0, 1.5]}


@pytest.mark.slow
def test_interval_coverage():
    """95% Wald intervals cover the true coefficients 93–97% of the time.

    400 data sets, n = 2000, 2 features plus intercept, 2 well separated
    components.  EM starts from the truth only to save iterations: with
    components this far apart the likelihood has one dominant maximum near
    the truth, which EM reaches from any reasonable start; coverage is a
    property of that maximum (the MLE) and its standard errors, not of the
    path to it.  Components are matched to the truth by label alignment.
    """
    truth = MixtureParams(TRUTH["weights"],
                          np.column_stack([TRUTH["intercept"], TRUTH["coef"]]),
                          np.square(TRUTH["sigma"]))
    hits = {"louis": [], "opg": [], "sandwich": []}
    sigma_hits = []
    for seed in range(400):
        X, y, _ = make_mixture(2000, TRUTH["weights"], TRUTH["intercept"], TRUTH["coef"],
                               TRUTH["sigma"], seed=1000 + seed)
        model = MixtureOfLinearRegressions(2, init=TRUTH, tol=1e-7, init_sample_size=10)
        model.fit(X, y, se=True)
        for method in hits:
            if method != "louis":
                model.compute_se(X, y, method=method)
            fit = model.aligned_to(truth)
            beta = np.column_stack([fit.intercept_, fit.coef_])
            hits[method].append(np.abs(beta - truth.beta) <= Z975 * fit.bse_["coef"])
            if method == "louis":
                log_ratio = np.log(fit.sigma_ / np.sqrt(truth.sigma2))
                sigma_hits.append(np.abs(log_ratio) <= Z975 * fit.bse_["log_sigma"])
    coverage = {k: float(np.mean(v)) for k, v in hits.items()}
    assert 0.93 <= coverage["louis"] <= 0.97, coverage
    assert 0.93 <= coverage["sandwich"] <= 0.97, coverage
    assert 0.92 <= coverage["opg"] <= 0.98, coverage
    assert 0.92 <= float(np.mean(sigma_hits)) <= 0.98


def test_information_that_is_not_positive_definite_warns():
    stats = InfoStats(np.zeros(2), np.eye(2), np.array([[-3.0, 0.0], [0.0, 1.0]]), 0.0, 1.0, 1)
    with pytest.warns(InferenceWarning, match="not positive definite"):
        V = covariance(stats, "louis")
    assert V[1, 1] == pytest.approx(0.5) and V[0, 0] < 0  # reported as a NaN standard error
    layout = ParameterLayout(1, 1, "per_component")
    params = MixtureParams([1.0], [[0.0]], [1.0])
    se = standard_errors(V, layout, params)
    assert np.isnan(se["coef"][0, 0]) and se["log_sigma"][0] == pytest.approx(np.sqrt(0.5))
    with pytest.raises(ValueError, match="method must be one of"):
        covariance(stats, "bootstrap")


def _louis_by_index_grids(lgram, lvec, scal, params, layout, sum_w):
    """Louis' part from the pass's sums, written with ``np.ix_`` index grids (the
    form _louis_from_sums had before it addressed blocks by slices)."""
    m, P = params.n_components, layout.size
    bidx, eidx, aidx = layout.beta_index, layout.eta_index, layout.alpha_index
    pi_tail = params.weights[1:]
    louis = np.zeros((P, P))
    if m > 1:
        louis[np.ix_(aidx, aidx)] += sum_w * (np.diag(pi_tail) - np.outer(pi_tail, pi_tail))
    for j in range(m):
        bj = bidx[j]
        louis[np.ix_(bj, bj)] += lgram[j]
        if eidx is not None:
            louis[bj, eidx[j]] += lvec[j]
            louis[eidx[j], bj] += lvec[j]
            louis[eidx[j], eidx[j]] += scal[j]
        if m > 1:
            f = -pi_tail.copy()
            if j > 0:
                f[j - 1] += 1.0
            ba = np.outer(lvec[m + j], f)
            louis[np.ix_(bj, aidx)] -= ba
            louis[np.ix_(aidx, bj)] -= ba.T
            if eidx is not None:
                louis[eidx[j], aidx] -= scal[m + j] * f
                louis[aidx, eidx[j]] -= scal[m + j] * f
            louis[np.ix_(aidx, aidx)] -= scal[2 * m + j] * np.outer(f, f)
    return louis


@pytest.mark.parametrize("noise", ["per_component", "shared", "fixed"])
@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_louis_part_from_slices_is_that_of_index_grids_to_the_bit(noise, m):
    from streammix.algorithms.information import _louis_from_sums

    rng = np.random.default_rng(m)
    for p in (1, 2, 6):
        layout = ParameterLayout(m, p, noise)
        for _ in range(20):
            weights = rng.dirichlet(np.ones(m))
            params = MixtureParams(weights, rng.normal(size=(m, p)), rng.uniform(0.5, 2, m))
            lgram = rng.normal(size=(m, p, p))
            lvec, scal = rng.normal(size=(2 * m, p)), rng.normal(size=3 * m + 1)
            sum_w = float(rng.uniform(1, 1e4))
            got = _louis_from_sums(lgram, lvec, scal, params, layout, sum_w)
            want = _louis_by_index_grids(lgram, lvec, scal, params, layout, sum_w)
            assert np.array_equal(got, want)
            assert np.count_nonzero(got) > 0


@pytest.mark.parametrize("noise", ["per_component", "shared", "fixed"])
def test_information_pass_reads_c_ordered_and_strided_rows_to_the_same_bits(noise):
    from streammix.core.chunk import Chunk

    rng = np.random.default_rng(5)
    for d, n in ((1, 40), (3, 1000), (8, 777), (13, 1500), (20, 301)):
        m = 3
        X, y, w = rng.normal(size=(n, d)), 3 * rng.normal(size=n), rng.uniform(0, 2, n)
        params = MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, d + 1)),
                               rng.uniform(0.5, 3, m))
        task = InformationTask(params, True, noise)
        want = task(Chunk(np.asfortranarray(X), y, w, "array", 0))
        wide = np.ascontiguousarray(np.hstack([X, X]))[:, :d]  # rows 2d apart
        for Xv in (np.ascontiguousarray(X), wide):
            got = task(Chunk(Xv, y, w, "array", 0))
            for name in ("score", "opg", "louis"):
                assert np.array_equal(getattr(got, name), getattr(want, name)), (d, name)
            assert got.loglik == want.loglik
