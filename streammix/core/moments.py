"""Weighted moments of (x, y) from the profiling pass (pass 0); mergeable.

:class:`Moments` holds weighted sums Σ w yᵏ, Σ w yᵏ x and Σ w yᵏ x xᵀ for
k = 0, 1, 2, and the weighted mean and centred co-moments of (x, y).  The
spectral start (:mod:`streammix.algorithms.start.spectral`) and
standardisation (:mod:`streammix.algorithms.standardize`) use them.  The
sums are raw (not centred per chunk), which is adequate for starting values;
features far from zero relative to their spread lose digits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["Moments"]


@dataclass(frozen=True)
class Moments:
    """Weighted moments of one pass.

    ``mean`` and ``m2`` are the weighted mean of z = (x, y) and its centred
    co-moment matrix Σ w (z − z̄)(z − z̄)ᵀ, merged with the formulas of
    Chan, Golub & LeVeque (1983), so means and variances keep their digits
    whatever the offset of the data.  ``sy[k] = Σ w yᵏ``, ``sx[k] = Σ w yᵏ x``
    and ``sxx[k] = Σ w yᵏ x xᵀ`` (k = 0, 1, 2) are raw sums for the spectral
    matrix.
    """

    sy: np.ndarray
    sx: np.ndarray
    sxx: np.ndarray
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None

    @classmethod
    def zeros(cls, n_features: int) -> Moments:
        d = n_features
        return cls(np.zeros(3), np.zeros((3, d)), np.zeros((3, d, d)), np.zeros(d + 1),
                   np.zeros((d + 1, d + 1)))

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray, w: np.ndarray, block: int = 65_536,
           spectral: bool = True) -> Moments:
        """The moments of the rows of one chunk, in row blocks of ``block``.

        Blocks bound the temporaries (a few copies of a block, not of the
        chunk) and are merged with :meth:`__add__`.  Without ``spectral`` the
        sums of k = 1, 2 (``sx[1:]``, ``sxx[1:]``, which only the spectral
        start reads) are not formed and are NaN, and the product is of the
        centred rows alone (d + 1 columns instead of 2d + 1).
        """
        n = len(y)
        if n <= block:
            return cls._of_block(X, y, w, spectral)
        total = cls._of_block(X[:block], y[:block], w[:block], spectral)
        for start in range(block, n, block):
            stop = start + block
            total = total + cls._of_block(X[start:stop], y[start:stop], w[start:stop],
                                          spectral)
        return total

    @classmethod
    def _of_block(cls, X: np.ndarray, y: np.ndarray, w: np.ndarray,
                  spectral: bool = True) -> Moments:
        """The moments of one block from one symmetric product of centred rows.

        With c = z − z̄ (z = (x, y)), the columns [√w c, √w c_y c_x] of one
        scratch matrix give, in one ``syrk``, the co-moment ``m2`` (the Gram
        of √w c), Σ w c_y² c_x c_xᵀ, Σ w c_y c_x c_xᵀ and Σ w c_y² c_x; the raw
        sums follow by expanding x = c_x + μ and y = c_y + ȳ (Σ w c = 0):
        about half the arithmetic of forming Σ w yᵏ x xᵀ directly
        (:meth:`_direct`, which gives the same sums to rounding).  The
        scratch matrix is kept per thread (:func:`_scratch`), so a pass
        writes its blocks to memory already mapped instead of faulting in
        fresh temporaries for every block.
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        n, d = X.shape
        sw = float(np.sum(w))
        if n == 0 or d == 0 or not sw > 0:
            return cls._direct(X, y, w)
        W = _scratch(n, 2 * d + 1 if spectral else d + 1)
        Z, V = W[:, :d + 1], W[:, d + 1:]
        Z[:, :d] = X
        Z[:, d] = y
        mean = (w @ Z) / sw
        mu, my = mean[:d], mean[d]
        Z -= mean  # c
        if not spectral:
            if not (w.min() == 1.0 == w.max()):
                Z *= np.sqrt(w)[:, None]  # √w c
            m2 = _gram(Z)
            nan = np.full((d, d), np.nan)
            sx = np.stack([sw * mu, np.full(d, np.nan), np.full(d, np.nan)])
            sy = np.array([sw, float(w @ y), float(w @ (y * y))])
            return cls(sy, sx, np.stack([m2[:d, :d] + sw * np.outer(mu, mu), nan, nan]),
                       mean, m2)
        np.multiply(Z[:, :d], Z[:, d:], out=V)  # c_y c_x
        if not (w.min() == 1.0 == w.max()):  # unit weights need no scaling
            W *= np.sqrt(w)[:, None]  # √w c, √w c_y c_x
        G = _gram(W)
        m2 = G[:d + 1, :d + 1]
        t2 = G[d + 1:, d + 1:]  # Σ w c_y² c_x c_xᵀ
        t1 = G[d + 1:, :d]  # Σ w c_y c_x c_xᵀ
        t1 = 0.5 * (t1 + t1.T)
        b = G[d + 1:, d].copy()  # Σ w c_y² c_x
        a, vyy = m2[:d, d], m2[d, d]  # Σ w c_y c_x, Σ w c_y²
        mm = np.outer(mu, mu)
        sxx0 = m2[:d, :d] + sw * mm
        c1 = t1 + np.outer(a, mu) + np.outer(mu, a)  # Σ w c_y x xᵀ
        sxx1 = c1 + my * sxx0
        sxx2 = (t2 + np.outer(b, mu) + np.outer(mu, b) + vyy * mm + (2 * my) * c1
                + (my * my) * sxx0)
        sx0 = sw * mu
        sx = np.stack([sx0, a + my * sx0, b + vyy * mu + (2 * my) * a + (my * my) * sx0])
        sy = np.array([sw, float(w @ y), float(w @ (y * y))])
        return cls(sy, sx, np.stack([sxx0, sxx1, sxx2]), mean, m2.copy())

    @classmethod
    def _direct(cls, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> Moments:
        """The moments of one block, each sum formed as written (the reference)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        wk = np.stack([w, w * y, w * y * y])  # (3, n)
        Z = np.column_stack([X, y])
        sw = float(np.sum(w))
        mean = (w @ Z) / sw if sw > 0 else np.zeros(Z.shape[1])
        C = Z - mean
        return cls(wk.sum(axis=1), wk @ X, np.stack([(X * v[:, None]).T @ X for v in wk]),
                   mean, (C * w[:, None]).T @ C)

    def __add__(self, other: Moments) -> Moments:
        if not isinstance(other, Moments):
            return NotImplemented
        na, nb = self.sum_w, other.sum_w
        if nb == 0:
            mean, m2 = self.mean, self.m2
        elif na == 0:
            mean, m2 = other.mean, other.m2
        else:
            delta = other.mean - self.mean
            n = na + nb
            mean = self.mean + delta * (nb / n)
            m2 = self.m2 + other.m2 + np.outer(delta, delta) * (na * nb / n)
        return Moments(self.sy + other.sy, self.sx + other.sx, self.sxx + other.sxx, mean, m2)

    @property
    def sum_w(self) -> float:
        return float(self.sy[0])

    def mean_x(self) -> np.ndarray:
        return self.mean[:-1].copy()

    def mean_y(self) -> float:
        return float(self.mean[-1])

    def cov_x(self) -> np.ndarray:
        """Weighted covariance of the features (divisor Σw)."""
        return self.m2[:-1, :-1] / self.sum_w

    def var_y(self) -> float:
        return float(self.m2[-1, -1] / self.sum_w)

    def spectral_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(E[ỹ² z zᵀ] − E[ỹ²] I, W)`` with z = W (x − μ) and W = Σ_x^{-1/2}."""
        N = self.sum_w
        mu, my = self.mean_x(), self.mean_y()
        e_xx = self.sxx / N  # E[yᵏ x xᵀ]
        e_x = self.sx / N  # E[yᵏ x]
        a2_xx = e_xx[2] - 2 * my * e_xx[1] + my * my * e_xx[0]  # E[ỹ² x xᵀ]
        a2_x = e_x[2] - 2 * my * e_x[1] + my * my * e_x[0]  # E[ỹ² x]
        a2 = self.var_y()
        C = a2_xx - np.outer(a2_x, mu) - np.outer(mu, a2_x) + a2 * np.outer(mu, mu)
        evals, evecs = np.linalg.eigh(self.cov_x())
        if evals.min(initial=np.inf) <= 1e-12 * max(evals.max(initial=0.0), 1e-300):
            raise ValueError("the feature covariance is singular; the spectral start needs "
                             "linearly independent features")
        W = (evecs / np.sqrt(evals)) @ evecs.T
        return W @ C @ W - a2 * np.eye(len(mu)), W


#: A thread keeps its scratch matrix up to this size (bytes); larger ones are made per block.
SCRATCH_BYTES = 16 << 20
_local = threading.local()


def _scratch(n: int, q: int) -> np.ndarray:
    """An F-ordered (n, q) float64 scratch matrix, the same memory for every call on a thread.

    A fresh temporary per block costs page faults: glibc maps every array
    this size anew (and Dask workers keep it so, with
    ``MALLOC_TRIM_THRESHOLD_``).  Kept buffers are at most
    :data:`SCRATCH_BYTES`; the caller must not keep views of it.
    """
    size = n * q
    if size * 8 > SCRATCH_BYTES:
        return np.empty((n, q), order="F")
    flat = getattr(_local, "buffer", None)
    if flat is None or flat.size < size:
        flat = _local.buffer = np.empty(max(size, 1))
    return flat[:size].reshape((n, q), order="F")


def _gram(A: np.ndarray) -> np.ndarray:
    """AᵀA of an F-ordered (n, q) float64 matrix (BLAS ``syrk``, mirrored)."""
    from scipy.linalg.blas import dsyrk  # here: scipy.linalg takes 0.1 s to import

    upper = dsyrk(1.0, A, trans=1)
    return np.triu(upper) + np.triu(upper, 1).T
