"""Starting values: a profiling pass with a weighted reservoir sample, then
candidate parameter sets refined by short EM runs on the sample (MATH.md §4).

The sample is chunk-invariant: every row's random key is a hash of the seed,
the row's origin (file or array) and its index there, so the same rows are
drawn however the data is chunked.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from dataclasses import dataclass

import numpy as np

from streammix.algorithms.em import EMSettings, run_em
from streammix.algorithms.start.spectral import Moments, spectral_candidate
from streammix.core.mstep import MStepOptions, mstep
from streammix.core.params import MixtureParams
from streammix.core.stats import accumulate, design_matrix, estep, log_responsibilities
from streammix.data.arrays import Chunk

__all__ = [
    "Profile", "ProfileTask", "INIT_METHODS", "initial_params", "variance_floor",
    "make_reseeder",
]

INIT_METHODS = ("auto", "random", "ybins", "resid_bins", "spectral")

#: Rows of the sample on which starting values are refined (see initial_params).
REFINE_SIZE = 20_000

def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def row_uniforms(seed: int, origin: str, first_row: int, n: int,
                 row_ids: np.ndarray | None = None) -> np.ndarray:
    """Uniform(0, 1) numbers, one per row, that depend only on the row identity.

    Rows are ``first_row, ..., first_row + n - 1`` of ``origin``, or the
    given ``row_ids`` when a source removed rows.
    """
    base = (np.uint64(seed & 0xFFFFFFFF) << np.uint64(32)) ^ np.uint64(zlib.crc32(origin.encode()))
    if row_ids is None:
        rows = np.arange(first_row, first_row + n, dtype=np.uint64)
    else:
        rows = np.asarray(row_ids).astype(np.uint64)
    h = _splitmix64(_splitmix64(np.full(n, base, dtype=np.uint64)) ^ rows)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


@dataclass(frozen=True)
class Profile:
    """Pass-0 statistics: row counts, a weighted reservoir sample and the
    weighted moments of (x, y) (:class:`~streammix.spectral.Moments`); mergeable."""

    n_rows: int
    n_positive: int
    sum_w: float
    size: int
    keys: np.ndarray
    X: np.ndarray
    y: np.ndarray
    moments: Moments | None = None

    @classmethod
    def empty(cls, n_features: int, size: int) -> Profile:
        return cls(0, 0, 0.0, size, np.empty(0), np.empty((0, n_features)), np.empty(0),
                   Moments.zeros(n_features))

    def __add__(self, other: Profile) -> Profile:
        keys = np.concatenate([self.keys, other.keys])
        X = np.concatenate([self.X, other.X])
        y = np.concatenate([self.y, other.y])
        if keys.size > self.size:
            top = np.sort(np.argsort(-keys, kind="stable")[: self.size])
            keys, X, y = keys[top], X[top], y[top]
        moments = None
        if self.moments is not None and other.moments is not None:
            moments = self.moments + other.moments
        return Profile(self.n_rows + other.n_rows, self.n_positive + other.n_positive,
                       self.sum_w + other.sum_w, self.size, keys, X, y, moments)


@dataclass(frozen=True)
class ProfileTask:
    """Map function of pass 0: count rows and draw the reservoir sample.

    Rows are sampled without replacement with probability growing with their
    weight (Efraimidis–Spirakis keys log(u)/w); zero-weight rows never enter.
    """

    seed: int
    size: int

    def __call__(self, chunk: Chunk) -> Profile:
        w = chunk.w
        pos = w > 0
        u = row_uniforms(self.seed, chunk.origin, chunk.first_row, chunk.n_rows,
                         getattr(chunk, "row_ids", None))
        keys = np.where(pos, np.log(u) / np.where(pos, w, 1.0), -np.inf)
        idx = np.flatnonzero(pos)
        if idx.size > self.size:
            idx = np.sort(idx[np.argsort(-keys[idx], kind="stable")[: self.size]])
        return Profile(chunk.n_rows, int(pos.sum()), float(w.sum()), self.size,
                       keys[idx], np.asarray(chunk.X[idx], float), np.asarray(chunk.y[idx], float),
                       Moments.of(chunk.X, chunk.y, w))


def _ols(Xd: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(Xd * sw[:, None], y * sw, rcond=None)
    resid = y - Xd @ coef
    return coef, float(np.sum(w * resid**2) / max(np.sum(w), 1e-300))


def variance_floor(Xd: np.ndarray, y: np.ndarray, factor: float) -> float:
    """``factor`` times the pooled OLS residual variance of the sample (MATH.md §1.5)."""
    _, pooled = _ols(Xd, y, np.ones_like(y))
    scale = float(np.mean(y**2)) if y.size else 1.0
    return max(factor * pooled, 1e-12 * scale, np.finfo(float).tiny)


def _from_resp(Xd, y, resp, options: MStepOptions) -> MixtureParams:
    m, p = resp.shape[1], Xd.shape[1]
    resp = resp + 1e-9  # no exactly empty group
    stats = accumulate(Xd, y, np.ones_like(y), resp, np.zeros((m, p)))
    start = MixtureParams(np.full(m, 1.0 / m), np.zeros((m, p)), np.ones(m))
    params, _ = mstep(stats, start, options)
    weights = np.maximum(params.weights, 1e-3 / m)
    return MixtureParams(weights / weights.sum(), params.beta, params.sigma2)


def _soft_labels(labels: np.ndarray, m: int) -> np.ndarray:
    if m == 1:
        return np.ones((labels.size, 1))
    resp = np.full((labels.size, m), 0.1 / (m - 1))
    resp[np.arange(labels.size), labels] = 0.9
    return resp


def _jitter(params: MixtureParams, Xd: np.ndarray, rng: np.random.Generator) -> MixtureParams:
    """Perturb each coefficient vector by a draw from its OLS sampling distribution."""
    gram = Xd.T @ Xd / max(Xd.shape[0], 1)
    cov = np.linalg.pinv(gram) / max(Xd.shape[0] / params.n_components, 1.0)
    beta = np.array([
        rng.multivariate_normal(params.beta[j], params.sigma2[j] * cov, method="eigh")
        for j in range(params.n_components)
    ])
    return MixtureParams(params.weights, beta, params.sigma2)


def _candidate(method: str, Xd, y, m, rng, options) -> MixtureParams:
    n = y.size
    if method == "random":
        return _from_resp(Xd, y, _soft_labels(rng.integers(m, size=n), m), options)
    if method == "ybins":
        order = np.argsort(y, kind="stable")
    elif method == "resid_bins":
        coef, _ = _ols(Xd, y, np.ones(n))
        order = np.argsort(y - Xd @ coef, kind="stable")
    else:
        raise ValueError(f"unknown init method {method!r}; choose from {INIT_METHODS}")
    labels = np.empty(n, dtype=np.int64)
    labels[order] = np.minimum(np.arange(n) * m // max(n, 1), m - 1)
    params = _from_resp(Xd, y, _soft_labels(labels, m), options)
    return _jitter(params, Xd, rng)


def initial_params(X: np.ndarray, y: np.ndarray, n_components: int, *, method,
                   fit_intercept: bool, settings: EMSettings, rng: np.random.Generator,
                   n_random: int = 3, refine_iter: int = 20,
                   refine_size: int | None = REFINE_SIZE,
                   moments: Moments | None = None) -> MixtureParams:
    """Starting values from the in-memory sample ``(X, y)``.

    Parameters
    ----------
    X, y : ndarray
        The reservoir sample (raw features).
    method : str or MixtureParams
        ``"auto"`` tries residual-quantile bins, y-bins (mixtools) and
        ``n_random`` random partitions (flexmix), refines each by
        ``refine_iter`` EM iterations on the sample and keeps the best by the
        sample objective; the other names use a single candidate.  A
        :class:`MixtureParams` is returned as given.
    refine_size : int, optional
        Candidates are built and refined on a random subset of at most this
        many sample rows (drawn with ``rng``); None uses the whole sample.
        Refining five candidates for 20 iterations on 1e5 rows costs about
        five passes over 2e6 rows, once per restart.
    moments : Moments, optional
        Pass-0 moments of all the data; ``"spectral"`` needs them (EM in
        the spectral slope subspace, :mod:`streammix.spectral`).
    """
    if isinstance(method, MixtureParams):
        return method
    if refine_size is not None and y.size > refine_size:
        keep = np.sort(rng.choice(y.size, size=refine_size, replace=False))
        X, y = X[keep], y[keep]
    m = n_components
    Xd = design_matrix(X, fit_intercept)
    if method == "auto":
        methods = ["resid_bins", "ybins"] + ["random"] * n_random
    elif method in INIT_METHODS:
        methods = [method]
    else:
        raise ValueError(f"unknown init method {method!r}; choose from {INIT_METHODS}")
    short = dataclasses.replace(settings, max_iter=refine_iter, tol=1e-3, on_collapse="drop")
    w = np.ones_like(y)
    best, best_obj = None, -np.inf
    if "spectral" in methods and moments is None:
        raise ValueError("init='spectral' needs the pass-0 moments of the data")
    for name in methods:
        if name == "spectral":
            cand = spectral_candidate(X, y, moments, m, settings=settings, rng=rng)
        else:
            cand = _candidate(name, Xd, y, m, rng, settings.mstep)
        if len(methods) > 1 or refine_iter > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = run_em(lambda prm: estep(Xd, y, w, prm), cand, short, warn=False)
            if res.params.n_components != m:
                continue  # collapsed on the sample: a poor start
            if res.objective > best_obj:
                best, best_obj = res.params, res.objective
        else:
            best = cand
    if best is None:  # every refined candidate collapsed: fall back to the first raw one
        first = "random" if methods[0] == "spectral" else methods[0]
        best = _candidate(first, Xd, y, m, rng, settings.mstep)
    return best


def make_reseeder(X: np.ndarray, y: np.ndarray, fit_intercept: bool, options: MStepOptions):
    """A ``reseed(params, j)`` function for :func:`~streammix.em.run_em`.

    The collapsed component is refitted by least squares to the sample rows
    that the current mixture explains worst (the lowest 1/(2m) of per-row
    log-likelihoods), and given weight 1/m.
    """
    Xd = design_matrix(X, fit_intercept)

    def reseed(params: MixtureParams, j: int) -> MixtureParams:
        m, p = params.n_components, params.n_coef
        ll, _, _ = log_responsibilities(Xd, y, params)
        k = min(y.size, max(5 * (p + 1), y.size // (2 * m)))
        worst = np.argsort(ll, kind="stable")[:k]
        coef, var = _ols(Xd[worst], y[worst], np.ones(k))
        beta = params.beta.copy()
        beta[j] = coef
        sigma2 = params.sigma2.copy()
        sigma2[j] = max(var, options.variance_floor, np.finfo(float).tiny)
        weights = params.weights.copy()
        weights[j] = 1.0 / m
        return MixtureParams(weights / weights.sum(), beta, sigma2)

    return reseed
