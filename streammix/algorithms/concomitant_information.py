"""Standard errors of fits with concomitant variables: Louis' formula with the gate.

The working parameters are those of :mod:`streammix.algorithms.information`
(coefficients, log σ; shared coefficients once) with the logits of the
weights replaced by the gate's free rows: γ_j for j = 2..m, each over
z̃ = (1, z) -- flexmix's ``refit()`` order (``concomitant_Comp.j.alpha.*``).
Complete-data score of row i in component j, beside the regression part of
the mathematics page (docs/mathematics.rst) §6: γ_k → (1{j = k} − π_k(z)) z̃;
negative Hessian: (diag π̃ − π̃π̃ᵀ) ⊗ z̃z̃ᵀ with π̃ = (π_2, ..., π_m)(z), the
same for every j.  Louis (1982): I = Σ_i w_i [Σ_j τ_ij (B_ij − s_ij s_ijᵀ) +
s_i s_iᵀ] with s_i = Σ_j τ_ij s_ij; accumulated per chunk as an
:class:`~streammix.algorithms.information.InfoStats` (mergeable), in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streammix.algorithms.information import InfoStats
from streammix.algorithms.parameter_layout import ParameterLayout
from streammix.core.gating import gating_loglik, log_gate, with_intercept
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix

__all__ = ["GateLayout", "GateInformationTask", "gate_information_stats"]


@dataclass(frozen=True)
class GateLayout:
    """Positions of the working parameters of a fit with a gate of ``n_gate`` = q + 1 terms."""

    base: ParameterLayout
    n_gate: int

    @property
    def gate_index(self) -> np.ndarray:
        """Integer array (m - 1, q + 1): the position of γ_jc, j = 2..m."""
        m = self.base.n_components
        start = self.base.size - (m - 1)
        return start + np.arange((m - 1) * self.n_gate).reshape(m - 1, self.n_gate)

    @property
    def size(self) -> int:
        m = self.base.n_components
        return self.base.size - (m - 1) + (m - 1) * self.n_gate

    def names(self, coef_names: list[str], gate_names: list[str]) -> list[str]:
        """``vcov_names_``: those of the base layout, the gate as ``comp2:gate:z1``."""
        out = self.base.names(coef_names)[: self.base.size - (self.base.n_components - 1)]
        for j in range(2, self.base.n_components + 1):
            out += [f"comp{j}:gate:{name}" for name in ["(intercept)", *gate_names]]
        return out


def gate_information_stats(Xd: np.ndarray, y: np.ndarray, w: np.ndarray, Z1: np.ndarray,
                           params: MixtureParams, coef: np.ndarray,
                           layout: GateLayout) -> InfoStats:
    """The :class:`InfoStats` of one chunk (design ``Xd``, gate terms ``Z1`` = z̃)."""
    base = layout.base
    m, P = params.n_components, layout.size
    n = Xd.shape[0]
    ll, log_resp = gating_loglik(Xd, y, Z1, params, coef)
    tau = np.where(log_resp > -600.0, np.exp(log_resp), 0.0)
    pt = np.exp(log_gate(Z1, coef))[:, 1:]
    R = y[:, None] - Xd @ params.beta.T
    bidx, eidx, gidx = base.beta_index, base.eta_index, layout.gate_index
    louis = np.zeros((P, P))
    S_obs = np.zeros((n, P))
    g = gidx.ravel()
    for j in range(m):
        inv = 1.0 / params.sigma2[j]
        r = R[:, j]
        S = np.zeros((n, P))
        S[:, bidx[j]] = Xd * (r * inv)[:, None]
        if eidx is not None:
            S[:, eidx[j]] = r * r * inv - 1.0
        e = -pt.copy()
        if j > 0:
            e[:, j - 1] += 1.0
        S[:, g] = (e[:, :, None] * Z1[:, None, :]).reshape(n, -1)
        wt = w * tau[:, j]
        louis -= (S * wt[:, None]).T @ S
        S_obs += tau[:, j, None] * S
        Xg = Xd * wt[:, None]
        louis[np.ix_(bidx[j], bidx[j])] += (Xg.T @ Xd) * inv
        if eidx is not None:
            cross = 2.0 * inv * (Xg.T @ r)
            louis[bidx[j], eidx[j]] += cross
            louis[eidx[j], bidx[j]] += cross
            louis[eidx[j], eidx[j]] += 2.0 * inv * float(wt @ (r * r))
    if m > 1:  # the gate's B, the same for every component (τ sums to one)
        k = m - 1
        diag = np.einsum("i,ik,ic,id->kcd", w, pt, Z1, Z1)
        outer = np.einsum("i,ik,il,ic,id->kcld", w, pt, pt, Z1, Z1)
        B = -outer
        for a in range(k):
            B[a, :, a, :] += diag[a]
        louis[np.ix_(g, g)] += B.reshape(k * layout.n_gate, k * layout.n_gate)
    Sw = S_obs * w[:, None]
    return InfoStats(Sw.sum(axis=0), Sw.T @ S_obs, louis, float(w @ ll), float(w.sum()), int(n))


@dataclass(frozen=True)
class GateInformationTask:
    """Map function of the information pass of a fit with concomitant variables."""

    params: MixtureParams
    coef: np.ndarray
    fit_intercept: bool
    layout: GateLayout

    def __call__(self, chunk) -> InfoStats:
        Xd = design_matrix(chunk.X, self.fit_intercept)
        return gate_information_stats(Xd, chunk.y, chunk.w, with_intercept(chunk.Z),
                                      self.params, self.coef, self.layout)
