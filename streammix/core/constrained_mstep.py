"""The coefficient update when some coefficients are shared by all components.

flexmix's ``FLXMRglmfix(fixed = ~ x2)``: the columns ``shared`` of the
design have one coefficient c for every component, the others one b_j per
component.  Given per-component precisions u_j (1/σ_j² for the maximum-
likelihood update, 1 for flexmix's pooled fit), the coefficients maximise

    Q(c, b) = −½ Σ_j u_j Σ_i w γ_ij (y_i − cᵀx_iS − b_jᵀx_iV)²

which is one joint weighted least-squares system in [c, b_1, ..., b_m],
assembled from the per-component statistics a pass already reduces
(the Gram matrices S2_j = Σ wγ x xᵀ and the residual vectors Rx_j = Σ wγ x r
at the current coefficients; the mathematics page (docs/mathematics.rst), §1.3):

    [Σ_j u_j G_j^SS   u_1 G_1^SV  ...  u_m G_m^SV] [Δc  ]   [Σ_j u_j Rx_j^S]
    [u_1 G_1^VS       u_1 G_1^VV            0    ] [Δb_1] = [u_1 Rx_1^V    ]
    [ ...                              ...       ] [ ... ]  [ ...          ]

with G_j = S2_j + Λ and Rx_j − Λ(β_j − m0) under a ridge prior.  No pass
over the data is needed.  Numpy only.
"""

from __future__ import annotations

import numpy as np

from streammix.core.linsolve import solve_spd

__all__ = ["INTERCEPT_NAMES", "fixed_entries", "resolve_shared", "shared_columns_check",
           "joint_coefficients", "project_shared"]

#: How the intercept is named in the estimator option ``fixed``.
INTERCEPT_NAMES = ("(intercept)", "(Intercept)")


def fixed_entries(fixed) -> list:
    """The estimator option ``fixed`` (None, a name, an index or a list) as a list."""
    if fixed is None:
        return []
    if isinstance(fixed, (str, int, np.integer)):
        return [fixed]
    return list(fixed)


def resolve_shared(fixed, feature_names, fit_intercept: bool) -> tuple[int, ...]:
    """The design columns (sorted) of the option ``fixed`` for features ``feature_names``.

    Names are matched against ``feature_names``, integers are column
    indices of X; the intercept is design column 0.  Unknown names raise
    ``ValueError`` listing the features.
    """
    names = list(feature_names)
    offset = int(fit_intercept)
    cols = []
    for entry in fixed_entries(fixed):
        if isinstance(entry, str) and entry in INTERCEPT_NAMES:
            if not fit_intercept:
                raise ValueError("fixed names the intercept but fit_intercept=False")
            cols.append(0)
        elif isinstance(entry, str):
            if entry not in names:
                raise ValueError(f"fixed names {entry!r}, which is not a feature; "
                                 f"the features are {names}")
            cols.append(names.index(entry) + offset)
        else:
            if not 0 <= int(entry) < len(names):
                raise ValueError(f"fixed column index {entry} is out of range for "
                                 f"{len(names)} features")
            cols.append(int(entry) + offset)
    cols = tuple(sorted(set(cols)))
    if cols and len(cols) == len(names) + offset:
        raise ValueError("fixed lists every coefficient: the components would share one "
                         "regression line; leave at least one coefficient free")
    return cols


def shared_columns_check(shared, p: int) -> tuple[int, ...]:
    """``shared`` as a sorted tuple of distinct design columns in ``[0, p)``; else ValueError."""
    cols = tuple(sorted(int(k) for k in shared))
    if len(set(cols)) != len(cols) or any(k < 0 or k >= p for k in cols):
        raise ValueError(f"shared coefficient columns must be distinct and in [0, {p}), "
                         f"got {list(shared)}")
    if len(cols) == p and p > 0:
        raise ValueError("every coefficient is shared: the components would have the same "
                         "regression line; leave at least one coefficient free")
    return cols


def joint_coefficients(gram: np.ndarray, rhs: np.ndarray, precision: np.ndarray,
                       shared: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """The coefficient steps Δ (m, p) of the joint system above.

    Parameters
    ----------
    gram : ndarray of shape (m, p, p)
        G_j (the penalised Gram matrices).
    rhs : ndarray of shape (m, p)
        The right-hand sides (Rx_j, minus the prior's pull under a ridge).
    precision : ndarray of shape (m,)
        u_j.
    shared : tuple of int
        The shared design columns.

    Returns
    -------
    delta : ndarray of shape (m, p)
        Steps with equal entries in the shared columns.
    cut : bool
        Whether the system was rank-deficient (the cut-off solve was used).
    """
    m, p, _ = gram.shape
    S = np.asarray(shared, dtype=np.intp)
    V = np.setdiff1d(np.arange(p), S)
    s, v = S.size, V.size
    size = s + m * v
    A = np.zeros((size, size))
    b = np.zeros(size)
    for j in range(m):
        u = precision[j]
        G = gram[j]
        rows = slice(s + j * v, s + (j + 1) * v)
        A[:s, :s] += u * G[np.ix_(S, S)]
        A[:s, rows] = u * G[np.ix_(S, V)]
        A[rows, :s] = u * G[np.ix_(V, S)]
        A[rows, rows] = u * G[np.ix_(V, V)]
        b[:s] += u * rhs[j, S]
        b[rows] = u * rhs[j, V]
    # Scale rows and columns to unit diagonal: components of very different σ
    # (or weight) then do not make the system look ill-conditioned.
    diag = np.diag(A)
    scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)
    z, cut = solve_spd(A * np.outer(scale, scale), b * scale)
    x = z * scale
    delta = np.empty((m, p))
    delta[:, S] = x[:s]
    for j in range(m):
        delta[j, V] = x[s + j * v: s + (j + 1) * v]
    return delta, cut


def project_shared(beta: np.ndarray, weights: np.ndarray,
                   shared: tuple[int, ...]) -> np.ndarray:
    """``beta`` with each shared column replaced by its weight-averaged value
    (a starting point that satisfies the constraint)."""
    out = np.array(beta, dtype=np.float64, copy=True)
    if shared:
        cols = list(shared)
        out[:, cols] = np.asarray(weights, float) @ out[:, cols]
    return out
