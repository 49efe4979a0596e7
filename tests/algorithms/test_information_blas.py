"""The numpy information pass (blocked level-3 BLAS) against the implementation it
replaced, kept here verbatim as the reference (per-component loops, one GEMM per
component on its non-zero score columns), and the compiled kernel against both.

All comparisons are to 1e-12 of the scale of each statistic, as the E-step's.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.mixtures import information_problem, make_mixture

from streammix import MixtureOfLinearRegressions
from streammix.algorithms import information
from streammix.algorithms.information import InfoStats, information_stats
from streammix.algorithms.parameter_layout import ParameterLayout
from streammix.core import kernel
from streammix.core.params import MixtureParams
from streammix.core.stats import log_responsibilities


def _reference_block(X, y, w, params: MixtureParams, layout: ParameterLayout) -> InfoStats:
    m = params.n_components
    P = layout.size
    ll, log_resp, R = log_responsibilities(X, y, params)
    # Responsibilities below e^-600 add nothing visible in float64 but their products
    # are subnormal numbers, which make the GEMMs below many times slower.
    gamma = np.where(log_resp > -600.0, np.exp(log_resp), 0.0)
    wg = w[:, None] * gamma
    n = X.shape[0]
    pi_tail = params.weights[1:]
    bidx, eidx, aidx = layout.beta_index, layout.eta_index, layout.alpha_index

    S = np.zeros((n, P))
    louis = np.zeros((P, P))
    if m > 1:
        S[:, aidx] = gamma[:, 1:] - pi_tail
        # Σ_j γ_ij B_ij on the logits does not depend on j: N (diag π̃ − π̃π̃ᵀ).
        louis[np.ix_(aidx, aidx)] += w.sum() * (np.diag(pi_tail) - np.outer(pi_tail, pi_tail))
    for j in range(m):
        inv_s2 = 1.0 / params.sigma2[j]
        r = R[:, j]
        g = wg[:, j]
        rx = X * (r * inv_s2)[:, None]
        blocks = [rx]
        idx = [bidx[j]]
        cols = slice(bidx[j][0], bidx[j][-1] + 1)  # β_j is a contiguous run of columns
        S[:, cols] += gamma[:, j, None] * rx
        if eidx is not None:
            u_eta = r * r * inv_s2 - 1.0
            S[:, eidx[j]] += gamma[:, j] * u_eta
            blocks.append(u_eta[:, None])
            idx.append([eidx[j]])
        if m > 1:
            e_j = -np.broadcast_to(pi_tail, (n, m - 1)).copy()
            if j > 0:
                e_j[:, j - 1] += 1.0
            blocks.append(e_j)
            idx.append(aidx)
        U = np.concatenate(blocks, axis=1)
        full = np.concatenate([np.asarray(i, dtype=np.intp) for i in idx])
        # − Σ w γ s_ij s_ijᵀ on the indices where s_ij is non-zero (no repeats for one j)
        louis[np.ix_(full, full)] -= (U * g[:, None]).T @ U
        # + Σ w γ B_ij on the β_j (and η) block
        bj = bidx[j]
        Xg = X * g[:, None]
        louis[np.ix_(bj, bj)] += (Xg.T @ X) * inv_s2
        if eidx is not None:
            cross = 2.0 * inv_s2 * (Xg.T @ r)
            louis[bj, eidx[j]] += cross
            louis[eidx[j], bj] += cross
            louis[eidx[j], eidx[j]] += 2.0 * inv_s2 * float(g @ (r * r))
    Sw = S * w[:, None]
    return InfoStats(Sw.sum(axis=0), Sw.T @ S, louis, float(w @ ll), float(w.sum()), int(n))


def _assert_info_close(a: InfoStats, b: InfoStats, rtol: float = 1e-12) -> None:
    for name in ("score", "opg", "louis", "loglik", "sum_w"):
        x, ref = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
        if name == "score":  # a sum of signed terms: measure against the OPG's scale
            scale = max(scale, float(np.sqrt(np.max(np.diag(b.opg)) * b.sum_w)))
        np.testing.assert_allclose(x, ref, rtol=0, atol=rtol * scale, err_msg=name)
    assert a.n_rows == b.n_rows


@pytest.mark.parametrize("noise", ["per_component", "shared", "fixed"])
@pytest.mark.parametrize("p,m", [(1, 1), (1, 3), (5, 3), (3, 2), (7, 4)])
@pytest.mark.parametrize("intercept", [True, False])
def test_blas_pass_equals_the_reference(kernel_switch, monkeypatch, noise, p, m, intercept):
    rng = np.random.default_rng(100 * p + 10 * m + intercept)
    X, y, w, params = information_problem(rng, 3001, p, m, noise, intercept)
    layout = ParameterLayout(m, p, noise)
    ref = _reference_block(X, y, w, params, layout)
    kernel_switch(False)
    _assert_info_close(information_stats(X, y, w, params, noise), ref)
    monkeypatch.setattr(information, "BLOCK_ELEMENTS", 700)  # many blocks of >= 64 rows
    _assert_info_close(information_stats(X, y, w, params, noise), ref)
    ones = np.ones(len(y))  # no weights
    _assert_info_close(information_stats(X, y, ones, params, noise),
                       _reference_block(X, y, ones, params, layout))
    if kernel.available():
        kernel_switch(True)
        _assert_info_close(information_stats(X, y, w, params, noise), ref)


@pytest.mark.parametrize("kw", [dict(noise="per_component"), dict(noise="shared"),
                                dict(noise="fixed", sigma=(1.0, 0.7)),
                                dict(fit_intercept=False), dict(fixed=["x1"])])
def test_compute_se_equals_the_reference_chunked_and_in_memory(kernel_switch, monkeypatch, kw):
    X, y, _ = make_mixture(2000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=5)
    w = np.random.default_rng(1).uniform(0.0, 2.0, size=len(y))
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-10, max_iter=2000, **kw)
    model.fit(X, y, w)
    kernel_switch(False)
    with monkeypatch.context() as patch:
        patch.setattr(information, "_information_block", _reference_block)
        model.compute_se(X, y, w)
    ref = model.vcov_.copy()
    scale = np.max(np.abs(ref))
    runs = [(False, 10_000), (False, 37)] + [(True, 10_000), (True, 37)] * kernel.available()
    for on, rows in runs:
        kernel_switch(on)
        model.set_params(chunk_rows=rows)
        model.compute_se(X, y, w)
        assert np.max(np.abs(model.vcov_ - ref)) <= 1e-10 * scale, (on, rows)


@pytest.mark.parametrize("intercept", [True, False])
def test_task_design_by_columns_equals_the_row_major_design(kernel_switch, intercept):
    # InformationTask copies an F-ordered chunk column by column; the statistics are
    # those of the C-ordered design matrix (bit for bit with the kernel).
    from streammix.algorithms.information import InformationTask
    from streammix.core.stats import design_matrix
    from streammix.data.arrays import ArraySource
    rng = np.random.default_rng(7)
    X, y, w = rng.normal(size=(1500, 3)), rng.normal(size=1500), rng.uniform(0, 2, 1500)
    p = 3 + intercept
    params = MixtureParams(np.array([0.6, 0.4]), rng.normal(size=(2, p)), np.array([1.0, 2.0]))
    chunk = ArraySource(X, y, w).read((0, 1500))
    for on in [False] + [True] * kernel.available():
        kernel_switch(on)
        got = InformationTask(params, intercept, "per_component")(chunk)
        ref = information_stats(design_matrix(chunk.X, intercept), chunk.y, chunk.w, params,
                                "per_component")
        _assert_info_close(got, ref)
        if on:
            assert np.array_equal(got.opg, ref.opg) and np.array_equal(got.louis, ref.louis)
