"""Grouped classes with concomitant variables: one gate value π(z_g) per group.

flexmix's ``y ~ x | id`` with ``concomitant = FLXPmultinom(~ z)``: z is
constant within a group (the sources check it), and the prior of group g is
π_j(z_g) = softmax_j(γ_jᵀ z̃_g).  The E-step is that of
:mod:`streammix.core.grouped_estep` with l_gj = log π_j(z_g) + Σ_{i∈g} log φ_ij;
the gate's statistics (:class:`~streammix.core.gating.GatingStats`) are those
of :mod:`streammix.core.gating` taken over groups instead of rows, each group
once with its weight w_g: G_j = Σ_g w_g (γ_gj − π_j(z_g)) z̃_g, Σ_g w_g z̃_g z̃_gᵀ
and Σ_g w_g π_j(z_g).  So the Böhning step and its monotonicity carry over
unchanged.  Numpy only.
"""

from __future__ import annotations

import numpy as np

from streammix.core.gating import GatingStats, log_gate
from streammix.core.grouped_estep import GroupedStats, group_index, grouped_pass
from streammix.core.params import MixtureParams

__all__ = ["grouped_gating_estep"]


def grouped_gating_estep(Xd: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray,
                         Z1: np.ndarray, params: MixtureParams, coef: np.ndarray,
                         ) -> tuple[GroupedStats, GatingStats]:
    """The E-step of a chunk of whole groups when the prior is the gate π(z_g).

    ``Z1`` is z̃ = [1, z] of each row (constant within a group: the group's
    first row is used); ``w`` the rows' weights, constant within a group.
    ``params.weights`` are not used.
    """
    codes, first = group_index(groups)
    Zg = np.asarray(Z1, dtype=np.float64)[first]
    wg = np.asarray(w, dtype=np.float64)[first]
    log_pi = log_gate(Zg, coef)
    stats, resp = grouped_pass(Xd, y, w, codes, first, params, log_pi)
    pi = np.exp(log_pi)
    Zw = Zg * wg[:, None]
    return stats, GatingStats((resp - pi).T @ Zw, Zw.T @ Zg, wg @ pi)
