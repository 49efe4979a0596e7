"""Solving the symmetric positive semi-definite systems of the M-steps.

Used by the per-component M-step (:mod:`streammix.core.mstep`) and by the
joint system of coefficients shared by all components
(:mod:`streammix.core.constrained_mstep`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["RCOND_LIMIT", "solve_spd", "solve_spd_many"]

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


def solve_spd_many(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, list[bool]]:
    """:func:`solve_spd` for a stack of systems ``A`` (k, p, p), ``b`` (k, p).

    One stacked Cholesky factorisation and two stacked solves do the well
    conditioned systems (LAPACK factors and solves each matrix as it does
    alone, so the solutions are those of :func:`solve_spd`, bit for bit); a
    system that is not is solved by :func:`solve_spd` itself.  Returns the
    solutions (k, p) and, per system, whether the cut-off was used.
    """
    k = A.shape[0]
    x = np.empty(b.shape)
    good = np.zeros(k, dtype=bool)
    if k:
        scale = np.max(np.abs(np.diagonal(A, axis1=1, axis2=2)), axis=1)
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            L = None
        if L is not None:
            d = np.diagonal(L, axis1=1, axis2=2)
            with np.errstate(invalid="ignore", divide="ignore"):
                good = (scale > 0) & ((d.min(axis=1) / d.max(axis=1)) ** 2 > RCOND_LIMIT)
            if good.any():
                Lg = L[good]
                z = np.linalg.solve(Lg, b[good][..., None])
                x[good] = np.linalg.solve(np.swapaxes(Lg, 1, 2), z)[..., 0]
    cut = [False] * k
    for i in np.flatnonzero(~good):
        x[i], cut[i] = solve_spd(A[i], b[i])
    return x, cut
