"""Pass-0 moments and the spectral slope subspace (the mathematics page (docs/mathematics.rst), §4).

:class:`Moments` holds weighted sums Σ w yᵏ, Σ w yᵏ x and Σ w yᵏ x xᵀ for
k = 0, 1, 2, gathered in the profiling pass (mergeable: plain sums).  From
them, after the pass, come the weighted means and covariances of (x, y) and
the spectral matrix of Yi, Caramanis & Sanghavi (2014): with z the whitened,
centred features and ỹ = y − E y,

    E[ỹ² z zᵀ] − E[ỹ²] I = 2 Σ_j π_j β_j β_jᵀ   (Gaussian x),

whose top eigenvectors span the component slopes (in z coordinates).  The
spectral candidate runs short EM from several random starts on the sample
projected onto that subspace (m numbers per row instead of d) and lifts the
best back to the full design.  The guarantee covers two components and a
Gaussian design; otherwise it is a heuristic.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from streammix.algorithms.em import run_em
from streammix.algorithms.start.candidates import REFINE_ITER, REFINE_TOL, candidate
from streammix.core.moments import Moments
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep

__all__ = ["spectral_subspace", "spectral_candidate"]


def spectral_subspace(moments: Moments, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis U (d, r), r = min(m, d), of the slope subspace, and W.

    The slopes β_j in z coordinates lie (approximately) in span U; in the
    original coordinates they are W U b for some b.
    """
    M, W = moments.spectral_matrix()
    evals, evecs = np.linalg.eigh(M)
    r = min(n_components, M.shape[0])
    return evecs[:, np.argsort(evals)[::-1][:r]], W


def spectral_candidate(X: np.ndarray, y: np.ndarray, moments: Moments, n_components: int, *,
                       settings, rng: np.random.Generator, n_starts: int = 5,
                       refine_iter: int = REFINE_ITER,
                       refine_tol: float = REFINE_TOL) -> MixtureParams:
    """Starting values from EM in the spectral subspace, lifted to the full design.

    Parameters
    ----------
    X, y : ndarray
        The sample (raw features, no intercept column).
    moments : Moments
        Pass-0 moments of all the data.
    settings : EMSettings
        Settings of the fit (intercept required).
    n_starts : int
        Random starts of the short EM in the subspace; the best by the
        sample objective is lifted.
    """
    if not settings.mstep.intercept:
        raise ValueError("the spectral start needs fit_intercept=True (it centres the data)")
    m = n_components
    U, W = spectral_subspace(moments, m)
    mu = moments.mean_x()
    B = W @ U  # (d, r): slope in x for a slope b in subspace coordinates is B b
    V = design_matrix((X - mu) @ B, True)  # [1, v], v = Uᵀ z
    w = np.ones_like(y)
    options = settings.mstep
    if options.ridge > 0 or options.prior_mean is not None:
        options = dataclasses.replace(options, ridge=0.0, prior_mean=None)
    short = dataclasses.replace(settings, mstep=options, max_iter=refine_iter, tol=refine_tol,
                                on_collapse="drop")
    best, best_obj = None, -np.inf
    for _ in range(n_starts):
        cand = candidate("random", V, y, m, rng, options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_em(lambda prm: estep(V, y, w, prm), cand, short, warn=False)
        if res.params.n_components == m and res.objective > best_obj:
            best, best_obj = res.params, res.objective
    if best is None:
        raise ValueError("EM in the spectral subspace lost components from every start")
    slopes = best.beta[:, 1:] @ B.T  # (m, d)
    intercepts = best.beta[:, 0] - slopes @ mu
    return MixtureParams(best.weights, np.column_stack([intercepts, slopes]), best.sigma2)
