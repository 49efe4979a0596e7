"""Parameter sets of a mixture of linear regressions.

A :class:`MixtureParams` holds the parameters in *design space*: the design
matrix has the intercept column (a column of ones) first when an intercept is
fitted, so ``beta[j] @ x_design`` is the mean of component ``j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MixtureParams"]


def _as_float_array(value, name: str, ndim: int) -> np.ndarray:
    arr = np.array(value, dtype=np.float64, copy=True)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: {arr!r}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class MixtureParams:
    """Parameters ``(pi, beta, sigma2)`` of an m-component mixture.

    Parameters
    ----------
    weights : array-like of shape (m,)
        Mixing weights; positive and summing to one.
    beta : array-like of shape (m, p)
        Regression coefficients on the design matrix (intercept first when
        the model has one).
    sigma2 : array-like of shape (m,)
        Noise variances; strictly positive.
    """

    weights: np.ndarray
    beta: np.ndarray
    sigma2: np.ndarray

    def __post_init__(self) -> None:
        weights = _as_float_array(self.weights, "weights", 1)
        beta = _as_float_array(self.beta, "beta", 2)
        sigma2 = _as_float_array(self.sigma2, "sigma2", 1)
        m = weights.shape[0]
        if m < 1:
            raise ValueError("a mixture needs at least one component")
        if beta.shape[0] != m or sigma2.shape[0] != m:
            raise ValueError(
                f"inconsistent numbers of components: weights {m}, "
                f"beta {beta.shape[0]}, sigma2 {sigma2.shape[0]}"
            )
        if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-9:
            raise ValueError(f"weights must be non-negative and sum to 1, got {weights!r}")
        if np.any(sigma2 <= 0):
            raise ValueError(f"sigma2 must be strictly positive, got {sigma2!r}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "sigma2", sigma2)

    @classmethod
    def unchecked(cls, weights: np.ndarray, beta: np.ndarray,
                   sigma2: np.ndarray) -> MixtureParams:
        """Wrap float64 arrays that already satisfy every invariant, without copies or checks.

        For hot paths (one M-step per mini-batch of online EM) where the
        validation of ``__init__`` costs more than the arithmetic.  The
        arrays must be fresh (owned by the new instance: they are made
        read-only), finite, of consistent shapes, with weights >= 0 summing
        to one and sigma2 > 0.
        """
        self = object.__new__(cls)
        for name, value in (("weights", weights), ("beta", beta), ("sigma2", sigma2)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        return self

    @property
    def n_components(self) -> int:
        """Number of components m."""
        return self.weights.shape[0]

    @property
    def n_coef(self) -> int:
        """Number of columns p of the design matrix."""
        return self.beta.shape[1]

    def subset(self, keep) -> MixtureParams:
        """Return the parameters of the components ``keep``, weights renormalised."""
        keep = np.asarray(keep)
        weights = self.weights[keep]
        return MixtureParams(weights / weights.sum(), self.beta[keep], self.sigma2[keep])

    def permute(self, order) -> MixtureParams:
        """Return the same mixture with components in the given order."""
        order = np.asarray(order)
        return MixtureParams(self.weights[order], self.beta[order], self.sigma2[order])

    def max_abs_diff(self, other: MixtureParams) -> float:
        """Largest absolute difference between two parameter sets of equal shape."""
        return float(
            max(
                np.max(np.abs(self.weights - other.weights)),
                np.max(np.abs(self.beta - other.beta)),
                np.max(np.abs(self.sigma2 - other.sigma2)),
            )
        )

    def to_dict(self) -> dict:
        """JSON-ready dictionary; floats round-trip exactly through ``json``."""
        return {
            "weights": self.weights.tolist(),
            "beta": self.beta.tolist(),
            "sigma2": self.sigma2.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> MixtureParams:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(data["weights"], data["beta"], data["sigma2"])
        except KeyError as exc:
            raise ValueError(f"parameter record is missing the key {exc.args[0]!r}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MixtureParams):
            return NotImplemented
        return (
            np.array_equal(self.weights, other.weights)
            and np.array_equal(self.beta, other.beta)
            and np.array_equal(self.sigma2, other.sigma2)
        )

    __hash__ = None  # mutable-looking arrays: not hashable
