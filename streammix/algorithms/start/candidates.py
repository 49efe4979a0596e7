"""Candidate starting values on the in-memory sample (the mathematics page
(docs/mathematics.rst), §4): partitions of the rows, each turned into
parameters by one M-step, and the short EM runs that refine them.
"""

from __future__ import annotations

import numpy as np

from streammix.core.mstep import MStepOptions, mstep
from streammix.core.params import MixtureParams
from streammix.core.stats import accumulate_many

__all__ = ["INIT_METHODS", "REFINE_SIZE", "REFINE_ITER", "REFINE_TOL", "REFINE_CULL_ITER",
           "REFINE_KEEP", "candidate", "candidates", "ols", "quantile_bins",
           "variance_floor", "from_responsibilities", "soft_labels", "jitter"]

INIT_METHODS = ("auto", "random", "ybins", "resid_bins", "spectral")

#: Rows of the sample on which starting values are refined (see initial_params).
REFINE_SIZE = 20_000

#: EM iterations of the short runs that refine each candidate on the sample.
REFINE_ITER = 20

#: Absolute log-likelihood tolerance of those short runs: they only rank candidates.
REFINE_TOL = 1e-3

#: After this many of those iterations, only the best :data:`REFINE_KEEP` candidates
#: run the rest (a candidate far behind after a few iterations does not win).
REFINE_CULL_ITER = 5
REFINE_KEEP = 2


def ols(Xd: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least squares of ``y`` on the design ``Xd``: coefficients and residual variance."""
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(Xd * sw[:, None], y * sw, rcond=None)
    resid = y - Xd @ coef
    return coef, float(np.sum(w * resid**2) / max(np.sum(w), 1e-300))


def variance_floor(Xd: np.ndarray, y: np.ndarray, factor: float,
                   pooled: float | None = None) -> float:
    """``factor`` times the pooled OLS residual variance of the sample (``pooled``,
    computed here when not given).

    See the mathematics page (docs/mathematics.rst), §1.5.
    """
    if pooled is None:
        _, pooled = ols(Xd, y, np.ones_like(y))
    scale = float(np.mean(y**2)) if y.size else 1.0
    return max(factor * pooled, 1e-12 * scale, np.finfo(float).tiny)


def from_responsibilities(Xd, y, resp, options: MStepOptions) -> MixtureParams:
    """One M-step from given responsibilities ``resp`` (n, m), weights kept off zero."""
    return from_responsibilities_many(Xd, y, [resp], options)[0]


def from_responsibilities_many(Xd, y, resps, options: MStepOptions) -> list[MixtureParams]:
    """:func:`from_responsibilities` for each of ``resps`` (arrays of one shape), their
    statistics in one sweep of the rows (:func:`~streammix.core.stats.accumulate_many`):
    each the same, bit for bit, as alone."""
    m = resps[0].shape[1]
    resps = [resp + 1e-9 for resp in resps]  # no exactly empty group
    return _from_shifted(Xd, y, resps, m, options)


def _from_shifted(Xd, y, resps, m: int, options: MStepOptions) -> list[MixtureParams]:
    """:func:`from_responsibilities_many` of responsibilities already raised by 1e-9."""
    p = Xd.shape[1]
    out = []
    for stats in accumulate_many(Xd, y, np.ones_like(y), resps, np.zeros((m, p))):
        start = MixtureParams(np.full(m, 1.0 / m), np.zeros((m, p)), np.ones(m))
        params, _ = mstep(stats, start, options)
        weights = np.maximum(params.weights, 1e-3 / m)
        out.append(MixtureParams(weights / weights.sum(), params.beta, params.sigma2))
    return out


def soft_labels(labels: np.ndarray, m: int) -> np.ndarray:
    """Responsibilities 0.9 on each row's label, the rest split among the other components."""
    if m == 1:
        return np.ones((labels.size, 1))
    resp = np.full((labels.size, m), 0.1 / (m - 1))
    resp[np.arange(labels.size), labels] = 0.9
    return resp


def _shifted_soft_labels(labels: np.ndarray, m: int) -> np.ndarray:
    """``soft_labels(labels, m) + 1e-9``, element for element, without the second array."""
    if m == 1:
        return np.full((labels.size, 1), 1.0 + 1e-9)
    resp = np.full((labels.size, m), 0.1 / (m - 1) + 1e-9)
    resp[np.arange(labels.size), labels] = 0.9 + 1e-9
    return resp


def jitter(params: MixtureParams, Xd: np.ndarray, rng: np.random.Generator) -> MixtureParams:
    """Perturb each coefficient vector by a draw from its OLS sampling distribution.

    A draw is β_j + σ_j S z with z standard normal and S the symmetric square
    root of the covariance (XᵀX)⁻¹ scaled: unlike a factor made of
    eigenvectors, whose signs are arbitrary, S changes only by rounding when
    the data do (the same rows rescaled, standardised, or chunked otherwise),
    so the same draws z give the same start.
    """
    root = _jitter_root(Xd, params.n_components)
    return _jittered(params, root, _draws(rng, params.n_components, root.shape[0]))


def _jitter_root(Xd: np.ndarray, m: int) -> np.ndarray:
    """S of :func:`jitter` for ``m`` components on the design ``Xd``."""
    gram = Xd.T @ Xd / max(Xd.shape[0], 1)
    cov = np.linalg.pinv(gram) / max(Xd.shape[0] / m, 1.0)
    cov = 0.5 * (cov + cov.T)
    evals, evecs = np.linalg.eigh(cov)
    return (evecs * np.sqrt(np.maximum(evals, 0.0))) @ evecs.T


def _draws(rng: np.random.Generator, m: int, p: int) -> list[np.ndarray]:
    """The draws z of :func:`jitter`, one per component, in its order."""
    return [rng.standard_normal(p) for _ in range(m)]


def _jittered(params: MixtureParams, root: np.ndarray, draws) -> MixtureParams:
    beta = np.array([params.beta[j] + np.sqrt(params.sigma2[j]) * (root @ z)
                     for j, z in enumerate(draws)])
    return MixtureParams(params.weights, beta, params.sigma2)


def candidate(method: str, Xd, y, m, rng, options) -> MixtureParams:
    """One unrefined start by ``method`` ("random", "ybins", "resid_bins") on the design ``Xd``."""
    return candidates([method], Xd, y, m, rng, options)[0]


def candidates(methods, Xd, y, m, rng, options) -> list[MixtureParams]:
    """:func:`candidate` of each of ``methods`` in turn, the same starts from the same
    ``rng`` as one call after another (its draws are taken in that order) at the cost
    of one sweep of the rows for all their M-steps (:func:`from_responsibilities_many`)
    and one jitter covariance."""
    n = y.size
    labels, draws = [], []
    for method in methods:
        if method == "random":
            labels.append(rng.integers(m, size=n))
            draws.append(None)
            continue
        if method == "ybins":
            labels.append(quantile_bins(y, m))
        elif method == "resid_bins":
            coef, _ = ols(Xd, y, np.ones(n))
            labels.append(quantile_bins(y - Xd @ coef, m))
        else:
            raise ValueError(f"unknown init method {method!r}; choose from {INIT_METHODS}")
        draws.append(_draws(rng, m, Xd.shape[1]))
    if not methods:
        return []
    raw = _from_shifted(Xd, y, [_shifted_soft_labels(lab, m) for lab in labels], m, options)
    root = None
    out = []
    for params, z in zip(raw, draws, strict=True):
        if z is not None:
            root = _jitter_root(Xd, m) if root is None else root
            params = _jittered(params, root, z)
        out.append(params)
    return out


def quantile_bins(v: np.ndarray, m: int) -> np.ndarray:
    """Each row's bin among ``m`` of equal size by the rank of ``v``: the row of rank r
    (0-based, in the stable order of ``v``) is in bin min(r m // n, m - 1).

    The bins are found by a partition at their edges (linear time) and are
    those of the stable sort exactly: when two equal values would straddle an
    edge, where the stable order decides, the sort itself is used.
    """
    n = v.size
    edges = [-(-k * n // m) for k in range(1, m)]  # the first rank of bins 1 .. m-1
    inner = [e for e in edges if 0 < e < n]
    order = None
    if inner:
        kth = sorted({e - 1 for e in inner} | set(inner))
        order = np.argpartition(v, kth)
        if not all(v[order[e - 1]] < v[order[e]] for e in inner):
            order = None  # equal values straddle an edge: the stable order decides
    if order is None:
        order = np.argsort(v, kind="stable")
    labels = np.empty(n, dtype=np.int64)
    labels[order] = np.minimum(np.arange(n) * m // max(n, 1), m - 1)
    return labels
