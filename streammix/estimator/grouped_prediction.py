"""Posteriors of whole groups for predictions on a lake (``ParquetSource(..., groups="id")``).

Under grouped classes the probability of component j belongs to a group,
P(j | the group's rows) ∝ π_j Π_{i∈g} N(y_i | a_jᵀx_i, σ_j²), and a group
may span files.  One pass over the source sums each component's
log-density by group id (:class:`GroupSums`, mergeable: chunks in any
order, groups cut anywhere); the posteriors of every group then follow, and
:func:`streammix.estimator.prediction.write_predictions` gives each row its
group's.  With a gate the prior is π_j(z_g): the pass also sums log π_j(z_i)
and counts the rows of each group (z is constant within a group, so the mean
is log π_j(z_g)).  Memory: one row of m numbers (2m + 1 with a gate) per
group, on the client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from streammix.core.gating import log_gate, with_intercept
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix
from streammix.exceptions import DataError

__all__ = ["GroupSums", "GroupPosteriors", "group_posteriors"]


@dataclass(frozen=True)
class GroupSums:
    """Σ_{i∈g} log N(y_i | a_jᵀx_i, σ_j²) of each group id seen (``+`` merges by id)."""

    ids: np.ndarray
    sums: np.ndarray

    @classmethod
    def zeros(cls, n_components: int) -> GroupSums:
        return cls(np.zeros(0, dtype=object), np.zeros((0, n_components)))

    def __add__(self, other: GroupSums) -> GroupSums:
        if not isinstance(other, GroupSums):
            return NotImplemented
        if not len(self.ids):
            return other
        if not len(other.ids):
            return self
        return _by_id(np.concatenate([self.ids, other.ids]),
                      np.concatenate([self.sums, other.sums]))


def _by_id(ids: np.ndarray, values: np.ndarray) -> GroupSums:
    codes, uniques = pd.factorize(ids)
    sums = np.empty((len(uniques), values.shape[1]))
    for j in range(values.shape[1]):
        sums[:, j] = np.bincount(codes, weights=values[:, j], minlength=len(uniques))
    return GroupSums(np.asarray(uniques), sums)


@dataclass(frozen=True)
class GroupSumsTask:
    """Map function: a chunk (with ``groups``) -> its :class:`GroupSums` at ``params``."""

    params: MixtureParams
    fit_intercept: bool
    #: The gate Γ of a model with concomitant variables (None: constant weights).
    coef: np.ndarray | None = None

    def __call__(self, chunk) -> GroupSums:
        if chunk.groups is None:
            raise DataError(f"{chunk.origin}: the chunk has no group ids")
        Xd = design_matrix(chunk.X, self.fit_intercept)
        R = np.asarray(chunk.y, dtype=np.float64)[:, None] - Xd @ self.params.beta.T
        sigma2 = self.params.sigma2
        dens = -0.5 * (np.log(2.0 * np.pi) + np.log(sigma2)) - R * R * (0.5 / sigma2)
        if self.coef is not None:  # Σ log π(z_i) and the row count, beside the densities
            log_pi = log_gate(with_intercept(np.asarray(chunk.Z, float)), self.coef)
            dens = np.column_stack([dens, log_pi, np.ones(dens.shape[0])])
        return _by_id(np.asarray(chunk.groups), dens)


@dataclass(frozen=True)
class GroupPosteriors:
    """log P(j | group) of every group id, and the lookup of a chunk's rows."""

    ids: pd.Index
    log_resp: np.ndarray

    def rows(self, groups: np.ndarray) -> np.ndarray:
        """log P(j | the row's group) of each row (n, m)."""
        at = self.ids.get_indexer(np.asarray(groups))
        if (at < 0).any():  # pragma: no cover - the same rows were summed
            raise DataError("a row's group was not seen by the pass of group posteriors")
        return self.log_resp[at]


def group_posteriors(model, source, engine=None) -> GroupPosteriors:
    """One pass over ``source`` (its chunks carry group ids): every group's posteriors."""
    from streammix.engines.inprocess import InProcessEngine

    engine = InProcessEngine() if engine is None else engine
    params = model.params_
    coef = getattr(model, "concomitant_coef_", None)
    m = params.n_components
    total = engine.map_reduce(source, GroupSumsTask(params, model.fit_intercept, coef),
                              GroupSums.zeros(m if coef is None else 2 * m + 1))
    if coef is None:
        L = total.sums + np.log(np.maximum(params.weights, 1e-300))
    else:  # the mean of log π(z_i) over a group's rows: log π(z_g)
        L = total.sums[:, :m] + total.sums[:, m:2 * m] / total.sums[:, 2 * m:]
    top = L.max(axis=1, keepdims=True) if len(L) else np.zeros((0, 1))
    log_norm = top + np.log(np.exp(L - top).sum(axis=1, keepdims=True))
    return GroupPosteriors(pd.Index(total.ids), L - log_norm)
