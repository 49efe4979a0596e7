"""Solving the symmetric positive semi-definite systems of the M-steps.

Used by the per-component M-step (:mod:`streammix.core.mstep`) and by the
joint system of coefficients shared by all components
(:mod:`streammix.core.constrained_mstep`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["RCOND_LIMIT", "solve_spd"]

#: Below this reciprocal condition number a system is solved by an
#: eigendecomposition with a cut-off instead of Cholesky.
RCOND_LIMIT = 1e-12


def solve_spd(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, bool]:
    """Solve A x = b for a symmetric positive semi-definite A.

    Cholesky when well conditioned, else an eigendecomposition with small
    eigenvalues cut off.  Returns the solution and whether the cut-off was used.
    """
    scale = np.max(np.abs(np.diag(A)), initial=0.0)
    if scale > 0:
        try:
            L = np.linalg.cholesky(A)
            d = np.diag(L)
            if (d.min() / d.max()) ** 2 > RCOND_LIMIT:
                z = np.linalg.solve(L, b)
                return np.linalg.solve(L.T, z), False
        except np.linalg.LinAlgError:
            pass
    evals, evecs = np.linalg.eigh(A)
    cutoff = RCOND_LIMIT * max(evals.max(initial=0.0), 0.0)
    inv = np.where(evals > cutoff, 1.0 / np.where(evals > cutoff, evals, 1.0), 0.0)
    return evecs @ (inv * (evecs.T @ b)), True
