"""Mergeable sufficient statistics of one EM pass, and the E-step that makes them.

The statistics are kept in the *residual form* (the mathematics page
(docs/mathematics.rst), §1.2): for each component j, with responsibilities γ
and residuals r = y - βⱼᵀx at the parameters of the pass (the *centre*),

* ``s0[j]  = Σ w γ``
* ``s2[j]  = Σ w γ x xᵀ``
* ``rx[j]  = Σ w γ x r``
* ``r0[j]  = Σ w γ r²``

plus the weighted log-likelihood and two by-products used by ICL.  Because
every chunk of a pass uses the same centre, statistics of chunks add up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from streammix.core import kernel
from streammix.core.params import MixtureParams

__all__ = ["SuffStats", "estep", "estep_features", "estep_features_many", "BLOCK_ELEMENTS",
           "log_responsibilities", "log_norm", "design_matrix", "features_transposed",
           "kernel_layout", "accumulate", "accumulate_many"]

_LOG_2PI = float(np.log(2.0 * np.pi))

#: Target number of float64 elements in the per-block temporaries of the
#: numpy E-step (about 1 MiB, so that a block stays in the L2 cache).
BLOCK_ELEMENTS = 1 << 17


@dataclass(frozen=True, eq=False)
class SuffStats:
    """Sufficient statistics of a pass for all m components.

    Instances are immutable.  ``SuffStats.zeros(m, p)`` is the identity of
    ``+``, and ``+`` is associative (up to floating-point rounding), so the
    statistics of chunks can be reduced in any tree.

    Attributes
    ----------
    s0, s2, rx, r0 : ndarray
        Per-component statistics, shapes (m,), (m, p, p), (m, p), (m,).
    loglik : float
        Σ w log p(y | x; θ) at the centre θ.
    class_loglik : float
        Σ w max_j log(π_j f_j), the classification log-likelihood used by ICL.
    entropy : float
        -Σ w Σ_j γ log γ (the EN term of ICL-BIC).
    sum_w : float
        Σ w, the total weight N.
    n_rows : int
        Number of rows seen (zero-weight rows included).
    center : ndarray of shape (m, p) or None
        Coefficients at which residuals were taken; None only for ``zeros``.
    """

    s0: np.ndarray
    s2: np.ndarray
    rx: np.ndarray
    r0: np.ndarray
    loglik: float
    class_loglik: float
    entropy: float
    sum_w: float
    n_rows: int
    center: np.ndarray | None

    def __post_init__(self) -> None:
        for name in ("s0", "s2", "rx", "r0", "center"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                value.setflags(write=False)
                object.__setattr__(self, name, value)

    @classmethod
    def zeros(cls, n_components: int, n_coef: int) -> SuffStats:
        """The identity element: no rows, no centre."""
        m, p = n_components, n_coef
        return cls(
            np.zeros(m), np.zeros((m, p, p)), np.zeros((m, p)), np.zeros(m),
            0.0, 0.0, 0.0, 0.0, 0, None,
        )

    @property
    def n_components(self) -> int:
        return self.s0.shape[0]

    @property
    def n_coef(self) -> int:
        return self.rx.shape[1]

    def __add__(self, other: SuffStats) -> SuffStats:
        if not isinstance(other, SuffStats):
            return NotImplemented
        if self.s2.shape != other.s2.shape:
            raise ValueError(
                f"cannot add statistics of shapes {self.s2.shape} and {other.s2.shape}"
            )
        if self.center is None:
            center = other.center
        elif other.center is None or np.array_equal(self.center, other.center):
            center = self.center
        else:
            raise ValueError(
                "cannot add statistics computed at different parameters "
                "(residual-form statistics need a common centre; recentre one first)"
            )
        return SuffStats(
            self.s0 + other.s0,
            self.s2 + other.s2,
            self.rx + other.rx,
            self.r0 + other.r0,
            self.loglik + other.loglik,
            self.class_loglik + other.class_loglik,
            self.entropy + other.entropy,
            self.sum_w + other.sum_w,
            self.n_rows + other.n_rows,
            center,
        )

    def recentre(self, beta: np.ndarray) -> SuffStats:
        """Express the residual statistics around new coefficients ``beta``.

        Exact (the mathematics page (docs/mathematics.rst), §1.2): with δ = β_new − β_old,
        ``rx' = rx − s2 δ`` and ``r0' = r0 − 2 δᵀ rx + δᵀ s2 δ``.
        """
        beta = np.asarray(beta, dtype=np.float64)
        if self.center is None:
            return SuffStats(self.s0, self.s2, self.rx, self.r0, self.loglik,
                             self.class_loglik, self.entropy, self.sum_w, self.n_rows, beta)
        delta = beta - self.center
        s2d = np.einsum("jkl,jl->jk", self.s2, delta)
        rx = self.rx - s2d
        r0 = self.r0 - 2.0 * np.einsum("jk,jk->j", delta, self.rx) + np.einsum(
            "jk,jk->j", delta, s2d
        )
        return SuffStats(self.s0, self.s2, rx, np.maximum(r0, 0.0), self.loglik,
                         self.class_loglik, self.entropy, self.sum_w, self.n_rows, beta)

    def subset(self, keep) -> SuffStats:
        """Statistics of the components ``keep`` only (totals unchanged)."""
        keep = np.asarray(keep)
        center = None if self.center is None else self.center[keep]
        return SuffStats(self.s0[keep], self.s2[keep], self.rx[keep], self.r0[keep],
                         self.loglik, self.class_loglik, self.entropy, self.sum_w,
                         self.n_rows, center)

    def allclose(self, other: SuffStats, rtol: float = 1e-10) -> bool:
        """Compare two statistics to a relative tolerance (scaled per array)."""
        def close(a, b):
            a, b = np.asarray(a), np.asarray(b)
            scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1e-300)
            return np.max(np.abs(a - b), initial=0.0) <= rtol * scale
        return (
            self.n_rows == other.n_rows
            and all(close(getattr(self, k), getattr(other, k))
                    for k in ("s0", "s2", "rx", "r0", "loglik", "class_loglik",
                              "entropy", "sum_w"))
        )


def log_responsibilities(X: np.ndarray, y: np.ndarray, params: MixtureParams):
    """Per-row log-likelihood and log-responsibilities, in the log domain.

    Parameters
    ----------
    X : ndarray of shape (n, p)
        Design matrix.
    y : ndarray of shape (n,)
    params : MixtureParams

    Returns
    -------
    loglik : ndarray of shape (n,)
        log p(y_i | x_i).
    log_resp : ndarray of shape (n, m)
        log γ_ij.
    residuals : ndarray of shape (n, m)
    """
    R = y[:, None] - X @ params.beta.T
    L = _component_loglik(R, params)
    ll = _logsumexp_rows(L)
    return ll, L - ll[:, None], R


def _component_loglik(R: np.ndarray, params: MixtureParams) -> np.ndarray:
    return log_norm(params) - R * R * (0.5 / params.sigma2)


def log_norm(params: MixtureParams) -> np.ndarray:
    # A zero weight gives a huge negative, not -inf, so that 0 * log-density stays 0.
    return np.log(np.maximum(params.weights, 1e-300)) - 0.5 * (_LOG_2PI + np.log(params.sigma2))


def _logsumexp_rows(L: np.ndarray) -> np.ndarray:
    M = L.max(axis=1)
    M = np.where(np.isfinite(M), M, 0.0)
    return M + np.log(np.exp(L - M[:, None]).sum(axis=1))


def _block_rows(p: int, m: int) -> int:
    return max(256, BLOCK_ELEMENTS // max(1, 2 * m + p * (p + 1) // 2))


class _Accumulator:
    """Running sums of one chunk, laid out for few, cache-friendly GEMMs.

    Works on the transposed *features* FT (d, n); with ``intercept`` the
    design has an implicit leading column of ones that is never stored.
    ``g1 = [wγ; wγr] @ FT.T`` gives the feature part of rx and of the first
    row of s2; row sums of ``[wγ; wγr]`` give their intercept parts; the
    products of feature pairs (upper triangle only) go through one GEMM
    ``wγ @ Q.T`` per block.
    """

    def __init__(self, d: int, m: int, intercept: bool, block: int):
        self.d, self.m, self.intercept = d, m, intercept
        self.pair_rows = _pair_rows(d)
        self.n_pairs = d * (d + 1) // 2
        self.g1 = np.zeros((2 * m, d))
        self.hsum = np.zeros(2 * m)
        self.s2p = np.zeros((m, self.n_pairs))
        self.r0 = np.zeros(m)
        self.H = np.empty((2 * m, block))

    def pair_products(self, FT: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The upper-triangle feature products of a block, (n_pairs, nb), into ``out``.

        They do not depend on the parameters: one block's products serve
        every parameter set of a lock-step pass.
        """
        Q = out[:, :FT.shape[1]]
        pos = 0
        for k, rows in self.pair_rows:
            np.multiply(FT[k:k + 1], FT[k:], out=Q[pos:pos + rows.size])
            pos += rows.size
        return Q

    def add(self, FT: np.ndarray, R: np.ndarray, nb: int, Q: np.ndarray) -> None:
        """Add a block; ``self.H[:m, :nb]`` must already hold wγ, ``Q`` its pair products."""
        m = self.m
        H = self.H[:, :nb]
        np.multiply(H[:m], R, out=H[m:])
        self.g1 += H @ FT.T
        self.hsum += H.sum(axis=1)
        self.r0 += np.einsum("ij,ij->i", H[m:], R)
        self.s2p += H[:m] @ Q.T

    def finish(self):
        m, d = self.m, self.d
        off = int(self.intercept)
        p = d + off
        upper, lower = _pair_positions(d, off)
        s2 = np.empty((m, p * p))
        s2[:, upper] = self.s2p
        s2[:, lower] = self.s2p
        s2 = s2.reshape(m, p, p)
        s0 = self.hsum[:m].copy()
        rx = np.empty((m, p))
        rx[:, off:] = self.g1[m:]
        if self.intercept:
            s2[:, 0, 0] = s0
            s2[:, 0, 1:] = self.g1[:m]
            s2[:, 1:, 0] = self.g1[:m]
            rx[:, 0] = self.hsum[m:]
        return s0, s2, rx, self.r0


@functools.lru_cache(maxsize=64)
def _pair_rows(d: int) -> list:
    return [(k, np.arange(k, d)) for k in range(d)]


@functools.lru_cache(maxsize=64)
def _pair_positions(d: int, off: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions in a (p, p) matrix of the feature pairs (k <= l), in the
    order of the pair products, and of their mirror images (l, k)."""
    p = d + off
    k, l = np.triu_indices(d)
    return (k + off) * p + (l + off), (l + off) * p + (k + off)


def _has_intercept(XT: np.ndarray) -> bool:
    return XT.shape[0] > 0 and bool(np.all(XT[0] == 1.0))


def estep(X: np.ndarray, y: np.ndarray, w: np.ndarray, params: MixtureParams) -> SuffStats:
    """E-step on one chunk: responsibilities at ``params`` and their statistics.

    Parameters
    ----------
    X : ndarray of shape (n, p)
        Design matrix (intercept column first when fitted).
    y : ndarray of shape (n,)
    w : ndarray of shape (n,)
        Non-negative frequency weights.
    params : MixtureParams

    Returns
    -------
    SuffStats
        Statistics centred at ``params.beta``.
    """
    XT = np.ascontiguousarray(np.asarray(X, dtype=np.float64).T)
    if _has_intercept(XT):
        return estep_features(XT[1:], y, w, params, True)
    return estep_features(XT, y, w, params, False)


def estep_features(FT: np.ndarray, y: np.ndarray, w: np.ndarray, params: MixtureParams,
                   fit_intercept: bool) -> SuffStats:
    """:func:`estep` on the transposed features ``FT`` of shape (d, n).

    With ``fit_intercept`` the design is ``[1, x]`` and ``params.beta[:, 0]``
    is the intercept; the column of ones is never materialised.  ``FT``
    should have contiguous rows (``X.T`` of an F-ordered (n, d) array has).
    The chunk is processed in cache-sized column blocks; no temporary of size
    n × m × p is formed.
    """
    return estep_features_many(FT, y, w, (params,), fit_intercept)[0]


def estep_features_many(FT: np.ndarray, y: np.ndarray, w: np.ndarray, params_seq,
                        fit_intercept: bool) -> list[SuffStats]:
    """:func:`estep_features` for several parameter sets on one chunk.

    The chunk is read (decoded) once for all sets.  The compiled kernel then
    sweeps it once per set, its blocks staying in cache; the numpy E-step
    visits each block of rows once for all sets and forms its feature
    products (the part of the Gram statistics that does not depend on the
    parameters) once.  Each result equals that of :func:`estep_features` on
    its own -- bit for bit with the kernel, or on the numpy path when all
    sets have as many components (the blocks are then the same), else to
    rounding.
    """
    FT = np.asarray(FT, dtype=np.float64)
    d, n = FT.shape
    p = d + int(fit_intercept)
    for params in params_seq:
        if params.n_coef != p:
            raise ValueError(f"design matrix has {p} columns but the parameters have "
                             f"{params.n_coef}")
    if kernel.enabled():
        FT = kernel_layout(FT)
        y = np.require(y, np.float64, ["C", "A"])
        w = np.require(w, np.float64, ["C", "A"])
        sum_w = float(np.sum(w))
        return [_BlockRun(prm, fit_intercept, d, 0).compiled(FT, y, w, sum_w)
                for prm in params_seq]
    step = _block_rows(p, max(prm.n_components for prm in params_seq))
    block = min(step, max(n, 1))
    runs = [_BlockRun(prm, fit_intercept, d, block) for prm in params_seq]
    pairs = np.empty((d * (d + 1) // 2, block))
    for start in range(0, n, step):
        Fb = FT[:, start:start + step]
        yb = y[start:start + step]
        wb = w[start:start + step]
        Q = runs[0].acc.pair_products(Fb, pairs)
        for run in runs:
            run.add_block(Fb, yb, wb, Q)
    sum_w = float(np.sum(w))
    return [run.result(sum_w, n) for run in runs]


class _BlockRun:
    """The E-step of one parameter set, block by block (see :func:`estep_features_many`)."""

    def __init__(self, params: MixtureParams, fit_intercept: bool, d: int, block: int):
        m = params.n_components
        self.params, self.m = params, m
        self.log_norm = log_norm(params)[:, None]
        self.inv2s2 = (0.5 / params.sigma2)[:, None]
        if fit_intercept:
            self.b0 = params.beta[:, :1]
            self.coef = np.require(params.beta[:, 1:], np.float64, ["C", "A"])
        else:  # "A": unpickled parameters may be misaligned (see information.py)
            self.b0 = np.zeros((m, 1))
            self.coef = np.require(params.beta, np.float64, ["C", "A"])
        self.acc = _Accumulator(d, m, fit_intercept, block)
        self.loglik = self.class_ll = 0.0

    def add_block(self, Fb, yb, wb, Q) -> None:
        m, nb = self.m, yb.size
        R = self.coef @ Fb
        R += self.b0
        np.subtract(yb, R, out=R)
        L = R * R
        L *= -self.inv2s2
        L += self.log_norm
        M = L.max(axis=0)
        E = L - M
        np.exp(E, out=E)
        S = E.sum(axis=0)
        ll = np.log(S)
        ll += M
        np.multiply(E, wb / S, out=self.acc.H[:m, :nb])
        self.loglik += float(wb @ ll)
        self.class_ll += float(wb @ M)
        self.acc.add(Fb, R, nb, Q)

    def compiled(self, FT, y, w, sum_w: float) -> SuffStats:
        """The whole chunk in one call of the compiled kernel (same sums, other rounding)."""
        out = np.zeros(2)
        acc = self.acc
        kernel.estep_chunk(FT, y, w, self.coef, np.require(self.b0[:, 0], np.float64, ["C", "A"]),
                            self.log_norm[:, 0], self.inv2s2[:, 0], acc.g1, acc.hsum,
                            acc.s2p, acc.r0, out)
        self.loglik, self.class_ll = float(out[0]), float(out[1])
        return self.result(sum_w, y.size)

    def result(self, sum_w: float, n: int) -> SuffStats:
        s0, s2, rx, r0 = self.acc.finish()
        # Entropy -Σ w Σ_j γ log γ = Σ w ℓ - Σ_j Σ w γ L_j, and Σ w γ L_j follows
        # from s0 and r0 because L_j = log_norm_j - r² / (2 σ_j²): no extra pass.
        ent = self.loglik - float(self.log_norm[:, 0] @ s0 - self.inv2s2[:, 0] @ r0)
        return SuffStats(s0, s2, rx, r0, self.loglik, self.class_ll, ent, sum_w, int(n),
                         self.params.beta)


def accumulate(X, y, w, resp, beta) -> SuffStats:
    """Statistics for *given* responsibilities ``resp`` (n, m) on the design ``X``, centred
    at ``beta`` (a start from a partition of the rows; the likelihood fields are zero)."""
    return accumulate_many(X, y, w, (resp,), beta)[0]


def accumulate_many(X, y, w, resps, beta) -> list[SuffStats]:
    """:func:`accumulate` of each of ``resps`` (arrays of one shape), each block's residuals
    and feature products formed once for all: each result the same, bit for bit, as alone."""
    XT = np.ascontiguousarray(np.asarray(X, dtype=np.float64).T)
    intercept = _has_intercept(XT)
    FT = XT[1:] if intercept else XT
    d, n = FT.shape
    m = resps[0].shape[1]
    beta = np.asarray(beta, dtype=np.float64)
    step = _block_rows(d + 1, m)
    accs = [_Accumulator(d, m, intercept, min(step, max(n, 1))) for _ in resps]
    pairs = np.empty((accs[0].n_pairs, accs[0].H.shape[1]))
    for start in range(0, n, step):
        R = y[start:start + step] - beta @ XT[:, start:start + step]
        Fb = FT[:, start:start + step]
        Q = accs[0].pair_products(Fb, pairs)
        for acc, resp in zip(accs, resps, strict=True):
            acc.H[:m, :R.shape[1]] = (resp[start:start + step] * w[start:start + step, None]).T
            acc.add(Fb, R, R.shape[1], Q)
    sum_w = float(np.sum(w))
    return [SuffStats(*acc.finish(), 0.0, 0.0, 0.0, sum_w, int(n), beta) for acc in accs]


def kernel_layout(FT: np.ndarray) -> np.ndarray:
    """``FT`` as the kernel reads it (aligned float64, features or rows
    contiguous, strides in whole elements), else an aligned copy."""
    d, n = FT.shape
    if d == 0 or n == 0:
        return FT
    s0, s1 = FT.strides
    size = FT.itemsize
    if FT.flags.aligned and FT.dtype == np.float64:
        if (n == 1 or s1 == size) and (d == 1 or (s0 % size == 0 and s0 >= size * n)):
            return FT
        if (d == 1 or s0 == size) and s1 % size == 0 and s1 >= size * d:
            return FT
    return np.require(FT, np.float64, ["C", "A"])


def features_transposed(X: np.ndarray) -> np.ndarray:
    """The (d, n) view of the features that the E-step wants, copying only if needed.

    The compiled kernel reads features stored either way (it transposes a
    C-ordered block at a time in cache), so a float64 array is passed as it
    is: :func:`estep_features_many` copies only the layouts the kernel cannot
    read.  The numpy E-step wants each feature contiguous: an F-ordered
    (n, d) array (or a row slice of one) is used as it is, a C-ordered one
    is transposed.
    """
    FT = np.asarray(X).T
    if FT.dtype != np.float64:
        return np.ascontiguousarray(FT, dtype=np.float64)
    if kernel.enabled():
        return FT
    if FT.shape[1] > 1 and FT.strides[1] != FT.itemsize:
        FT = np.ascontiguousarray(FT)
    return FT


def design_matrix(X: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """The design matrix (n, p): a leading column of ones when an intercept is fitted."""
    X = np.asarray(X, dtype=np.float64)
    if not fit_intercept:
        return np.ascontiguousarray(X)
    out = np.empty((X.shape[0], X.shape[1] + 1))
    out[:, 0] = 1.0
    out[:, 1:] = X
    return out
