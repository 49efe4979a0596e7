"""Standard errors at the fitted parameters, in one chunked pass.

The formulas are those of the mathematics page (docs/mathematics.rst), §6.

The information matrices are accumulated as mergeable per-chunk statistics
(:class:`InfoStats`), computed by the picklable map function
:class:`InformationTask` and summed by an engine's ``map_reduce``, exactly
like the E-step statistics of an EM pass.

Working parametrisation
-----------------------
All matrices refer to the unconstrained coordinates flexmix's ``refit()``
uses, in this order (see
:class:`~streammix.algorithms.parameter_layout.ParameterLayout`):

* ``noise="per_component"``: for each component j, its coefficients β_j
  (intercept first when fitted) followed by η_j = log σ_j; then the
  multinomial logits α_j = log(π_j / π_1) for j = 2..m (component 1, the
  heaviest in the canonical order, is the baseline);
* ``noise="shared"``: β_1, ..., β_m, then one η = log σ, then the logits;
* ``noise="fixed"``: β_1, ..., β_m, then the logits (σ is known).

Complete-data score and negative Hessian of row i in component j, with
r = y − β_jᵀx and σ = σ_j:

* score: β_j → r x / σ²;  η → r²/σ² − 1;  α_k → 1{j = k} − π_k
* negative Hessian: β_jβ_j → x xᵀ/σ²;  β_jη → 2 r x/σ²;  ηη → 2 r²/σ²;
  α_kα_l → π_k (1{k = l} − π_l)

With responsibilities γ_ij and observed score s_i = Σ_j γ_ij s_ij:

* Louis (1982): I = Σ_i w_i [Σ_j γ_ij (B_ij − s_ij s_ijᵀ) + s_i s_iᵀ]; exact
  (it is the negative Hessian of the observed log-likelihood) at any θ;
* OPG: J = Σ_i w_i s_i s_iᵀ (valid at the MLE);
* sandwich: I⁻¹ J I⁻¹.

The weights w are frequency weights: row i counts w_i times.  Under priors
(ridge, inverse-gamma, Dirichlet) the matrices are those of the likelihood
alone, evaluated at the MAP estimate.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np

from streammix.algorithms.parameter_layout import ParameterLayout
from streammix.core import kernel
from streammix.core.params import MixtureParams
from streammix.core.reduce import tree_sum
from streammix.core.stats import kernel_layout, log_norm, log_responsibilities
from streammix.exceptions import InferenceWarning

#: Target number of float64 elements of the per-block score matrix (1 MiB: the block's
#: matrices stay in cache while the GEMMs read them).
BLOCK_ELEMENTS = 1 << 17

_NOISE_CODES = {"fixed": 0, "shared": 1, "per_component": 2}

__all__ = [
    "SE_METHODS", "InfoStats", "InformationTask", "information_stats", "Inference", "infer",
    "constrain",
]

logger = logging.getLogger(__name__)

SE_METHODS = ("louis", "opg", "sandwich")


@dataclass(frozen=True, eq=False)
class InfoStats:
    """Mergeable statistics of the information pass.

    Attributes
    ----------
    score : ndarray of shape (P,)
        Σ w s_i, the gradient of the log-likelihood (zero at the MLE).
    opg : ndarray of shape (P, P)
        Σ w s_i s_iᵀ.
    louis : ndarray of shape (P, P)
        Σ w Σ_j γ_ij (B_ij − s_ij s_ijᵀ), the part of Louis' formula that is
        not the OPG; the observed information is ``louis + opg``.
    loglik : float
    sum_w : float
    n_rows : int
    """

    score: np.ndarray
    opg: np.ndarray
    louis: np.ndarray
    loglik: float
    sum_w: float
    n_rows: int

    @classmethod
    def zeros(cls, size: int) -> InfoStats:
        """The identity of ``+``."""
        return cls(np.zeros(size), np.zeros((size, size)), np.zeros((size, size)), 0.0, 0.0, 0)

    def __add__(self, other: InfoStats) -> InfoStats:
        if not isinstance(other, InfoStats):
            return NotImplemented
        if self.score.shape != other.score.shape:
            raise ValueError(f"cannot add information statistics of sizes "
                             f"{self.score.size} and {other.score.size}")
        return InfoStats(self.score + other.score, self.opg + other.opg,
                         self.louis + other.louis, self.loglik + other.loglik,
                         self.sum_w + other.sum_w, self.n_rows + other.n_rows)

    @property
    def observed(self) -> np.ndarray:
        """Observed information (Louis), symmetrised."""
        info = self.louis + self.opg
        return 0.5 * (info + info.T)


def constrain(stats: InfoStats, A: np.ndarray) -> InfoStats:
    """The statistics of a constrained parametrisation θ_full = A θ (shared coefficients:
    :func:`~streammix.algorithms.parameter_layout.constraint_matrix`): Aᵀ s, Aᵀ J A, Aᵀ L A.

    The row scores of θ are Aᵀ times those of θ_full, so the OPG and Louis'
    part transform alike and the pass itself needs no change.
    """
    return InfoStats(A.T @ stats.score, A.T @ stats.opg @ A, A.T @ stats.louis @ A,
                     stats.loglik, stats.sum_w, stats.n_rows)


def information_stats(X: np.ndarray, y: np.ndarray, w: np.ndarray, params: MixtureParams,
                      noise: str) -> InfoStats:
    """The :class:`InfoStats` of one chunk.

    Parameters
    ----------
    X : ndarray of shape (n, p)
        Design matrix (intercept column first when fitted).
    y, w : ndarray of shape (n,)
    params : MixtureParams
        The parameters at which the information is evaluated.
    noise : {"per_component", "shared", "fixed"}
        Which σ parametrisation the model has (σ is not a parameter when fixed).

    Notes
    -----
    With the compiled kernel (``streammix.core.kernel.enabled()``) the chunk goes through
    :func:`_information_compiled` in one call that releases the GIL.
    Otherwise the numpy path runs, in blocks of about ``BLOCK_ELEMENTS / P``
    rows so that the temporaries (the n × P score matrix) stay small
    whatever the chunk size.  The two agree to rounding (the tests hold them
    equal to 1e-12 of scale).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    layout = ParameterLayout(params.n_components, params.n_coef, noise)
    if kernel.enabled() and X.shape[0] > 0 and X.shape[1] > 0:
        return _information_compiled(X, y, w, params, layout)
    step = max(64, BLOCK_ELEMENTS // layout.size)
    n = X.shape[0]
    if n <= step:
        return _information_block(X, y, w, params, layout)
    blocks = (_information_block(X[s:s + step], y[s:s + step], w[s:s + step], params, layout)
              for s in range(0, n, step))
    return tree_sum(blocks, InfoStats.zeros(layout.size))


def _information_block(X, y, w, params: MixtureParams, layout: ParameterLayout) -> InfoStats:
    """:func:`information_stats` of one block of rows, in a few level-3 BLAS calls.

    The block's score matrix S (rows × P) gives the OPG in one GEMM; Louis'
    part comes from the same sums the compiled kernel forms (one GEMM for
    the m weighted Grams, one for the 2m weighted feature sums), assembled by
    :func:`_louis_from_sums`.
    """
    m, p, P = params.n_components, params.n_coef, layout.size
    n = X.shape[0]
    ll, log_resp, R = log_responsibilities(X, y, params)
    # Responsibilities below e^-600 add nothing visible in float64 but their products
    # are subnormal numbers, which make the GEMMs below many times slower.
    gamma = np.where(log_resp > -600.0, np.exp(log_resp), 0.0)
    wg = w[:, None] * gamma
    inv_s2 = 1.0 / params.sigma2
    a = R * inv_s2                      # a_j = r_j / σ_j²
    ra = R * a
    u = ra - 1.0                        # the η_j score r_j²/σ_j² − 1
    S = np.zeros((n, P))
    # β_j is the run of p columns from j·stride (the layout of one chunk has no shared β)
    stride = p + 1 if layout.noise == "per_component" else p
    S_beta = S[:, :m * stride].reshape(n, m, stride)[:, :, :p]
    np.multiply((gamma * a)[:, :, None], X[:, None, :], out=S_beta)
    if layout.eta_index is not None:
        gu = gamma * u
        if layout.noise == "shared":
            S[:, layout.eta_index[0]] = gu.sum(axis=1)
        else:
            S[:, layout.eta_index] = gu
    if m > 1:
        S[:, layout.alpha_index] = gamma[:, 1:] - params.weights[1:]
    Sw = S * w[:, None]
    C = wg * (inv_s2 - a * a)           # w γ_j (1/σ_j² − a_j²)
    lgram = ((C[:, :, None] * X[:, None, :]).reshape(n, m * p).T @ X).reshape(m, p, p)
    wga = wg * a
    lvec = np.concatenate([wga * (3.0 - ra), wga], axis=1).T @ X
    ones = np.ones(n)
    scal = np.concatenate([ones @ np.concatenate([wg * (2.0 * ra - u * u), wg * u, wg], axis=1),
                           [0.0]])
    sum_w = float(w.sum())
    louis = _louis_from_sums(lgram, lvec, scal, params, layout, sum_w)
    return InfoStats(w @ S, Sw.T @ S, louis, float(w @ ll), sum_w, int(n))


def _information_compiled(X, y, w, params: MixtureParams, layout: ParameterLayout,
                          intercept: bool = False) -> InfoStats:
    """:func:`information_stats` in one call of the compiled kernel.

    With ``intercept`` ``X`` holds the features only and the design is
    ``[1, X]``: the kernel puts the ones in itself, so a chunk is not copied
    into a design matrix first.

    The kernel (``info_chunk`` in ``_kernel.c``) sweeps the rows in
    cache-sized blocks: it forms each block's √w-scaled score matrix Z and
    adds ``Z Zᵀ`` (the OPG) in 4 × 4 register tiles, and, per component j,
    Σ w γ_j (1/σ_j² − a_j²) x xᵀ (the β_jβ_j block of Louis' part, with
    a_j = r_j/σ_j²) and a few vectors and sums from which
    :func:`_louis_from_sums` builds the rest of Louis' part.
    """
    m, p, P = params.n_components, params.n_coef, layout.size
    n = X.shape[0]
    FT = kernel_layout(X.T)
    y = np.require(y, np.float64, ["C", "A"])
    w = np.require(w, np.float64, ["C", "A"])
    opg = np.zeros((P, P))
    lgram = np.zeros((m, p, p))
    lvec = np.zeros((2 * m, p))
    zsum = np.zeros(P)
    scal = np.zeros(3 * m + 1)
    # "A": parameters unpickled on a Dask worker may sit at any byte offset of the
    # message buffer; the kernel reads float64 only at 8-byte aligned addresses.
    kernel.info_chunk(FT, y, w, np.require(params.beta, np.float64, ["C", "A"]),
                             np.require(log_norm(params), np.float64, ["C", "A"]),
                             np.require(0.5 / params.sigma2, np.float64, ["C", "A"]),
                             np.require(params.weights[1:], np.float64, ["C", "A"]),
                             _NOISE_CODES[layout.noise], opg, lgram, lvec, zsum, scal,
                             bool(intercept))
    sum_w = float(np.sum(w))
    louis = _louis_from_sums(lgram, lvec, scal, params, layout, sum_w)
    return InfoStats(zsum, opg, louis, float(scal[3 * m]), sum_w, int(n))


def _louis_from_sums(lgram, lvec, scal, params: MixtureParams, layout: ParameterLayout,
                     sum_w: float) -> np.ndarray:
    """Louis' part Σ w Σ_j γ_j (B_j − s_j s_jᵀ) from the sums of :func:`_information_compiled`.

    Run once per chunk, so its blocks are addressed by slices
    (:func:`_block_slices`), not by index arrays: the same additions in the
    same order, without building ``np.ix_`` grids for every block.
    """
    m, P = params.n_components, layout.size
    bidx, eidx, aidx = _block_slices(layout)
    pi_tail = params.weights[1:]
    louis = np.zeros((P, P))
    if m > 1:
        louis[aidx, aidx] += sum_w * (np.diag(pi_tail) - np.outer(pi_tail, pi_tail))
    for j in range(m):
        bj = bidx[j]
        louis[bj, bj] += lgram[j]
        if eidx is not None:
            e = eidx[j]
            cross = lvec[j]
            louis[bj, e] += cross
            louis[e, bj] += cross
            louis[e, e] += scal[j]
        if m > 1:
            f = -pi_tail.copy()  # the logit part of row i's score in component j
            if j > 0:
                f[j - 1] += 1.0
            ba = np.outer(lvec[m + j], f)
            louis[bj, aidx] -= ba
            louis[aidx, bj] -= ba.T
            if eidx is not None:
                louis[e, aidx] -= scal[m + j] * f
                louis[aidx, e] -= scal[m + j] * f
            louis[aidx, aidx] -= scal[2 * m + j] * np.outer(f, f)
    return louis


@functools.lru_cache(maxsize=64)
def _block_slices(layout: ParameterLayout):
    """``layout``'s β_j rows and logit rows as slices (each a run of consecutive
    positions), and its η_j positions (None for fixed noise).

    The information pass works in the full layout, without shared
    coefficients (:func:`constrain` applies those to its sums).
    """
    if layout.shared:
        raise ValueError("the information pass takes the layout without shared coefficients")
    beta = [slice(int(b[0]), int(b[0]) + b.size) for b in layout.beta_index]
    alpha = layout.alpha_index
    eta = layout.eta_index
    return (beta, None if eta is None else [int(e) for e in eta],
            slice(int(alpha[0]) if alpha.size else layout.size, layout.size))


@dataclass(frozen=True)
class InformationTask:
    """Map function of the information pass: a chunk -> its :class:`InfoStats`."""

    params: MixtureParams
    fit_intercept: bool
    noise: str

    @property
    def releases_gil(self) -> bool:
        """Whether the compiled information block runs (threads then pay)."""
        return kernel.enabled()

    def __call__(self, chunk) -> InfoStats:
        if kernel.enabled() and chunk.X.shape[0] > 0:  # the kernel adds the ones itself
            layout = ParameterLayout(self.params.n_components, self.params.n_coef, self.noise)
            X = np.asarray(chunk.X, dtype=np.float64)
            if X.shape[1] + int(self.fit_intercept) != self.params.n_coef:
                raise ValueError(f"the chunk has {X.shape[1]} features but the parameters "
                                 f"have {self.params.n_coef} coefficients")
            return _information_compiled(X, np.asarray(chunk.y, dtype=np.float64),
                                         np.asarray(chunk.w, dtype=np.float64), self.params,
                                         layout, self.fit_intercept)
        return information_stats(_design_by_columns(chunk.X, self.fit_intercept), chunk.y,
                                 chunk.w, self.params, self.noise)


def _design_by_columns(X, fit_intercept: bool) -> np.ndarray:
    """The design matrix (n, p) of :func:`~streammix.core.stats.design_matrix`, F-ordered.

    Each column is contiguous, so a source's F-ordered chunk is copied column
    by column and the compiled kernel reads it by rows of its transpose,
    without gathering.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    out = np.empty((d + int(fit_intercept), n))
    if fit_intercept:
        out[0] = 1.0
    out[int(fit_intercept):] = X.T
    return out.T


def _inverse(matrix: np.ndarray, what: str) -> np.ndarray:
    sym = 0.5 * (matrix + matrix.T)
    try:
        np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        warnings.warn(f"the {what} matrix is not positive definite: the parameters are not "
                      "at a maximum of the likelihood (or a component is degenerate); "
                      "some standard errors will be NaN", InferenceWarning, stacklevel=6)
        return np.linalg.pinv(sym)
    inv = np.linalg.inv(sym)
    return 0.5 * (inv + inv.T)


def covariance(stats: InfoStats, method: str = "louis") -> np.ndarray:
    """Covariance matrix of the working parameters from an information pass.

    Parameters
    ----------
    stats : InfoStats
    method : {"louis", "opg", "sandwich"}
        Inverse observed information (Louis), inverse outer product of the
        scores, or the sandwich I⁻¹ J I⁻¹.
    """
    if method not in SE_METHODS:
        raise ValueError(f"method must be one of {SE_METHODS}, got {method!r}")
    opg = 0.5 * (stats.opg + stats.opg.T)
    if method == "opg":
        return _inverse(opg, "score outer-product")
    inv = _inverse(stats.observed, "observed information")
    if method == "louis":
        return inv
    sand = inv @ opg @ inv
    return 0.5 * (sand + sand.T)


@dataclass(frozen=True)
class Inference:
    """Covariance of the working parameters and derived standard errors.

    Attributes
    ----------
    method : str
        "louis", "opg" or "sandwich".
    layout : ParameterLayout
    vcov : ndarray of shape (P, P)
    score : ndarray of shape (P,)
        Gradient of the log-likelihood at the parameters.
    loglik_gap : float
        ½ sᵀ I⁻¹ s: the estimated distance in log-likelihood to the maximum
        (about zero at the MLE; the mathematics page (docs/mathematics.rst), §3.2).
    """

    method: str
    layout: ParameterLayout
    vcov: np.ndarray
    score: np.ndarray
    loglik_gap: float

    def standard_errors(self, params: MixtureParams) -> dict[str, np.ndarray]:
        """Per-component standard errors (see :func:`standard_errors`)."""
        return standard_errors(self.vcov, self.layout, params)


def standard_errors(vcov: np.ndarray, layout: ParameterLayout,
                    params: MixtureParams) -> dict[str, np.ndarray]:
    """Per-component standard errors from the working covariance.

    Returns
    -------
    dict with
        ``coef`` (m, p): coefficients, intercept first when fitted;
        ``log_sigma`` (m,): SE of log σ_j (all equal for shared noise, NaN
        for fixed noise); ``sigma`` (m,): σ_j · SE(log σ_j) (delta method);
        ``logit_weight`` (m,): SE of log(π_j/π_1) (NaN for the baseline
        j = 1); ``weight`` (m,): SE of π_j by the delta method through the
        softmax.
    """
    with np.errstate(invalid="ignore"):
        var = np.diag(vcov)
        se = np.sqrt(np.where(var >= 0, var, np.nan))
    m = layout.n_components
    out = {"coef": se[layout.beta_index]}
    if layout.eta_index is None:
        out["log_sigma"] = np.full(m, np.nan)
    else:
        out["log_sigma"] = se[layout.eta_index]
    out["sigma"] = np.sqrt(params.sigma2) * out["log_sigma"]
    logit = np.full(m, np.nan)
    logit[1:] = se[layout.alpha_index]
    out["logit_weight"] = logit
    pi = params.weights
    if m > 1:
        # dπ_j/dα_k = π_j (1{j=k} − π_k), k = 2..m
        jac = np.diag(pi)[:, 1:] - np.outer(pi, pi[1:])
        va = vcov[np.ix_(layout.alpha_index, layout.alpha_index)]
        with np.errstate(invalid="ignore"):
            vw = np.einsum("jk,kl,jl->j", jac, va, jac)
            out["weight"] = np.sqrt(np.where(vw >= 0, vw, np.nan))
    else:
        out["weight"] = np.zeros(1)
    return out


def infer(stats: InfoStats, layout: ParameterLayout, method: str = "louis") -> Inference:
    """Turn an information pass into an :class:`Inference`.

    Warns (:class:`InferenceWarning`) when the score is far from zero, i.e.
    when the parameters are not the maximum-likelihood estimate and the
    OPG/sandwich estimates (which assume it) are biased.
    """
    vcov = covariance(stats, method)
    info_inv = vcov if method == "louis" else covariance(stats, "louis")
    with np.errstate(invalid="ignore"):
        gap = 0.5 * float(stats.score @ info_inv @ stats.score)
    if not math.isfinite(gap) or gap > 1e-2:
        warnings.warn(
            f"the score at these parameters is not zero (estimated log-likelihood gap to the "
            f"maximum {gap:.3g}): they are not the maximum-likelihood estimate (a prior, "
            "df_correction, or EM not converged: lower tol); standard errors refer to a "
            "different point", InferenceWarning, stacklevel=4)
    logger.info("standard errors (%s): P = %d, score gap %.3g", method, layout.size, gap)
    return Inference(method, layout, vcov, stats.score.copy(), gap)
