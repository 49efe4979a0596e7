"""Columns whose scale float64 cannot carry through EM: found in pass 0, then handled.

EM's statistics hold squares and products of the columns (Σ w x xᵀ,
Σ w y², residuals squared), so a column whose values reach 1e200 overflows
them, and one whose values stay below 1e-160 underflows them to zero; the
fit that follows is nonsense (every coefficient 0, σ² at the floor, or
``inf``).  Pass 0 records the largest magnitude of each column
(:class:`~streammix.algorithms.start.profile.Profile` ``max_abs``).  A column
outside :data:`SAFE_RANGE` makes the fit run on standardised data whatever
``standardize`` says (maximum-likelihood EM is equivariant, so the optimum
is the same, see :mod:`streammix.algorithms.standardize`).  The moments of
that pass overflowed too, so they are taken again in one more pass over the
data divided, column by column, by a power of two near its largest value
(:func:`prescaling`; exact), and composed with it (:func:`compose`).

What cannot be represented even so is refused before any EM pass
(:func:`check_representable`): a model of y whose variance over- or
underflows float64 (σ² would), or a coefficient scale s_y / s_x beyond
float64.
"""

from __future__ import annotations

import math

import numpy as np

from streammix.algorithms.standardize import Scaling
from streammix.exceptions import DataError

__all__ = ["SAFE_RANGE", "extreme_columns", "prescaling", "compose", "check_representable",
           "describe_extremes"]

#: Largest magnitudes a column may have for EM on the raw values: squares and
#: products of two columns stay within 1e-120 .. 1e120, far from float64's limits.
SAFE_RANGE = (1e-60, 1e60)
#: What the variance of y (and so σ²) and a coefficient scale s_y / s_x must stay
#: within: float64's normal range (2.2e-308 .. 1.8e308) less a margin for σ̃² and β̃.
_REPRESENTABLE = (1e-302, 1e302)


def extreme_columns(max_abs: np.ndarray | None) -> list[int]:
    """Indices (features, then y last) of the nonzero columns outside :data:`SAFE_RANGE`."""
    if max_abs is None:
        return []
    low, high = SAFE_RANGE
    a = np.asarray(max_abs, float)
    return [int(k) for k in np.flatnonzero((a > high) | ((a > 0) & (a < low)) | ~np.isfinite(a))]


def describe_extremes(max_abs: np.ndarray, names: list[str], columns: list[int]) -> str:
    """``"column 'x1' reaches 1.2e+200, column 'y' reaches 3e-301"``."""
    return ", ".join(f"column {names[k]!r} reaches {max_abs[k]:.3g}" for k in columns)


def _power_of_two(value: float) -> float:
    """2**e with value / 2**e in [0.5, 1) (1 for 0)."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    return math.ldexp(1.0, math.frexp(value)[1])


def prescaling(max_abs: np.ndarray, intercept: bool) -> Scaling:
    """Division of each extreme column by a power of two near its largest value.

    Dividing by a power of two is exact (but for values that fall below the
    smallest normal number, which are negligible beside the column's largest);
    the other columns are left as they are.
    """
    a = np.asarray(max_abs, float)
    extreme = set(extreme_columns(a))
    scales = np.array([_power_of_two(v) if k in extreme else 1.0 for k, v in enumerate(a)])
    d = len(a) - 1
    return Scaling(np.zeros(d), scales[:d], 0.0, float(scales[d]), intercept)


def compose(pre: Scaling, inner: Scaling) -> Scaling:
    """The scaling ``inner ∘ pre`` (``pre`` a pure division): x ↦ (x / c − μ) / s."""
    return Scaling(inner.mu_x * pre.s_x, inner.s_x * pre.s_x, inner.mu_y * pre.s_y,
                   inner.s_y * pre.s_y, inner.intercept)


def check_representable(scaling: Scaling, names: list[str], max_abs: np.ndarray) -> None:
    """Refuse data whose model float64 cannot hold: a DataError naming the column and range.

    The model's σ² is s_y² σ̃² and its coefficient of feature k is s_y β̃ₖ / sₖ;
    s_y² and each s_y / sₖ must lie within 1e-302 .. 1e302 (σ̃² and β̃ are
    of order one).
    """
    low, high = _REPRESENTABLE
    target = names[-1]
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        var_y = scaling.s_y * scaling.s_y
        ratios = scaling.s_y / scaling.s_x
    if not low < var_y < high:
        raise DataError(
            f"column {target!r} has values up to {max_abs[-1]:.3g} in magnitude and a standard "
            f"deviation of {scaling.s_y:.3g}: its variance ({var_y:.3g}) is beyond what float64 "
            f"holds (about 1e-308 to 1e308), so the model's noise variance cannot be "
            f"represented; rescale {target!r} (e.g. divide it by 10**{_exponent(scaling.s_y)}) "
            "and fit again")
    for k, ratio in enumerate(ratios):
        if not low < ratio < high:
            raise DataError(
                f"column {names[k]!r} (values up to {max_abs[k]:.3g} in magnitude, standard "
                f"deviation {scaling.s_x[k]:.3g}) and column {target!r} (standard deviation "
                f"{scaling.s_y:.3g}) are so far apart in scale that the coefficient of "
                f"{names[k]!r} (of order {ratio:.3g}) is beyond float64; rescale one of them "
                "and fit again")


def _exponent(value: float) -> int:
    return int(math.floor(math.log10(value))) if value > 0 and math.isfinite(value) else 0
