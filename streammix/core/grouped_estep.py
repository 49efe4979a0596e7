"""Grouped classes: every row of a group belongs to the same component.

flexmix's ``y ~ x | id``.  The E-step sums each component's log-density
over a group's rows, l_gj = log π_j + Σ_{i∈g} log N(y_i | a_jᵀx_i, σ_j²),
takes one responsibility per group, γ_gj = exp(l_gj − logsumexp_j l_gj),
and gives it to every row of the group; the regression statistics are then
those of :func:`streammix.core.stats.accumulate` at these responsibilities.
The weights are the mean group responsibility, π_j = Σ_g γ_gj / G (flexmix's
``prior``), so the pass also sums γ over groups.  The log-likelihood is
Σ_g logsumexp_j l_gj and the classification log-likelihood of ICL is
Σ_g max_j l_gj (one term per group, as flexmix's ``clogLik``).  The sums
over a group's rows are the compiled kernel's when it runs
(:func:`group_log_densities`), else numpy's; every group must be whole in the
chunk (the sources guarantee it).

Sample weights are weights of whole groups (flexmix's: the same on every row
of a group, which the sources check): group g of weight w_g counts w_g times,
so the log-likelihood is Σ_g w_g logsumexp_j l_gj (l_gj itself sums the rows'
log-densities unweighted), π_j = Σ_g w_g γ_gj / Σ_g w_g, and the regression
statistics weigh row i by w_i γ_g(i)j.  With concomitant variables the prior
log π_j of a group is log π_j(z_g) (:mod:`streammix.core.grouped_gating`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from streammix.core import kernel
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, accumulate

__all__ = ["GroupedStats", "grouped_estep", "group_codes", "group_index",
           "grouped_pass"]


@dataclass(frozen=True, eq=False)
class GroupedStats:
    """Statistics of one pass with grouped classes (zeros() is the identity, + adds).

    Attributes
    ----------
    stats : SuffStats
        The regression statistics (rows weighted by their group's responsibility).
    group_s0 : ndarray of shape (m,)
        Σ_g w_g γ_gj, the responsibilities summed over groups (weighted by the groups'
        weights; Σ_j is the groups' total weight).
    n_groups : int
        Number of groups seen.
    """

    stats: SuffStats
    group_s0: np.ndarray
    n_groups: int

    @classmethod
    def zeros(cls, n_components: int, n_coef: int) -> GroupedStats:
        return cls(SuffStats.zeros(n_components, n_coef), np.zeros(n_components), 0)

    def __add__(self, other: GroupedStats) -> GroupedStats:
        if not isinstance(other, GroupedStats):
            return NotImplemented
        return GroupedStats(self.stats + other.stats, self.group_s0 + other.group_s0,
                            self.n_groups + other.n_groups)


def group_codes(groups: np.ndarray) -> np.ndarray:
    """Codes 0..G−1 of the group labels of a chunk (first-appearance order not needed)."""
    return np.unique(np.asarray(groups), return_inverse=True)[1].ravel()


def group_index(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..G−1 of the group labels of a chunk and the first row of each group.

    Labels that are already such codes in order of first appearance (those of
    the grouped sources: sorted in memory, ``pd.factorize`` on lakes) are their
    own codes, found in O(n); others are sorted (``np.unique``, the same codes).
    """
    groups = np.asarray(groups)
    if groups.ndim == 1 and groups.size and groups.dtype.kind in "iu":
        top = np.maximum.accumulate(groups)
        first = np.flatnonzero(np.r_[True, top[1:] > top[:-1]])
        if groups[0] == 0 and int(top[-1]) + 1 == first.size:
            return groups.astype(np.int64, copy=False), first
    _, first, codes = np.unique(groups, return_index=True, return_inverse=True)
    return codes.ravel(), first


def group_log_densities(Xd: np.ndarray, y: np.ndarray, codes: np.ndarray,
                        params: MixtureParams, n_groups: int) -> np.ndarray:
    """Σ_{i∈g} log N(y_i | β_jᵀx_i, σ_j²), shape (G, m): the compiled kernel's sum
    (:func:`streammix.core.kernel.group_loglik`) when it runs, else numpy's bincount
    (the same sums, row by row in order)."""
    y = np.asarray(y, dtype=np.float64)
    log_norm = -0.5 * (np.log(2.0 * np.pi) + np.log(params.sigma2))
    inv2s2 = 0.5 / params.sigma2
    if kernel.enabled() and kernel.group_loglik is not None:
        L = np.zeros((n_groups, params.n_components))
        kernel.group_loglik(np.ascontiguousarray(Xd, dtype=np.float64),
                            np.ascontiguousarray(params.beta), np.ascontiguousarray(y),
                            log_norm, inv2s2, np.ascontiguousarray(codes, dtype=np.int64), L)
        return L
    R = y[:, None] - Xd @ params.beta.T
    dens = log_norm - R * R * inv2s2
    L = np.empty((n_groups, params.n_components))
    for j in range(params.n_components):  # bincount: an order of magnitude faster than add.at
        L[:, j] = np.bincount(codes, weights=dens[:, j], minlength=n_groups)
    return L


def group_log_posteriors(Xd: np.ndarray, y: np.ndarray, codes: np.ndarray,
                         params: MixtureParams, log_prior: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """l_gj (G, m) of the groups numbered by ``codes`` (n,), and the group log-likelihoods;
    ``log_prior`` (G, m) replaces log π_j (the gate's log π_j(z_g))."""
    n_groups = int(codes.max()) + 1 if codes.size else 0
    L = group_log_densities(Xd, y, codes, params, n_groups)
    if log_prior is None:
        L += np.log(np.maximum(params.weights, 1e-300))
    else:
        L += log_prior
    top = L.max(axis=1) if n_groups else np.zeros(0)
    ll = top + np.log(np.exp(L - top[:, None]).sum(axis=1))
    return L, ll


def grouped_pass(Xd: np.ndarray, y: np.ndarray, w: np.ndarray, codes: np.ndarray,
                 first: np.ndarray, params: MixtureParams,
                 log_prior: np.ndarray | None = None) -> tuple[GroupedStats, np.ndarray]:
    """The statistics of a chunk of whole groups (``codes``, ``first`` of
    :func:`group_index`) and the group responsibilities γ (G, m)."""
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    L, ll = group_log_posteriors(Xd, y, codes, params, log_prior)
    log_resp = L - ll[:, None]
    resp = np.exp(log_resp)
    stats = accumulate(Xd, y, w, resp[codes], params.beta)
    wg = w[first]
    with np.errstate(invalid="ignore"):
        ent = -float(wg @ np.sum(np.where(resp > 0, resp * log_resp, 0.0), axis=1))
    stats = dataclasses.replace(stats, loglik=float(wg @ ll),
                                class_loglik=float(wg @ L.max(axis=1)) if L.size else 0.0,
                                entropy=ent)
    return GroupedStats(stats, wg @ resp, int(L.shape[0])), resp


def grouped_estep(Xd: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray,
                  params: MixtureParams) -> GroupedStats:
    """The E-step of a chunk whose groups are all whole in it.

    ``w`` are the rows' sample weights, the same on every row of a group
    (the group's weight); ``groups`` the rows' group labels.
    """
    codes, first = group_index(groups)
    return grouped_pass(Xd, y, w, codes, first, params)[0]
