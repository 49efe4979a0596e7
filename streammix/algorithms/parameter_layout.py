"""Where each working parameter sits in the score vector and information matrices.

The working parametrisation is that of flexmix's ``refit()`` (the
mathematics page, docs/mathematics.rst, §6): coefficients, log σ and the
multinomial logits of the weights against component 1.
:mod:`streammix.algorithms.information` accumulates its matrices in this
order; :func:`transform_matrix` carries a covariance through a relabelling
of the components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streammix.core.params import MixtureParams

__all__ = ["ParameterLayout", "transform_matrix", "constraint_matrix"]


@dataclass(frozen=True)
class ParameterLayout:
    """Positions of the working parameters in the score vector and matrices.

    Parameters
    ----------
    n_components : int
        m.
    n_coef : int
        p, coefficients per component (intercept included when fitted).
    noise : {"per_component", "shared", "fixed"}
    shared : tuple of int
        Design columns whose coefficient all components share (flexmix's
        ``FLXMRglmfix(fixed=...)``): each is one parameter, placed first (as
        flexmix's ``refit()`` does), and ``beta_index`` gives every component
        the same position for it.
    """

    n_components: int
    n_coef: int
    noise: str
    shared: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.noise not in ("per_component", "shared", "fixed"):
            raise ValueError(f"unknown noise model {self.noise!r}")
        object.__setattr__(self, "shared", tuple(sorted(int(k) for k in self.shared)))

    @property
    def beta_index(self) -> np.ndarray:
        """Integer array (m, p): the position of β_jk."""
        m, p, s = self.n_components, self.n_coef, len(self.shared)
        v = p - s
        varying = [k for k in range(p) if k not in self.shared]
        out = np.empty((m, p), dtype=np.intp)
        for k, col in enumerate(self.shared):
            out[:, col] = k
        stride = v + 1 if self.noise == "per_component" else v
        for k, col in enumerate(varying):
            out[:, col] = s + np.arange(m) * stride + k
        return out

    @property
    def eta_index(self) -> np.ndarray | None:
        """Integer array (m,): the position of log σ_j (the same for all j
        when shared); None for fixed noise."""
        m, p, s = self.n_components, self.n_coef, len(self.shared)
        v = p - s
        if self.noise == "per_component":
            return s + np.arange(m) * (v + 1) + v
        if self.noise == "shared":
            return np.full(m, s + m * v)
        return None

    @property
    def alpha_index(self) -> np.ndarray:
        """Integer array (m - 1,): the position of log(π_j/π_1), j = 2..m."""
        start = self.size - (self.n_components - 1)
        return np.arange(start, self.size)

    @property
    def size(self) -> int:
        """Number of free parameters P."""
        m, p, s = self.n_components, self.n_coef, len(self.shared)
        n_eta = {"per_component": m, "shared": 1, "fixed": 0}[self.noise]
        return s + m * (p - s) + n_eta + m - 1

    def names(self, coef_names: list[str]) -> list[str]:
        """Readable names, e.g. ``comp1:(intercept)``, ``comp1:log_sigma``,
        ``comp2:logit_weight`` (log(π_2/π_1))."""
        if len(coef_names) != self.n_coef:
            raise ValueError(f"{len(coef_names)} coefficient names for {self.n_coef} columns")
        out = [""] * self.size
        for j in range(self.n_components):
            for k, name in enumerate(coef_names):
                shared = k in self.shared
                out[self.beta_index[j, k]] = name if shared else f"comp{j + 1}:{name}"
        if self.noise == "per_component":
            for j in range(self.n_components):
                out[self.eta_index[j]] = f"comp{j + 1}:log_sigma"
        elif self.noise == "shared":
            out[self.eta_index[0]] = "log_sigma"
        for j, idx in enumerate(self.alpha_index, start=2):
            out[idx] = f"comp{j}:logit_weight"
        return out

    def params(self, theta: np.ndarray, sigma2: np.ndarray | None = None) -> MixtureParams:
        """The parameters of a working vector θ; ``sigma2`` supplies σ² for fixed noise."""
        theta = np.asarray(theta, dtype=np.float64)
        beta = theta[self.beta_index]
        eta = self.eta_index
        if eta is not None:
            sigma2 = np.exp(2.0 * theta[eta])
        elif sigma2 is None:
            raise ValueError("fixed noise: pass sigma2")
        logits = np.concatenate([[0.0], theta[self.alpha_index]])
        weights = np.exp(logits - logits.max())
        return MixtureParams(weights / weights.sum(), beta, sigma2)


def transform_matrix(layout: ParameterLayout, order) -> np.ndarray:
    """Linear map T with θ(params.permute(order)) = T θ(params).

    Coefficients and log σ are permuted; the logits change baseline:
    α'_k = α_{order[k]} − α_{order[0]} (with α_1 = 0).  A covariance V
    becomes T V Tᵀ.
    """
    order = np.asarray(order, dtype=np.intp)
    m = layout.n_components
    if sorted(order.tolist()) != list(range(m)):
        raise ValueError(f"{order.tolist()} is not a permutation of {m} components")
    T = np.zeros((layout.size, layout.size))
    bidx, eidx, aidx = layout.beta_index, layout.eta_index, layout.alpha_index
    for new, old in enumerate(order):
        T[bidx[new], bidx[old]] = 1.0
        if layout.noise == "per_component":
            T[eidx[new], eidx[old]] = 1.0
    if layout.noise == "shared":
        T[eidx[0], eidx[0]] = 1.0
    for new in range(1, m):
        row = aidx[new - 1]
        if order[new] > 0:
            T[row, aidx[order[new] - 1]] += 1.0
        if order[0] > 0:
            T[row, aidx[order[0] - 1]] -= 1.0
    return T


def constraint_matrix(layout: ParameterLayout) -> np.ndarray:
    """The 0/1 matrix A with θ_full = A θ, θ_full in the layout without shared columns.

    A score or information matrix of the unconstrained parametrisation
    becomes that of ``layout`` as Aᵀ s and Aᵀ I A (a shared coefficient's
    score is the sum of the components' scores for it).
    """
    full = ParameterLayout(layout.n_components, layout.n_coef, layout.noise)
    A = np.zeros((full.size, layout.size))
    A[full.beta_index.ravel(), layout.beta_index.ravel()] = 1.0
    if layout.eta_index is not None:
        A[full.eta_index, layout.eta_index] = 1.0
    A[full.alpha_index, layout.alpha_index] = 1.0
    return A
