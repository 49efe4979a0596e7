"""The fitted conditional distribution of y given x: draws and quantiles.

``p(y | x) = Σ_j π_j N(y | μ_j(x), σ_j²)``.  Its quantiles have no closed form
for m > 1: they are found by inverting the mixture CDF
``F(q) = Σ_j π_j Φ((q − μ_j) / σ_j)``, row by row and vectorised over rows, by
Newton steps safeguarded by bisection inside a bracket that always holds the
root: at ``q = min_j q_j(p)`` (the smallest component quantile) every Φ term is
at most p, so F ≤ p, and at ``max_j q_j(p)`` F ≥ p.  With one component the
bracket is a single point, the normal quantile μ + σ Φ⁻¹(p).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["mixture_cdf", "mixture_quantiles", "DistributionMixin"]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def mixture_cdf(q, means, sigma, weights) -> np.ndarray:
    """F(q_i) = Σ_j π_j Φ((q_i − μ_ij) / σ_j) for ``q`` (n,), ``means`` (n, m)."""
    z = (np.asarray(q, float)[:, None] - means) / sigma
    return ndtr(z) @ weights


def mixture_quantiles(means, sigma, weights, probs, *, tol: float = 1e-13,
                      max_iter: int = 200) -> np.ndarray:
    """Quantiles of the mixtures of rows of ``means`` (n, m) at each of ``probs``.

    Parameters
    ----------
    means : ndarray of shape (n, m)
        Component means μ_j(x_i).
    sigma, weights : ndarray of shape (m,)
        Component standard deviations and weights (summing to 1).
    probs : array-like of shape (k,)
        Probabilities strictly between 0 and 1.
    tol : float
        Stop when every Newton or bisection step is below ``tol`` times the
        scale of the row (its largest σ plus the spread of its means).

    Returns
    -------
    ndarray of shape (n, k)
    """
    means = np.atleast_2d(np.asarray(means, float))
    sigma = np.asarray(sigma, float)
    weights = np.asarray(weights, float)
    probs = np.atleast_1d(np.asarray(probs, float))
    if np.any(~((probs > 0) & (probs < 1))):
        raise ValueError(f"probabilities must be strictly between 0 and 1, got {probs}")
    out = np.empty((means.shape[0], probs.size))
    scale = sigma.max() + np.ptp(means, axis=1)
    for k, p in enumerate(probs):
        component_q = means + sigma * ndtri(p)          # (n, m): each component's quantile
        lo, hi = component_q.min(axis=1), component_q.max(axis=1)
        q = component_q @ weights                       # a start inside the bracket
        q = np.clip(q, lo, hi)
        for _ in range(max_iter):
            z = (q[:, None] - means) / sigma
            f = ndtr(z) @ weights - p
            dens = np.exp(-0.5 * z**2 - _LOG_SQRT_2PI) @ (weights / sigma)
            lo = np.where(f <= 0, q, lo)
            hi = np.where(f >= 0, q, hi)
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = q - f / dens
            inside = np.isfinite(newton) & (newton > lo) & (newton < hi)
            new = np.where(inside, newton, 0.5 * (lo + hi))
            new = np.where(f == 0, q, new)
            step = np.abs(new - q)
            q = new
            if np.all(step <= tol * scale):
                break
        out[:, k] = q
    return out


class DistributionMixin:
    """Draws from the fitted conditional distribution, and its quantiles.

    A mixin of :class:`~streammix.MixtureOfLinearRegressions`; it uses the
    estimator's ``params_`` and ``predict_components(X)``.
    """

    def sample(self, X, random_state=None, *, return_component: bool = False):
        """Draw one y for each row of ``X`` from the fitted mixture.

        Each row picks a component j with probability π_j, then
        ``y = μ_j(x) + σ_j ε`` with ε standard normal.

        Parameters
        ----------
        X : array-like of shape (n, d) or DataFrame
        random_state : int, numpy Generator or None
            Seed of the draws (the same seed draws the same values).
        return_component : bool, default=False
            Also return the component index of each draw.

        Returns
        -------
        y : ndarray of shape (n,)
        component : ndarray of shape (n,), only with ``return_component``
        """
        means = self.predict_components(X)
        params = self.params_
        rng = np.random.default_rng(random_state)
        n = means.shape[0]
        z = rng.choice(params.n_components, size=n, p=params.weights / params.weights.sum())
        y = means[np.arange(n), z] + np.sqrt(params.sigma2)[z] * rng.standard_normal(n)
        return (y, z) if return_component else y

    def predict_quantiles(self, X, q) -> np.ndarray:
        """Quantiles of the fitted distribution of y given each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n, d) or DataFrame
        q : float or array-like of shape (k,)
            Probabilities strictly between 0 and 1.

        Returns
        -------
        ndarray of shape (n, k)
            By inversion of the mixture CDF (:func:`mixture_quantiles`), exact to
            about 1e-13 times the scale of y.
        """
        params = self.params_
        return mixture_quantiles(self.predict_components(X), np.sqrt(params.sigma2),
                                 params.weights, q)

    def predict_interval(self, X, level: float = 0.9) -> np.ndarray:
        """Central prediction interval of y given each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n, d) or DataFrame
        level : float, default=0.9
            Probability that a new y falls inside, strictly between 0 and 1.

        Returns
        -------
        ndarray of shape (n, 2)
            The mixture quantiles at (1 − level)/2 and (1 + level)/2.  For a
            multimodal mixture the central interval can include values of low
            density between the components.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
        return self.predict_quantiles(X, [(1 - level) / 2, (1 + level) / 2])
