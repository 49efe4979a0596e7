"""Many short EM runs at once on an in-memory sample ("population EM").

The start pool (:mod:`streammix.algorithms.start.pool`) ranks hundreds of
starting values by a few EM iterations each.  Run one by one, each iteration
of each start would pay the Python overhead of an E-step and an M-step; here
the R runs are stacked: the parameters are arrays ``W`` (R, m), ``B``
(R, m, p), ``S2`` (R, m), the responsibilities one (R, m, n) array, and each
iteration is two matrix products with the (n, p²) row products of the design
plus element-wise work, for all runs together.

These runs only rank candidates.  The M-step is the maximum-likelihood one
(weights, weighted least squares, σ² with the floor), plus the ridge if any;
priors on σ² and on the weights and flexmix's df correction are left to the
full EM that refines the winners (:func:`streammix.algorithms.em.run_em`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Population", "concat", "population_em", "population_mstep", "stack", "unstack"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class Population:
    """R parameter sets of m components stacked, and their latest pass.

    Attributes
    ----------
    weights, beta, sigma2 : ndarray of shape (R, m), (R, m, p), (R, m)
    loglik : ndarray of shape (R,)
        Log-likelihood of each run at its current parameters (−inf before
        the first pass).
    n_eff : ndarray of shape (R, m)
        Effective rows per component (Σ γ, unit weights) at the last pass.
    """

    weights: np.ndarray
    beta: np.ndarray
    sigma2: np.ndarray
    loglik: np.ndarray
    n_eff: np.ndarray

    @property
    def size(self) -> int:
        return self.weights.shape[0]

    def take(self, index) -> Population:
        """The runs at ``index`` (an index array or a boolean mask)."""
        return Population(self.weights[index], self.beta[index], self.sigma2[index],
                          self.loglik[index], self.n_eff[index])


def stack(params_list) -> Population:
    """A population from a list of :class:`~streammix.core.params.MixtureParams`
    with the same numbers of components and coefficients."""
    weights = np.array([prm.weights for prm in params_list], dtype=float)
    beta = np.array([prm.beta for prm in params_list], dtype=float)
    sigma2 = np.array([prm.sigma2 for prm in params_list], dtype=float)
    r = weights.shape[0]
    return Population(weights, beta, sigma2, np.full(r, -np.inf), np.zeros_like(weights))


def unstack(pop: Population, i: int):
    """Run ``i`` of ``pop`` as a :class:`~streammix.core.params.MixtureParams`."""
    from streammix.core.params import MixtureParams

    weights = np.maximum(pop.weights[i], 1e-12)
    return MixtureParams(weights / weights.sum(), pop.beta[i], pop.sigma2[i])


def _log_joint(sq: np.ndarray, weights: np.ndarray, sigma2: np.ndarray,
               out: np.ndarray) -> np.ndarray:
    """log π_j + log φ(y; x β_j, σ_j²) into ``out`` (R, m, n), from the squared
    residuals ``sq`` (``out`` may be ``sq``).  ``sq / (2 σ²)`` is ``0.5 sq / σ²``
    bit for bit (halving and doubling are exact short of overflow), in one pass fewer.
    A weight of 0 gives −inf (the caller ignores numpy's divide warning)."""
    np.divide(sq, (2.0 * sigma2)[:, :, None], out=out)
    const = np.log(weights) - 0.5 * (_LOG_2PI + np.log(sigma2))
    return np.subtract(const[:, :, None], out, out=out)


def _over_components(op, a: np.ndarray) -> np.ndarray:
    """``op`` (np.add, np.maximum) reduced over axis 1 of ``a`` (R, m, n), as (R, 1, n):
    the components one after another, as numpy's reduction over that axis adds
    them, without its per-call cost on a few components."""
    if a.shape[1] == 1:
        return a.copy()
    out = op(a[:, :1], a[:, 1:2])
    for j in range(2, a.shape[1]):
        op(out, a[:, j:j + 1], out=out)
    return out


def population_em(Xd: np.ndarray, y: np.ndarray, w: np.ndarray, pop: Population, *,
                  n_iter: int, noise: str, floor: float,
                  penalty: np.ndarray | None = None,
                  fixed_sigma2: np.ndarray | None = None, tol: float = 0.0,
                  trace: list | None = None) -> Population:
    """``n_iter`` EM iterations of every run of ``pop`` on the rows ``(Xd, y, w)``,
    fewer when ``tol`` > 0 and no run's log-likelihood moved by more than ``tol``
    in the last one.

    Ends on an E-step: ``loglik`` and ``n_eff`` belong to the returned
    parameters.  ``noise`` is ``"per_component"``, ``"shared"`` or
    ``"fixed"`` (σ² held at ``fixed_sigma2``); ``floor`` bounds every σ²
    from below; ``penalty`` (p, p) is added to every weighted Gram matrix
    (the ridge).  Runs whose M-step fails keep −inf log-likelihood.  ``trace``,
    if given, receives the log-likelihoods of every E-step, one (R,) array each.

    On a few hundred rows each iteration is a dozen element-wise passes over
    (R, m, n) arrays, so they are made in place in three buffers; with unit
    row weights the weighted responsibilities are the responsibilities.
    """
    n, p = Xd.shape
    r, m = pop.weights.shape
    design = _design(Xd, y, w)
    XdT = design[2]
    unit = bool(np.all(w == 1.0))
    pen = None if penalty is None else np.asarray(penalty, float)
    weights, beta = pop.weights.copy(), pop.beta.copy()
    sigma2 = np.maximum(pop.sigma2, floor) if noise != "fixed" else \
        np.broadcast_to(np.asarray(fixed_sigma2, float), (r, m)).copy()
    ok, all_ok = np.ones(r, dtype=bool), True
    sq = _squared_residuals(beta, y, XdT, np.empty((r, m, n)))
    lj, tmp = np.empty_like(sq), np.empty_like(sq)
    loglik = np.full(r, -np.inf)
    n_eff = np.zeros((r, m))
    eye = np.eye(p)
    with np.errstate(divide="ignore"):
        for it in range(n_iter + 1):
            _log_joint(sq, weights, sigma2, out=lj)
            top = _over_components(np.maximum, lj)
            np.exp(np.subtract(lj, top, out=tmp), out=tmp)
            lse = top + np.log(_over_components(np.add, tmp))
            previous, loglik = loglik, lse[:, 0, :] @ w
            if not all_ok:
                loglik = np.where(ok, loglik, -np.inf)
            if trace is not None:
                trace.append(loglik)
            gamma = np.exp(np.subtract(lj, lse, out=lj), out=lj)
            n_eff = gamma.sum(axis=2)
            if it == n_iter or (tol > 0 and it > 0 and _settled(loglik, previous, tol)):
                break
            g = gamma if unit else np.multiply(gamma, w, out=gamma)
            weights, beta, sigma2, good = _mstep_into(
                g, sigma2, *design, noise=noise, floor=floor, pen=pen, sq=sq, tmp=tmp,
                s0=n_eff if unit else None, eye=eye)
            if not good.all():
                ok &= good
                all_ok = False
    return Population(weights, beta, sigma2, loglik, n_eff)


def _settled(loglik: np.ndarray, previous: np.ndarray, tol: float) -> bool:
    """Whether no finite run moved by more than ``tol`` in the last iteration."""
    live = np.isfinite(loglik) & np.isfinite(previous)
    return bool(np.all(np.abs(loglik[live] - previous[live]) <= tol))


def _design(Xd, y, w):
    n, p = Xd.shape
    XX = (Xd[:, :, None] * Xd[:, None, :]).reshape(n, p * p)
    return y, XX, np.ascontiguousarray(Xd.T), Xd * y[:, None], float(w.sum())


def _squared_residuals(beta, y, XdT, out):
    """(y − x β_j)² of every run and component into ``out`` (R, m, n)."""
    r, m, p = beta.shape
    np.matmul(beta.reshape(r * m, p), XdT, out=out.reshape(r * m, out.shape[2]))
    np.subtract(y, out, out=out)
    return np.multiply(out, out, out=out)


def _mstep_into(g, sigma2, y, XX, XdT, Xy, sum_w, *, noise, floor, pen, sq, tmp, s0=None,
                eye=None):
    """The stacked M-step from weighted responsibilities ``g`` (R, m, n): weights,
    coefficients, σ² (kept for ``"fixed"``) and which runs are finite; the squared
    residuals at the new coefficients go into ``sq`` (``tmp``: scratch of the same
    shape; ``s0``: the row sums of ``g`` when known; ``pen``: the ridge or None)."""
    r, m, n = g.shape
    p = XdT.shape[0]
    rows = r * m
    s0 = g.sum(axis=2) if s0 is None else s0
    weights = s0 / np.maximum(s0.sum(axis=1, keepdims=True), 1e-300)
    g2 = g.reshape(rows, n)
    gram = (g2 @ XX).reshape(r, m, p, p)
    if pen is not None:
        gram += pen
    eye = np.eye(p) if eye is None else eye
    gram += eye * (1e-10 * np.trace(gram, axis1=2, axis2=3)[..., None, None] + 1e-300)
    rhs = (g2 @ Xy).reshape(r, m, p, 1)
    try:
        beta = np.linalg.solve(gram, rhs)[..., 0]
    except np.linalg.LinAlgError:
        beta = np.stack([np.linalg.lstsq(a, b, rcond=None)[0][:, 0]
                         for a, b in zip(gram.reshape(rows, p, p), rhs.reshape(rows, p, 1),
                                         strict=True)]).reshape(r, m, p)
    good = np.isfinite(beta).all(axis=(1, 2))
    if not good.all():
        beta[~good] = 0.0
    _squared_residuals(beta, y, XdT, sq)
    if noise != "fixed":
        rss = np.multiply(g, sq, out=tmp).sum(axis=2)
        if noise == "shared":
            sigma2 = np.repeat(rss.sum(axis=1, keepdims=True) / max(sum_w, 1e-300), m, axis=1)
        else:
            sigma2 = rss / np.maximum(s0, 1e-300)
        # non-finite σ² (nan, ±inf) to the floor, as nan_to_num then the maximum would
        sigma2 = np.maximum(np.where(np.isfinite(sigma2), sigma2, floor), floor)
    return weights, beta, sigma2, good


def population_mstep(Xd: np.ndarray, y: np.ndarray, w: np.ndarray, resp: np.ndarray, *,
                     noise: str, floor: float, penalty: np.ndarray | None = None,
                     fixed_sigma2: np.ndarray | None = None) -> Population:
    """One stacked M-step from responsibilities ``resp`` (R, m, n): R starts at once."""
    r, m, n = resp.shape
    pen = None if penalty is None else np.asarray(penalty, float)
    sigma2 = np.ones((r, m)) if fixed_sigma2 is None else \
        np.broadcast_to(np.asarray(fixed_sigma2, float), (r, m)).copy()
    with np.errstate(all="ignore"):
        g = resp * w
        weights, beta, sigma2, _ = _mstep_into(g, sigma2, *_design(Xd, y, w), noise=noise,
                                               floor=floor, pen=pen, sq=np.empty_like(g),
                                               tmp=np.empty_like(g))
    weights = np.maximum(weights, 1e-3 / m)
    weights /= weights.sum(axis=1, keepdims=True)
    return Population(weights, beta, sigma2, np.full(r, -np.inf), np.zeros((r, m)))


def concat(parts) -> Population:
    """The runs of ``parts`` (populations) stacked one after another, in order."""
    return Population(*(np.concatenate([getattr(part, f.name) for part in parts])
                        for f in dataclasses.fields(Population)))
