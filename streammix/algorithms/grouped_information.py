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
at any θ; the OPG is Σ_g s_g s_gᵀ.  Every group must be whole in the chunk
(the grouped sources guarantee it).  Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streammix.algorithms.information import InfoStats
from streammix.algorithms.parameter_layout import ParameterLayout
from streammix.core.grouped_estep import group_codes, group_log_posteriors
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
                              params: MixtureParams, noise: str) -> InfoStats:
    """The :class:`~streammix.algorithms.information.InfoStats` of a chunk of whole groups.

    ``X`` is the design matrix (intercept column first when fitted); ``sum_w``
    and ``n_rows`` count rows, ``loglik`` is the chunk's grouped log-likelihood.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m = params.n_components
    layout = ParameterLayout(m, params.n_coef, noise)
    P = layout.size
    codes = group_codes(groups)
    L, ll = group_log_posteriors(X, y, codes, params)
    G = L.shape[0]
    gamma = np.exp(L - ll[:, None])  # (G, m)
    rows_gamma = gamma[codes]  # each row's group responsibilities
    R = y[:, None] - X @ params.beta.T
    bidx, eidx, aidx = layout.beta_index, layout.eta_index, layout.alpha_index
    pi_tail = params.weights[1:]
    scores = np.zeros((m, G, P))  # s_gj
    louis = np.zeros((P, P))
    if m > 1:
        louis[np.ix_(aidx, aidx)] += G * (np.diag(pi_tail) - np.outer(pi_tail, pi_tail))
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
            scores[j][:, aidx] = -pi_tail
            if j > 0:
                scores[j][:, aidx[j - 1]] += 1.0
        g = rows_gamma[:, j]
        bj = bidx[j]
        Xg = X * g[:, None]
        louis[np.ix_(bj, bj)] += (Xg.T @ X) * inv_s2  # Σ γ B_ij on β_j (and η)
        if eidx is not None:
            cross = 2.0 * inv_s2 * (Xg.T @ r)
            louis[bj, eidx[j]] += cross
            louis[eidx[j], bj] += cross
            louis[eidx[j], eidx[j]] += 2.0 * inv_s2 * float(g @ (r * r))
        louis -= (scores[j] * gamma[:, j, None]).T @ scores[j]  # − Σ_g γ_gj s_gj s_gjᵀ
    S = np.einsum("gj,jgp->gp", gamma, scores)  # s_g
    n = X.shape[0]
    return InfoStats(S.sum(axis=0), S.T @ S, louis, float(ll.sum()), float(n), int(n))


@dataclass(frozen=True)
class GroupedInformationTask:
    """Map function of the information pass of a grouped fit: a chunk of whole groups ->
    its :class:`~streammix.algorithms.information.InfoStats`."""

    params: MixtureParams
    fit_intercept: bool
    noise: str

    def __call__(self, chunk) -> InfoStats:
        Xd = design_matrix(chunk.X, self.fit_intercept)
        return grouped_information_stats(Xd, chunk.y, chunk.groups, self.params, self.noise)
