"""Internal standardisation and its back-transformation.

See the mathematics page (docs/mathematics.rst), §1.6.

With weighted means and standard deviations from pass 0, EM runs on
x̃ = (x − μ_x)/s_x and ỹ = (y − μ_y)/s_y (without an intercept only the
scales are applied: centring would add one).  The fit is then mapped back:

* β = s_y β̃ / s_x,  b = μ_y + s_y b̃ − βᵀμ_x,  σ² = s_y² σ̃²;
* ℓ = ℓ̃ − N log s_y (the Jacobian of y ↦ ỹ), N = Σw; the same shift for
  the classification log-likelihood of ICL; the entropy is unchanged.

Maximum-likelihood EM is equivariant under these maps, so the optimum is
the same; the conditioning of the Gram matrices is not.  Priors (ridge,
inverse-gamma) are read on the standardised scale, as the mathematics page (docs/mathematics.rst),
§1.6 says.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from streammix.algorithms.em import EMResult
from streammix.core.chunk import Chunk
from streammix.core.moments import Moments
from streammix.core.params import MixtureParams

__all__ = ["Scaling", "ScaledTask"]


@dataclass(frozen=True)
class Scaling:
    """The affine map of the data: means (zero without intercept) and scales."""

    mu_x: np.ndarray
    s_x: np.ndarray
    mu_y: float
    s_y: float
    intercept: bool

    @classmethod
    def from_moments(cls, moments: Moments, intercept: bool) -> Scaling:
        """Weighted means and SDs (divisor Σw) of pass 0; constant columns keep scale 1."""
        mu_x, mu_y = moments.mean_x(), moments.mean_y()
        s_x = np.sqrt(np.maximum(np.diag(moments.cov_x()), 0.0))
        s_y = math.sqrt(max(moments.var_y(), 0.0))
        s_x = np.where(s_x > 1e-12 * np.maximum(np.abs(mu_x), 1.0), s_x, 1.0)
        if not s_y > 1e-12 * max(abs(mu_y), 1.0):
            s_y = 1.0
        if not intercept:
            mu_x, mu_y = np.zeros_like(mu_x), 0.0
        return cls(mu_x, s_x, float(mu_y), float(s_y), intercept)

    def data(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x̃, ỹ) of raw features and targets."""
        return (np.asarray(X, float) - self.mu_x) / self.s_x, (np.asarray(y, float)
                                                                - self.mu_y) / self.s_y

    def forward(self, params: MixtureParams) -> MixtureParams:
        """Original design-space parameters -> standardised ones."""
        beta = params.beta
        if self.intercept:
            b, a = beta[:, 0], beta[:, 1:]
            bt = (b + a @ self.mu_x - self.mu_y) / self.s_y
            at = a * self.s_x / self.s_y
            new = np.column_stack([bt, at])
        else:
            new = beta * self.s_x / self.s_y
        return MixtureParams(params.weights, new, params.sigma2 / self.s_y**2)

    def backward(self, params: MixtureParams) -> MixtureParams:
        """Standardised parameters -> original design space."""
        beta = params.beta
        if self.intercept:
            a = beta[:, 1:] * self.s_y / self.s_x
            b = self.mu_y + self.s_y * beta[:, 0] - a @ self.mu_x
            new = np.column_stack([b, a])
        else:
            new = beta * self.s_y / self.s_x
        return MixtureParams(params.weights, new, params.sigma2 * self.s_y**2)

    def moments(self, m: Moments) -> Moments:
        """The pass-0 moments of (x̃, ỹ), from those of (x, y)."""
        mu, my, sy = self.mu_x, self.mu_y, self.s_y
        D = 1.0 / self.s_x
        # Σ w yʲ x̃ x̃ᵀ and Σ w yʲ x̃ for j = 0, 1, 2
        xx = np.stack([D[:, None] * (m.sxx[j] - np.outer(m.sx[j], mu) - np.outer(mu, m.sx[j])
                                     + m.sy[j] * np.outer(mu, mu)) * D[None, :]
                       for j in range(3)])
        x = np.stack([D * (m.sx[j] - m.sy[j] * mu) for j in range(3)])
        # ỹ⁰ = 1, ỹ¹ = (y − μ)/s, ỹ² = (y² − 2μy + μ²)/s²
        coef = np.array([[1.0, 0.0, 0.0], [-my / sy, 1.0 / sy, 0.0],
                         [my * my / sy**2, -2.0 * my / sy**2, 1.0 / sy**2]])
        scale = np.append(self.s_x, sy)
        shift = np.append(mu, my)
        return Moments(coef @ m.sy, np.einsum("kj,jd->kd", coef, x),
                       np.einsum("kj,jde->kde", coef, xx), (m.mean - shift) / scale,
                       m.m2 / np.outer(scale, scale))

    def loglik_shift(self, sum_w: float) -> float:
        """ℓ − ℓ̃ = −N log s_y."""
        return -sum_w * math.log(self.s_y)

    def unscale(self, result: EMResult) -> EMResult:
        """A run's result in the original units (parameters, likelihoods, history)."""
        shift = self.loglik_shift(result.stats.sum_w)
        stats = dataclasses.replace(result.stats, loglik=result.stats.loglik + shift,
                                    class_loglik=result.stats.class_loglik + shift)
        history = []
        for record in result.history:
            record = dict(record)
            for key in ("loglik", "objective"):
                if key in record:
                    record[key] = record[key] + shift
            history.append(record)
        settings = result.settings
        if settings is not None:  # the floor and a known σ² back in the units of y
            opts, var_y = settings.mstep, self.s_y**2
            fixed = None if opts.fixed_sigma2 is None else np.asarray(opts.fixed_sigma2) * var_y
            settings = dataclasses.replace(settings, mstep=dataclasses.replace(
                opts, variance_floor=opts.variance_floor * var_y, fixed_sigma2=fixed))
        return dataclasses.replace(result, params=self.backward(result.params),
                                   loglik=result.loglik + shift,
                                   objective=result.objective + shift, history=history,
                                   stats=stats, settings=settings)


@dataclass(frozen=True)
class ScaledTask:
    """A map task applied to the standardised chunk (runs where the chunk is read)."""

    task: object
    scaling: Scaling

    @property
    def releases_gil(self) -> bool:
        return bool(getattr(self.task, "releases_gil", False))

    def __call__(self, chunk: Chunk):
        X, y = self.scaling.data(chunk.X, chunk.y)
        return self.task(dataclasses.replace(chunk, X=X, y=y))
