"""Standard errors of fits with grouped classes: the information pass over whole groups.

The working parameters are those of :mod:`streammix.algorithms.information`
(β_j, η_j = log σ_j, the logits α_j = log(π_j/π_1)).  The latent component
belongs to a group, so the complete-data score of group g in component j is
the sum of its rows' regression scores plus the logit score once,
s_gj = Σ_{i∈g} s_ij(β_j, η_j) + (e_j − π̃), and its negative Hessian
B_gj = Σ_{i∈g} B_ij + (diag π̃ − π̃π̃ᵀ).  With the group responsibilities
γ_gj and s_g = Σ_j γ_gj s_gj, Louis' formula is, group by group,

    I = Σ_g [Σ_j γ_gj (B_gj − s_gj s_gjᵀ) + s_g s_gᵀ],

the negative Hessian of the grouped log-likelihood Σ_g log Σ_j π_j Π_{i∈g} φ_ij
at any θ; the OPG is Σ_g s_g s_gᵀ.  A group of weight w_g counts w_g times
(each sum over g is weighted).  With concomitant variables the logits are
the gate's free rows γ_j over z̃_g (see :func:`grouped_information_stats`).
Every group must be whole in the chunk (the grouped sources guarantee it).
Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streammix.algorithms.concomitant_information import GateLayout
from streammix.algorithms.information import InfoStats
from streammix.algorithms.parameter_layout import ParameterLayout
from streammix.core.gating import log_gate, with_intercept
from streammix.core.grouped_estep import group_index, group_log_posteriors
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix

__all__ = ["grouped_information_stats", "GroupedInformationTask"]


def _by_group(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Σ over each group's rows of ``values`` (n, k) -> (G, k)."""
    out = np.empty((n_groups, values.shape[1]))
    for k in range(values.shape[1]):
        out[:, k] = np.bincount(codes, weights=values[:, k], minlength=n_groups)
    return out


def grouped_information_stats(X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                              params: MixtureParams, noise: str, w: np.ndarray | None = None,
                              Z1: np.ndarray | None = None,
                              coef: np.ndarray | None = None) -> InfoStats:
    """The :class:`~streammix.algorithms.information.InfoStats` of a chunk of whole groups.

    ``X`` is the design matrix (intercept column first when fitted); ``w``
    the rows' weights (the same on each row of a group: group g counts w_g
    times); ``sum_w`` sums them over rows, ``n_rows`` counts rows, ``loglik``
    is the chunk's grouped log-likelihood.  With concomitant variables ``Z1``
    (z̃ of each row, constant within a group) and the gate ``coef``, the
    logits are replaced by the gate's free rows (the layout of
    :class:`~streammix.algorithms.concomitant_information.GateLayout`): the
    prior's score of group g in component j is (e_j − π̃(z_g)) ⊗ z̃_g and its
    negative Hessian (diag π̃ − π̃π̃ᵀ) ⊗ z̃_g z̃_gᵀ, π̃ = (π_2, ..., π_m)(z_g).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(y.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    m = params.n_components
    layout = ParameterLayout(m, params.n_coef, noise)
    codes, first = group_index(groups)
    wg = w[first]
    if Z1 is None:  # constant weights: the gate of one term, z̃ = 1
        Zg = np.ones((first.size, 1))
        pi = np.broadcast_to(params.weights, (first.size, m))
        P, gidx = layout.size, layout.alpha_index.reshape(m - 1, 1)
        L, ll = group_log_posteriors(X, y, codes, params)
    else:
        Zg = np.asarray(Z1, dtype=np.float64)[first]
        pi = np.exp(log_gate(Zg, coef))
        gate = GateLayout(layout, Zg.shape[1])
        P, gidx = gate.size, gate.gate_index
        L, ll = group_log_posteriors(X, y, codes, params, np.log(pi))
    G, k = L.shape[0], Zg.shape[1]
    gamma = np.exp(L - ll[:, None])  # (G, m)
    rows_gamma = gamma[codes] * w[:, None]  # each row's group responsibilities, weighted
    R = y[:, None] - X @ params.beta.T
    bidx, eidx = layout.beta_index, layout.eta_index
    pt = pi[:, 1:]
    scores = np.zeros((m, G, P))  # s_gj
    louis = np.zeros((P, P))
    if m > 1:  # Σ_g w_g (diag π̃ − π̃π̃ᵀ) ⊗ z̃z̃ᵀ, the same for every component
        diag = np.einsum("g,ga,gc,gd->acd", wg, pt, Zg, Zg)
        B = -np.einsum("g,ga,gb,gc,gd->acbd", wg, pt, pt, Zg, Zg)
        for a in range(m - 1):
            B[a, :, a, :] += diag[a]
        g = gidx.ravel()
        louis[np.ix_(g, g)] += B.reshape((m - 1) * k, (m - 1) * k)
    for j in range(m):
        inv_s2 = 1.0 / params.sigma2[j]
        r = R[:, j]
        cols = [X * (r * inv_s2)[:, None]]
        if eidx is not None:
            cols.append((r * r * inv_s2 - 1.0)[:, None])
        summed = _by_group(codes, np.concatenate(cols, axis=1), G)
        scores[j][:, bidx[j]] = summed[:, :len(bidx[j])]
        if eidx is not None:
            scores[j][:, eidx[j]] += summed[:, -1]
        if m > 1:
            e = -pt.copy()
            if j > 0:
                e[:, j - 1] += 1.0
            scores[j][:, gidx.ravel()] = (e[:, :, None] * Zg[:, None, :]).reshape(G, -1)
        gw = rows_gamma[:, j]
        bj = bidx[j]
        Xg = X * gw[:, None]
        louis[np.ix_(bj, bj)] += (Xg.T @ X) * inv_s2  # Σ w γ B_ij on β_j (and η)
        if eidx is not None:
            cross = 2.0 * inv_s2 * (Xg.T @ r)
            louis[bj, eidx[j]] += cross
            louis[eidx[j], bj] += cross
            louis[eidx[j], eidx[j]] += 2.0 * inv_s2 * float(gw @ (r * r))
        louis -= (scores[j] * (wg * gamma[:, j])[:, None]).T @ scores[j]  # − Σ w γ s sᵀ
    S = np.einsum("gj,jgp->gp", gamma, scores)  # s_g
    Sw = S * wg[:, None]
    n = X.shape[0]
    return InfoStats(Sw.sum(axis=0), Sw.T @ S, louis, float(wg @ ll), float(w.sum()), int(n))


@dataclass(frozen=True)
class GroupedInformationTask:
    """Map function of the information pass of a grouped fit: a chunk of whole groups ->
    its :class:`~streammix.algorithms.information.InfoStats`."""

    params: MixtureParams
    fit_intercept: bool
    noise: str
    #: The gate Γ of a fit with concomitant variables (None: constant weights).
    coef: np.ndarray | None = None

    def __call__(self, chunk) -> InfoStats:
        Xd = design_matrix(chunk.X, self.fit_intercept)
        Z1 = None if self.coef is None else with_intercept(chunk.Z)
        return grouped_information_stats(Xd, chunk.y, chunk.groups, self.params, self.noise,
                                         chunk.w, Z1, self.coef)
