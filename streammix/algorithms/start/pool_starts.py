"""The start pool's starts (:mod:`streammix.algorithms.start.pool`, step 1): flexmix's
random partitions, mixtools' ``regmix.init`` on y and on pooled-OLS residuals, outlier
splits and random lines, all made at once as one stacked
:class:`~streammix.algorithms.start.population.Population`.
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.start.candidates import ols
from streammix.algorithms.start.population import Population, concat, population_mstep

__all__ = ["pool_starts"]


def pool_starts(Xd: np.ndarray, y: np.ndarray, m: int, size: int, rng: np.random.Generator,
                options, penalty: np.ndarray | None = None) -> Population:
    """``size`` unrefined starts, stacked: a third random partitions, a sixth each
    y bins, residual bins, outlier splits and random lines (see the module notes).
    ``penalty`` is the ridge matrix on the design ``Xd`` (None: the options' own)."""
    n, p = Xd.shape
    n_random, n_bins, n_split = size // 3, size // 6, size // 6
    n_lines = size - n_random - 2 * n_bins - n_split
    coef, pooled = ols(Xd, y, np.ones(n))
    fixed = options.fixed_sigma2
    if penalty is None and options.ridge > 0:
        penalty = options.penalty_matrix(p)

    def mstep_from(resp):
        return population_mstep(Xd, y, np.ones(n), resp, noise=options.noise,
                                floor=options.variance_floor, penalty=penalty,
                                fixed_sigma2=fixed)

    # flexmix: a uniform random label per row, posteriors 0.9 / 0.1
    labels = rng.integers(m, size=(n_random, n))
    resp = np.full((n_random, m, n), 0.1 / max(m - 1, 1))
    np.put_along_axis(resp, labels[:, None, :], 0.9, axis=1)
    parts = [mstep_from(resp)]
    # mixtools' regmix.init on y, then on pooled-OLS residuals
    for key in (y, y - Xd @ coef):
        parts.append(_bin_starts(Xd, key, m, n_bins, rng, mstep_from, options))
    parts.append(_split_starts(Xd, y, m, n_split, rng, mstep_from))
    parts.append(_random_lines(Xd, y, m, n_lines, rng, pooled))
    if fixed is not None:
        for part in parts:
            part.sigma2[:] = np.asarray(fixed, float)
    return concat(parts)


def _bin_starts(Xd, key, m, count, rng, mstep_from, options) -> Population:
    """mixtools' ``regmix.init``: random weights λ (at least 4 rows a bin), the rows
    sorted by ``key`` cut into bins of sizes λ n, least squares per bin, then
    β_j ~ N(β̂_j, ŝ_j² diag((XᵀX)⁻¹)) and σ_j = 1 / Exp(rate ŝ_j)."""
    n, p = Xd.shape
    lam = rng.random((count, m))
    lam /= lam.sum(axis=1, keepdims=True)
    sizes = np.maximum(np.round(lam * n), min(4, n // m)).astype(np.int64)
    sizes[:, -1] = n - sizes[:, :-1].sum(axis=1)
    bad = sizes[:, -1] < min(4, n // m)
    sizes[bad] = n // m
    sizes[bad, -1] = n - (m - 1) * (n // m)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(key, kind="stable")] = np.arange(n)
    edges = np.cumsum(sizes, axis=1)  # (count, m)
    labels = (rank[None, :, None] >= edges[:, None, :]).sum(axis=2)  # (count, n)
    labels = np.minimum(labels, m - 1)
    resp = np.zeros((count, m, n))
    np.put_along_axis(resp, labels[:, None, :], 1.0, axis=1)
    pop = mstep_from(resp)
    dof = np.maximum(sizes - p, 1)
    s_hyp = np.sqrt(np.maximum(pop.sigma2 * sizes / dof, 1e-300))
    sd = np.sqrt(np.maximum(np.diag(np.linalg.pinv(Xd.T @ Xd)), 0.0))
    pop.beta += rng.standard_normal(pop.beta.shape) * s_hyp[..., None] * sd
    if options.noise == "shared":
        s_hyp = np.repeat(s_hyp.mean(axis=1, keepdims=True), m, axis=1)
        sigma = np.repeat(1.0 / rng.exponential(1.0 / s_hyp[:, :1]), m, axis=1)
    else:
        sigma = 1.0 / rng.exponential(1.0 / s_hyp)  # numpy's scale = 1 / rate
    pop.sigma2[:] = np.maximum(sigma**2, options.variance_floor)
    pop.weights[:] = lam
    return pop


def _split_starts(Xd, y, m, count, rng, mstep_from) -> Population:
    """Outlier splits: the rows worst explained by least squares on the rows left
    (a random share between (p + 1) / n and one half, by absolute residual) become a
    component, m − 1 times; least squares per component.  Finds small components
    of outlying rows that random partitions almost never isolate."""
    n, p = Xd.shape
    labels = np.full((count, n), m - 1, dtype=np.int64)
    low = min(0.5, (p + 1) / max(n, 1))
    for i in range(count):
        rest = np.arange(n)
        for j in range(m - 1):
            if rest.size <= 2 * (p + 1):
                break
            coef = np.linalg.lstsq(Xd[rest], y[rest], rcond=None)[0]
            size = int(round(rng.uniform(low, 0.5) * rest.size))
            size = min(max(size, p + 1), rest.size - (p + 1))
            worst = np.argsort(-np.abs(y[rest] - Xd[rest] @ coef), kind="stable")[:size]
            labels[i, rest[worst]] = j
            rest = np.delete(rest, worst)
    resp = np.zeros((count, m, n))
    np.put_along_axis(resp, labels[:, None, :], 1.0, axis=1)
    return mstep_from(resp + 1e-9)


def _random_lines(Xd, y, m, count, rng, pooled, c_steps: int = 3) -> Population:
    """``count`` starts of m lines each: least squares through p + 1 random rows,
    then, for every other start, ``c_steps`` concentration steps (least squares on
    the h rows closest to the line, h random between 2 (p + 1) and n / m; the
    C-steps of least trimmed squares, Rousseeuw & Van Driessen 2006), which
    lock onto tight subgroups of rows."""
    n, p = Xd.shape
    k = min(n, p + 1)
    lines = count * m
    rows = np.argsort(rng.random((lines, n)), axis=1)[:, :k]
    Xs, ys = Xd[rows], y[rows]  # (lines, k, p), (lines, k)
    beta = _solve(np.einsum("rki,rkj->rij", Xs, Xs), np.einsum("rki,rk->ri", Xs, ys))
    sigma2 = np.full(lines, max(pooled, 1e-300))
    trimmed = (np.arange(count) % 2 == 1).repeat(m)
    if trimmed.any() and n > 2 * (p + 1):
        XX = (Xd[:, :, None] * Xd[:, None, :]).reshape(n, p * p)
        Xy = Xd * y[:, None]
        h = rng.integers(2 * (p + 1), max(2 * (p + 1), n // m) + 1, size=int(trimmed.sum()))
        b = beta[trimmed]
        for _ in range(c_steps):
            resid = np.abs(y[None, :] - b @ Xd.T)
            rank = np.argsort(np.argsort(resid, axis=1, kind="stable"), axis=1)
            mask = (rank < h[:, None]).astype(float)
            b = _solve((mask @ XX).reshape(-1, p, p), mask @ Xy)
        rss = (mask * (y[None, :] - b @ Xd.T) ** 2).sum(axis=1)
        beta[trimmed] = b
        sigma2[trimmed] = np.maximum(rss / h, 1e-6 * pooled)
    return Population(np.full((count, m), 1.0 / m), beta.reshape(count, m, p),
                      sigma2.reshape(count, m), np.full(count, -np.inf), np.zeros((count, m)))


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched least-squares normal equations, with a tiny ridge for singular ones."""
    p = gram.shape[-1]
    gram = gram + np.eye(p) * (1e-8 * np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-300)
    return np.linalg.solve(gram, rhs[..., None])[..., 0]
